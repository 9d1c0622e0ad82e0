"""edgealex calibrate end to end on tiny ONNX models and images written with OpenCV.

The tiny model maps a BGR image to its three channel means (3x3 conv ~ identity, Relu, MaxPool,
Gemm averaging each channel), so the class of a solid-colour image is its dominant channel and
INT8 can be checked exactly against FP32.
"""

import json
import os
import struct
import zlib

import pytest

np = pytest.importorskip("numpy")
cv2 = pytest.importorskip("cv2")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from edgealex.calib.cache import read_cache  # noqa: E402
from edgealex.calib.ort import inspect_qdq, qdq_activation_scales  # noqa: E402
from edgealex.calib.pipeline import MIN_CALIBRATION_IMAGES, calibrate, read_calibration  # noqa: E402
from edgealex.errors import EdgeAlexError, GateFailed  # noqa: E402
from edgealex.imagefolder import manifest, read_manifest, scan_images  # noqa: E402
from edgealex.modelinfo import ModelInfo, attach, read_model_info  # noqa: E402
from edgealex.preprocess import Preprocess  # noqa: E402

LABELS = ["blue", "green", "red"]  # BGR channel order: class index = dominant channel
SPEC = Preprocess(input_size=32, resize=36, channel_order="BGR", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def tiny_model(path, batch=1, metadata=True, size=32):
    """Conv(3x3, ~identity) -> Relu -> MaxPool(2) -> Flatten -> Gemm(channel means) = logits."""
    rng = np.random.default_rng(0)
    conv_w = (rng.standard_normal((3, 3, 3, 3)) * 0.01).astype(np.float32)
    for c in range(3):
        conv_w[c, c, 1, 1] = 1.0
    half = size // 2
    gemm_w = np.zeros((3, 3 * half * half), dtype=np.float32)
    for c in range(3):
        gemm_w[c, c * half * half:(c + 1) * half * half] = 1.0 / (half * half)
    nodes = [
        helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["conv_out"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv_out"], ["relu_out"], name="relu"),
        helper.make_node("MaxPool", ["relu_out"], ["pool_out"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool_out"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 3])],
        [numpy_helper.from_array(conv_w, "conv_w"), numpy_helper.from_array(np.zeros(3, np.float32), "conv_b"),
         numpy_helper.from_array(gemm_w, "fc_w"), numpy_helper.from_array(np.zeros(3, np.float32), "fc_b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    if metadata:
        attach(model, ModelInfo(arch="tiny", labels=list(LABELS), preprocess=SPEC, batch=batch, opset=13))
    onnx.save(model, str(path))
    return str(path)


def colour_image(dominant, value=220, other=60, size=48, seed=0):
    """A BGR image whose channel ``dominant`` is bright, with a little texture."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), other, dtype=np.int16)
    img[:, :, dominant] = value
    img += rng.integers(-15, 16, size=img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_colour_folder(root, per_class, seed=0, size=48, ext=".png"):
    for c, name in enumerate(LABELS):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            img = colour_image(c, value=150 + (i * 7) % 100, other=40 + (i * 11) % 50, size=size, seed=seed + 31 * c + i)
            assert cv2.imwrite(os.path.join(root, name, f"{i:03d}{ext}"), img)
    return str(root)


def palette_png(path, width=40, height=40):
    """An indexed-colour (palette) PNG, written by hand (OpenCV cannot write one)."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    palette = bytes([200, 30, 30, 30, 200, 30, 30, 30, 200])  # RGB entries 0..2
    rows = b"".join(b"\x00" + bytes([(x // 14) % 3 for x in range(width)]) for _ in range(height))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0))
            + chunk(b"PLTE", palette) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    with open(path, "wb") as handle:
        handle.write(data)


@pytest.fixture
def tiny(tmp_path):
    return tiny_model(tmp_path / "tiny.onnx")


@pytest.fixture
def folders(tmp_path):
    calib = write_colour_folder(tmp_path / "calib", per_class=5)
    held = write_colour_folder(tmp_path / "held", per_class=3, seed=500)
    return calib, held


def _zero_points(model):
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            assert len(node.input) == 3, f"{node.name} has no explicit zero-point (defaults to UINT8)"
            yield node, inits[node.input[2]]


def test_outputs_trt_compatible_qdq_caches_report(tiny, folders, tmp_path):
    calib, held = folders
    out = tmp_path / "out"
    result = calibrate(tiny, calib, out, holdout=held, method="entropy", progress=False)

    # 1. Q/DQ ONNX: checker passes, every zero-point INT8 and 0, Relu kept, per-channel weights.
    qdq = onnx.load(result.qdq_onnx)
    onnx.checker.check_model(qdq)
    zero_points = list(_zero_points(qdq))
    assert len(zero_points) >= 8
    for node, zp in zero_points:
        assert zp.data_type == TensorProto.INT8, node.name
        assert not numpy_helper.to_array(zp).any(), node.name
    assert [n.op_type for n in qdq.graph.node].count("Relu") == 1
    conv = next(n for n in qdq.graph.node if n.op_type == "Conv")
    weight_dq = next(n for n in qdq.graph.node if n.output[0] == conv.input[1])
    inits = {i.name: numpy_helper.to_array(i) for i in qdq.graph.initializer}
    assert inits[weight_dq.input[1]].shape == (3,)  # one scale per output channel
    # the weight is an INT8 initializer read by the DequantizeLinear directly (no FP32 copy, no Q)
    assert inits[weight_dq.input[0]].dtype == np.int8 and inits[weight_dq.input[0]].shape == (3, 3, 3, 3)
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] in inits for n in qdq.graph.node)
    assert inspect_qdq(qdq)["min_tensorrt"] == "10.0"
    assert conv.input[2] == "conv_b" and "conv_b" in inits  # bias stays FP32
    assert inspect_qdq(qdq)["trt_compatible"]
    # ... and the logits stay float: the graph output comes straight from the Gemm, not from a Q/DQ pair
    assert next(n for n in qdq.graph.node if "logits" in n.output).op_type == "Gemm"
    assert not any(n.op_type == "QuantizeLinear" and n.input[0].startswith("logits") for n in qdq.graph.node)

    # ... runs on ONNX Runtime and agrees with FP32 on a held-out image
    fp32 = ort.InferenceSession(tiny, providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(result.qdq_onnx, providers=["CPUExecutionProvider"])
    from edgealex.preprocess import preprocess
    x = preprocess(colour_image(2, seed=9), SPEC)[None]
    assert int8.run(None, {"input": x})[0].argmax() == fp32.run(None, {"input": x})[0].argmax() == 2

    # ... carries the edgealex metadata with provenance, and a sidecar
    info = read_model_info(result.qdq_onnx, allow_default=False)
    assert info.labels == LABELS and info.preprocess == SPEC
    prov = info.provenance["calibration"]
    from edgealex.artifacts import sha256_file
    assert prov["source_model_sha256"] == sha256_file(tiny)
    assert prov["images_manifest_sha256"] == manifest(scan_images(calib))["manifest_sha256"]
    assert prov["method"] == "entropy" and prov["count"] == 15
    sidecar = json.loads(open(result.qdq_onnx + ".json").read())
    assert sidecar["qdq_check"]["nonzero_zero_points"] == [] and sidecar["count"] == 15
    assert sidecar["float_outputs"] == ["logits"]

    # 2. caches: one per default TensorRT version, keyed by ONNX tensor names, scales = Q/DQ scales
    assert sorted(result.caches) == [8201, 8502]
    cache = read_cache(result.caches[8201])
    assert open(result.caches[8201]).readline() == "TRT-8201-EntropyCalibration2\n"
    assert read_cache(result.caches[8502]).scales == cache.scales
    assert list(cache.scales)[:2] == ["input", "conv_out"]  # graph order
    assert {"input", "conv_out", "relu_out", "pool_out", "flat", "logits"} <= set(cache.scales)
    for name, scale in qdq_activation_scales(qdq).items():
        assert cache.scales[name] == struct.unpack(">f", struct.pack(">f", scale))[0], name
    ranges = json.load(open(result.report_json))["tensors"]
    logits = next(t for t in ranges if t["name"] == "logits")
    assert abs(cache.scales["logits"] * 127 - logits["amax_used"]) < 1e-6

    # 3. report + manifest
    assert result.passed and result.agreement == 1.0
    assert result.accuracy == {"fp32": 1.0, "int8_qdq": 1.0, "int8_ort": 1.0}
    md = open(result.report_md).read()
    assert "PASSED" in md and "conv_out" in md
    data = read_calibration(out)
    assert data["gate_passed"] is True and data["count"] == 15 and data["method"] == "entropy"
    assert data["qdq_onnx"] == result.qdq_onnx and data["caches"][8201] == result.caches[8201]
    assert data["images_manifest_sha256"] == read_manifest(data["images_manifest"])["manifest_sha256"]
    assert os.path.isfile(data["ort_int8_onnx"]) and os.path.isfile(data["ranges_json"])
    raw = json.load(open(out / "calibration.json"))
    assert raw["caches"] == {"8201": "calib.trt8201.cache", "8502": "calib.trt8502.cache"}  # relative names

    # 4. ORT-native INT8: smaller layout, also runs, clearly named
    assert result.ort_int8_onnx.endswith(".int8-ort-cpu.onnx")
    native = ort.InferenceSession(result.ort_int8_onnx, providers=["CPUExecutionProvider"])
    assert native.run(None, {"input": x})[0].argmax() == 2


def test_gate_fails_on_unrepresentative_ranges_and_keeps_outputs(tiny, folders, tmp_path):
    # Calibrating on dark grey images gives every tensor a tiny range: bright held-out colours
    # then clip to the same INT8 value in every channel and the top-1 class is lost.
    calib = tmp_path / "dark"
    os.makedirs(calib)
    for i in range(10):
        cv2.imwrite(str(calib / f"{i}.png"), np.full((48, 48, 3), 15 + i, np.uint8))
    _, held = folders
    out = tmp_path / "out"
    with pytest.raises(GateFailed) as info:
        calibrate(tiny, calib, out, holdout=held, method="minmax", min_agreement=0.99, progress=False)
    message = str(info.value)
    assert "agrees with FP32 on" in message and "below --min-agreement 99.0%" in message
    assert "kept in" in message
    data = read_calibration(out)
    assert data["gate_passed"] is False and data["agreement"] < 0.99
    assert os.path.isfile(data["qdq_onnx"]) and os.path.isfile(data["caches"][8201])
    assert "FAILED" in open(data["report_md"]).read()


def test_bad_and_odd_images_are_converted_skipped_and_counted(tiny, folders, tmp_path, caplog):
    _, held = folders
    calib = tmp_path / "mixed"
    write_colour_folder(calib, per_class=3)
    # converted, not skipped
    cv2.imwrite(str(calib / "blue" / "gray.png"), np.full((48, 48), 120, np.uint8))
    rgba = np.dstack([colour_image(0), np.full((48, 48), 255, np.uint8)])
    cv2.imwrite(str(calib / "blue" / "rgba.png"), rgba)
    cv2.imwrite(str(calib / "green" / "deep.png"), colour_image(1).astype(np.uint16) * 257)
    palette_png(str(calib / "red" / "palette.png"))
    cv2.imwrite(str(calib / "red" / "small.png"), colour_image(2, size=12))  # smaller than the crop
    # unreadable: skipped and counted
    (calib / "red" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    good = cv2.imencode(".png", colour_image(1))[1].tobytes()
    (calib / "green" / "truncated.png").write_bytes(good[: len(good) // 2])
    (calib / "green" / "empty.bmp").write_bytes(b"")

    result = calibrate(tiny, calib, tmp_path / "out", holdout=held, method="minmax", progress=False,
                       ort_native=False)
    stats = result.stats
    assert stats.listed == 17 and stats.used == 14 and len(stats.skipped) == 3
    skipped = {os.path.basename(p) for p, _ in stats.skipped}
    assert skipped == {"corrupt.jpg", "truncated.png", "empty.bmp"}
    assert stats.converted == {"grayscale": 1, "alpha": 1, "16-bit": 1, "palette": 1}
    assert stats.upscaled == 1
    report = json.load(open(result.report_json))
    assert report["images"]["read"]["skipped"] == 3
    assert {s["path"] for s in report["images"]["read"]["skipped_files"]} == {
        "red/corrupt.jpg", "green/truncated.png", "green/empty.bmp"}
    assert result.ort_int8_onnx is None
    assert json.load(open(result.manifest_path))["ort_int8_onnx"] is None


def test_too_few_readable_images_is_an_error(tiny, folders, tmp_path):
    _, held = folders
    calib = tmp_path / "few"
    write_colour_folder(calib, per_class=2)  # 6 good
    for i in range(4):
        (calib / f"bad{i}.png").write_bytes(b"not a png")
    with pytest.raises(EdgeAlexError, match=rf"only 6 of 10 .* at least {MIN_CALIBRATION_IMAGES}"):
        calibrate(tiny, calib, tmp_path / "out", holdout=held, method="minmax", progress=False)
    only_bad = tmp_path / "bad"
    os.makedirs(only_bad)
    for i in range(9):
        (only_bad / f"x{i}.jpg").write_bytes(b"junk")
    with pytest.raises(EdgeAlexError, match="only 0 of 9"):
        calibrate(tiny, only_bad, tmp_path / "out2", holdout=held, method="minmax", progress=False)


def test_folder_and_option_errors(tiny, folders, tmp_path):
    calib, held = folders
    empty = tmp_path / "empty"
    os.makedirs(empty)
    cases = [
        (dict(images=empty), "holds no image files"),
        (dict(images=tmp_path / "missing"), "does not exist"),
        (dict(images=calib, method="kl"), "unknown calibration method"),
        (dict(images=calib, min_agreement=1.5), "between 0 and 1"),
        (dict(images=calib, count=3), "at least 8"),
        (dict(images=calib, trt_versions=["11.0"]), "TensorRT 11"),
        (dict(images=calib, holdout=tmp_path / "nohold"), "does not exist"),
    ]
    for kwargs, match in cases:
        with pytest.raises(EdgeAlexError, match=match):
            calibrate(tiny, out_dir=tmp_path / "o", progress=False, **dict({"holdout": held}, **kwargs))
    # a folder too small to split off held-out images
    small = write_colour_folder(tmp_path / "small", per_class=2)
    with pytest.raises(EdgeAlexError, match="too few to calibrate and check"):
        calibrate(tiny, small, tmp_path / "o", progress=False)
    with pytest.raises(EdgeAlexError, match="does not exist"):
        calibrate(tmp_path / "none.onnx", calib, tmp_path / "o", holdout=held, progress=False)
    assert not os.path.exists(tmp_path / "o" / "calibration.json")


def test_existing_calibration_needs_force(tiny, folders, tmp_path):
    calib, held = folders
    out = tmp_path / "out"
    first = calibrate(tiny, calib, out, holdout=held, method="minmax", progress=False, trt_versions=["8.2.1", "8.5.2"])
    before = open(first.caches[8201]).read()
    with pytest.raises(EdgeAlexError, match="already holds a calibration") as info:
        calibrate(tiny, calib, out, holdout=held, method="minmax", progress=False)
    assert "--force" in str(info.value)
    assert open(first.caches[8201]).read() == before  # untouched
    # a forced run that fails on its input leaves the previous calibration as it was
    junk = tmp_path / "junk"
    os.makedirs(junk)
    for i in range(9):
        (junk / f"{i}.png").write_bytes(b"not an image")
    with pytest.raises(EdgeAlexError, match="only 0 of 9"):
        calibrate(tiny, junk, out, holdout=held, progress=False, force=True)
    assert read_calibration(out)["method"] == "minmax" and os.path.isfile(first.caches[8201])
    second = calibrate(tiny, calib, out, holdout=held, method="percentile", progress=False, force=True,
                       trt_versions=["agx-xavier"])
    assert sorted(second.caches) == [8502]
    assert not os.path.exists(first.caches[8201])  # stale cache of the replaced run removed
    assert json.load(open(second.manifest_path))["method"] == "percentile"


def test_split_without_holdout_counts_and_classes(tiny, tmp_path):
    calib = write_colour_folder(tmp_path / "all", per_class=8)  # 24 images -> 5 held out, 19 left
    result = calibrate(tiny, calib, tmp_path / "out", count=12, method="minmax", progress=False)
    assert result.count == 12
    assert result.gate.images == 5
    held = read_manifest(read_calibration(tmp_path / "out")["holdout_manifest"])
    used = read_manifest(read_calibration(tmp_path / "out")["images_manifest"])
    assert not {f["path"] for f in held["files"]} & {f["path"] for f in used["files"]}
    assert used["class_counts"] == {"blue": 4, "green": 4, "red": 4}


def test_model_without_metadata_uses_defaults_with_warning(tmp_path, folders, caplog):
    calib, held = folders
    path = tiny_model(tmp_path / "bare.onnx", metadata=False)
    with caplog.at_level("WARNING", logger="edgealex"):
        result = calibrate(path, calib, tmp_path / "out", holdout=held, method="minmax", progress=False,
                           min_agreement=0.0)
    assert "no edgealex metadata" in caplog.text
    data = json.load(open(result.manifest_path))
    assert data["preprocess_from_defaults"] is True
    assert data["model_info"]["labels"] == ["class_0", "class_1", "class_2"]
    assert result.gate.unknown_classes == LABELS and result.accuracy == {}
    assert read_model_info(result.qdq_onnx, allow_default=False).labels == ["class_0", "class_1", "class_2"]


def test_static_batch_two_is_padded(tmp_path, folders):
    calib, held = folders
    path = tiny_model(tmp_path / "b2.onnx", batch=2)
    result = calibrate(path, calib, tmp_path / "out", holdout=held, method="minmax", progress=False)
    assert result.count == 15 and result.gate.images == 9 and result.passed


def test_cli_success_json_and_errors(tiny, folders, tmp_path):
    from edgealex.cli.main import app

    calib, held = folders
    runner = CliRunner()
    out = tmp_path / "out"
    ok = runner.invoke(app, ["calibrate", tiny, "--images", calib, "--holdout", held, "-o", str(out),
                             "--method", "minmax", "--json", "--trt-version", "8.2.1"])
    assert ok.exit_code == 0, ok.output
    payload = json.loads(ok.stdout)
    assert payload["agreement"] == 1.0 and list(payload["caches"]) == ["8201"]
    again = runner.invoke(app, ["calibrate", tiny, "--images", calib, "--holdout", held, "-o", str(out)])
    assert again.exit_code == 1
    assert "already holds a calibration" in again.output and "Traceback" not in again.output
    missing = runner.invoke(app, ["calibrate", tiny, "--images", str(tmp_path / "nope"), "-o", str(tmp_path / "o2")])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    human = runner.invoke(app, ["calibrate", tiny, "--images", calib, "--holdout", held, "-o", str(tmp_path / "o3"),
                                "--method", "minmax", "--no-progress", "--no-ort-native"])
    assert human.exit_code == 0, human.output
    assert "top-1 agreement with FP32 100.0%" in human.output and "TRT-8502" in human.output


def test_cli_gate_failure_exits_1_with_figures(tiny, folders, tmp_path):
    from edgealex.cli.main import app

    _, held = folders
    dark = tmp_path / "dark"
    os.makedirs(dark)
    for i in range(8):
        cv2.imwrite(str(dark / f"{i}.png"), np.full((40, 40, 3), 10 + i, np.uint8))
    res = CliRunner().invoke(app, ["calibrate", tiny, "--images", str(dark), "--holdout", held, "-o",
                                   str(tmp_path / "out"), "--method", "minmax", "--no-progress"])
    assert res.exit_code == 1
    assert "INT8 accuracy gate" in res.output and "/9 held-out images" in res.output
    assert "Traceback" not in res.output


def test_exported_alexnet_end_to_end(alexnet_onnx, tmp_path):
    """The real exported AlexNet: all outputs, every zero-point 0, caches keyed by its tensor names."""
    calib = tmp_path / "imgs"
    for i in range(10):
        name = ["ok", "scratch"][i % 2]
        os.makedirs(calib / name, exist_ok=True)
        rng = np.random.default_rng(i)
        cv2.imwrite(str(calib / name / f"{i}.jpg"), rng.integers(0, 255, (240, 300, 3), dtype=np.uint8))
    result = calibrate(alexnet_onnx, calib, tmp_path / "out", method="minmax", min_agreement=0.0,
                       progress=False, ort_native=False)
    qdq = onnx.load(result.qdq_onnx, load_external_data=False)
    check = inspect_qdq(qdq)
    assert check["trt_compatible"] and check["nonzero_zero_points"] == [] and check["relu_nodes"] == 7
    # the 8 weight tensors (5 conv, 3 FC) are stored once, as INT8: a quarter of the FP32 file, not as large
    assert check["int8_weights"] == 8 and check["float_weight_qdq"] == 0 and check["min_tensorrt"] == "10.0"
    assert os.path.getsize(result.qdq_onnx) < 0.3 * os.path.getsize(alexnet_onnx)
    cache = read_cache(result.caches[8502])
    fp32 = onnx.load(alexnet_onnx, load_external_data=False)
    names = {o for n in fp32.graph.node for o in n.output} | {"input"}
    assert set(cache.scales) <= names and "input" in cache.scales and "logits" in cache.scales
    assert result.count == 8 and result.gate.images == 2
