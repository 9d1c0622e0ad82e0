"""`edgealex deploy deepstream`: the DeepStream ONNX against edgealex's pipeline, every config through
GLib's own key-file parser, the INT8 carry-over, the engine sidecar checks, stretch vs crop measured."""

import json
import os
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from build_helpers import LABELS, SIZE, calibration_output, tiny_classifier
from edgealex.cli.main import app

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SYSTEM_PYTHON = "/usr/bin/python3"
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])

# integration-facts.md §1.2 (gstnvinfer_property_parser.h, DS6.0/6.2; same names in 7.0/8.0), incl. "Also available".
NVINFER_KEYS = {
    "onnx-file", "model-engine-file", "int8-calib-file", "labelfile-path", "batch-size", "network-mode",
    "network-type", "process-mode", "gie-unique-id", "classifier-threshold", "net-scale-factor", "offsets",
    "model-color-format", "maintain-aspect-ratio", "symmetric-padding", "scaling-filter", "scaling-compute-hw",
    "enable-dla", "use-dla-core", "infer-dims", "network-input-order", "uff-input-order", "output-blob-names",
    "classifier-async-mode", "interval", "gpu-id", "classifier-type", "workspace-size", "mean-file",
    "parse-classifier-func-name", "custom-lib-path",
}
# integration-facts.md §1.8 (deepstream_config_file_parser.{h,c}, DS6.0), plus "uri" and "gpu-id" of the
# same parser (CONFIG_GROUP_SOURCE_URI, CONFIG_GPU_ID).
APP_KEYS = {
    "application": {"enable-perf-measurement", "perf-measurement-interval-sec"},
    "tiled-display": {"enable", "rows", "columns", "width", "height"},
    "source": {"enable", "type", "camera-v4l2-dev-node", "camera-width", "camera-height", "camera-fps-n",
               "camera-fps-d", "camera-csi-sensor-id", "uri", "gpu-id"},
    "streammux": {"live-source", "batch-size", "batched-push-timeout", "width", "height", "enable-padding", "gpu-id"},
    "primary-gie": {"enable", "gie-unique-id", "batch-size", "interval", "config-file", "gpu-id"},
    "sink0": {"enable", "type", "sync"},
}
TYPED = {"double": {"net-scale-factor", "classifier-threshold"},
         "boolean": {"maintain-aspect-ratio", "symmetric-padding", "enable-dla", "enable", "live-source",
                     "enable-padding", "sync", "enable-perf-measurement"},
         "double_list": {"offsets"}, "integer_list": {"infer-dims"}}

_GLIB_DUMP = r"""
import json, sys
from gi.repository import GLib
typed = json.loads(sys.argv[2])
kf = GLib.KeyFile()
kf.load_from_file(sys.argv[1], GLib.KeyFileFlags.NONE)
out = {}
for group in kf.get_groups()[0]:
    entries = {}
    for key in kf.get_keys(group)[0]:
        value = {"string": kf.get_string(group, key)}
        if key in typed["double"]:
            value["double"] = kf.get_double(group, key)
        elif key in typed["boolean"]:
            value["boolean"] = kf.get_boolean(group, key)
        elif key in typed["double_list"]:
            value["double_list"] = list(kf.get_double_list(group, key))
        elif key in typed["integer_list"]:
            value["integer_list"] = list(kf.get_integer_list(group, key))
        else:
            try:
                value["integer"] = kf.get_integer(group, key)
            except GLib.Error:
                pass
        entries[key] = value
    out[group] = entries
print(json.dumps(out))
"""


def _glib_ok():
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "from gi.repository import GLib; GLib.KeyFile()"],
                           capture_output=True)
    return probe.returncode == 0


needs_glib = pytest.mark.skipif(not _glib_ok(), reason="PyGObject (python3-gi) for /usr/bin/python3 is not installed")


def glib_parse(path):
    """Parse a key file with GLib's own parser (PyGObject in Debian's python3), typed getters included."""
    proc = subprocess.run([SYSTEM_PYTHON, "-c", _GLIB_DUMP, str(path), json.dumps({k: sorted(v) for k, v in TYPED.items()})],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def run(path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


@pytest.fixture
def tiny(tmp_path):
    return tiny_classifier(tmp_path / "tiny.onnx")


@needs_glib
def test_four_sources_int8_for_xavier_parse_with_glib_and_match_edgealex(tmp_path, tiny):
    calib = calibration_output(tmp_path / "calib", tiny, caches=(8201, 8502))
    out = tmp_path / "ds"
    sources = ["csi://0", "/dev/video1", "rtsp://127.0.0.1:8554/line", str(tmp_path / "clip.mp4")]
    args = ["deploy", "deepstream", tiny, "-o", out, "--calib", calib, "--target", "agx-xavier"]
    for uri in sources:
        args += ["--sources", uri]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    assert "deepstream-app -c deepstream_app.txt" in r.stdout

    infer = glib_parse(out / "config_infer_primary.txt")
    assert set(infer) == {"property"}
    prop = infer["property"]
    assert set(prop) <= NVINFER_KEYS, set(prop) - NVINFER_KEYS
    assert prop["network-type"]["integer"] == 1 and prop["process-mode"]["integer"] == 1
    assert prop["batch-size"]["integer"] == 4
    assert prop["network-mode"]["integer"] == 1  # INT8
    assert prop["model-color-format"]["integer"] == 0  # RGB
    assert prop["net-scale-factor"]["double"] == pytest.approx(1 / 255, rel=1e-15)
    assert prop["offsets"]["double_list"] == pytest.approx(list(255 * MEAN), abs=1e-9)
    assert prop["maintain-aspect-ratio"]["boolean"] is False
    assert prop["classifier-threshold"]["double"] == 0.0
    assert prop["output-blob-names"]["string"] == "probs"
    # Values are exactly file names (no trailing comment swallowed into them), and they exist.
    for key in ("onnx-file", "labelfile-path", "int8-calib-file"):
        assert os.path.isfile(out / prop[key]["string"]), key
    assert prop["int8-calib-file"]["string"] == "calib/tiny.deepstream.trt8502.cache"
    assert prop["model-engine-file"]["string"] == "tiny.deepstream.onnx_b4_gpu0_int8.engine"

    with open(out / prop["labelfile-path"]["string"]) as handle:
        text = handle.read()
    assert text == ";".join(LABELS) + "\n"  # nvinfer's classifier format: ONE line

    appcfg = glib_parse(out / "deepstream_app.txt")
    for group, keys in appcfg.items():
        allowed = APP_KEYS["source" if group.startswith("source") else group]
        assert set(keys) <= allowed, (group, set(keys) - allowed)
    assert sorted(g for g in appcfg if g.startswith("source")) == ["source0", "source1", "source2", "source3"]
    assert [appcfg[f"source{i}"]["type"]["integer"] for i in range(4)] == [5, 1, 4, 2]
    assert appcfg["source3"]["uri"]["string"] == "file://" + str(tmp_path / "clip.mp4")
    assert appcfg["streammux"]["batch-size"]["integer"] == 4 == appcfg["primary-gie"]["batch-size"]["integer"]
    assert appcfg["streammux"]["live-source"]["boolean"] is True
    assert os.path.isfile(out / appcfg["primary-gie"]["config-file"]["string"])

    # The DeepStream ONNX fed with nvinfer's arithmetic (values as GLib read them) gives edgealex's probabilities.
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(4, 3, SIZE, SIZE)).astype(np.float64)
    pixels[0] = 0
    pixels[1] = 255
    reference = softmax(run(tiny, ((pixels / 255 - MEAN.reshape(1, 3, 1, 1)) / STD.reshape(1, 3, 1, 1))[:1]))
    for i in range(1, 4):
        reference = np.concatenate([reference, softmax(run(tiny, ((pixels[i:i + 1] / 255 - MEAN.reshape(1, 3, 1, 1))
                                                                  / STD.reshape(1, 3, 1, 1))))])
    offsets = np.array(prop["offsets"]["double_list"]).reshape(1, 3, 1, 1)
    y = prop["net-scale-factor"]["double"] * (pixels - offsets)
    got = run(out / prop["onnx-file"]["string"], y)
    assert got.shape == (4, len(LABELS))
    assert np.max(np.abs(got - reference)) < 1e-4


def test_std_is_folded_into_the_first_conv_bias_unchanged_softmax_appended(tmp_path, tiny):
    import onnx
    from onnx import numpy_helper

    r = invoke("deploy", "deepstream", tiny, "-o", tmp_path / "ds", "-s", "csi://0", "-s", "csi://1")
    assert r.exit_code == 0, r.output
    src = onnx.load(tiny)
    ds = onnx.load(str(tmp_path / "ds" / "tiny.deepstream.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in src.graph.initializer}
    ds_inits = {t.name: numpy_helper.to_array(t) for t in ds.graph.initializer}
    conv = [n for n in ds.graph.node if n.op_type == "Conv"][0]
    assert conv.input[0] == "input"
    np.testing.assert_allclose(ds_inits[conv.input[1]], inits["conv_w"] / STD.reshape(1, 3, 1, 1), rtol=1e-6)
    np.testing.assert_array_equal(ds_inits[conv.input[2]], inits["conv_b"])
    assert ds.graph.node[-1].op_type == "Softmax" and [o.name for o in ds.graph.output] == ["probs"]
    assert ds.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"  # dynamic: nvinfer sets the profile
    assert max(o.version for o in ds.opset_import) == max(o.version for o in src.opset_import)
    meta = json.loads({p.key: p.value for p in ds.metadata_props}["edgealex"])
    assert meta["preprocess"]["std"] == [1.0, 1.0, 1.0] and meta["output_name"] == "probs"


def test_static_batch_mode_writes_batch_n(tmp_path, tiny):
    import onnx

    r = invoke("deploy", "deepstream", tiny, "-o", tmp_path / "ds", "-s", "csi://0", "-s", "csi://1", "-s", "csi://2",
               "--batch-mode", "static", "--precision", "fp32")
    assert r.exit_code == 0, r.output
    ds = onnx.load(str(tmp_path / "ds" / "tiny.deepstream.onnx"))
    assert ds.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    assert ds.graph.output[0].type.tensor_type.shape.dim[0].dim_value == 3


def test_int8_calibration_carries_over_and_edgealex_build_accepts_it(tmp_path, tiny):
    from edgealex.build.api import build_engine
    from edgealex.calib.cache import read_cache

    calib = calibration_output(tmp_path / "calib", tiny, caches=(8201, 8502))
    out = tmp_path / "ds"
    r = invoke("deploy", "deepstream", tiny, "-o", out, "--calib", calib, "--target", "agx-xavier")
    assert r.exit_code == 0, r.output
    original = read_cache(os.path.join(calib, "calib-8502.cache"))
    derived = read_cache(str(out / "calib" / "tiny.deepstream.trt8502.cache"))
    assert derived.header == "TRT-8502-EntropyCalibration2"
    # nvinfer's input y = x/255 - mean spans [-0.485, 0.594]: its exact range replaces the calibrated one.
    assert derived.scales["input"] == pytest.approx(max(np.maximum(MEAN, 1 - MEAN)) / 127, rel=1e-6)
    assert {k: v for k, v in derived.scales.items() if k != "input"} == \
        {k: v for k, v in original.scales.items() if k != "input"}
    r = invoke("build", out / "tiny.deepstream.onnx", "--target", "agx-xavier", "--precision", "int8", "--calib",
               out / "calib", "--print-trtexec", "-o", tmp_path / "engines")
    assert r.exit_code == 0, r.output
    assert f"--calib={out / 'calib' / 'tiny.deepstream.trt8502.cache'} " in r.stdout
    # The carried-over folder is a calibration of the DeepStream ONNX: edgealex build takes it (INT8, Q/DQ model).
    result = build_engine(str(out / "tiny.deepstream.onnx"), target="cpu", precision="int8", calib=str(out / "calib"),
                          out_dir=str(tmp_path / "engines"), ort_int8="qdq")
    assert os.path.isfile(result.engine_path)


def test_wrong_calibration_and_missing_target_are_refused(tmp_path, tiny):
    calib = calibration_output(tmp_path / "calib", tiny, caches=(8201, 8502))
    r = invoke("deploy", "deepstream", tiny, "-o", tmp_path / "ds", "--calib", calib)
    assert r.exit_code == 1
    assert "several TensorRT versions (8201, 8502)" in r.output and "--target" in r.output
    assert "Traceback" not in r.output
    # The Nano has no fast INT8 (the capability rule edgealex build applies); forced, the Nano cache is used.
    r = invoke("deploy", "deepstream", tiny, "-o", tmp_path / "ds", "--calib", calib, "--target", "nano")
    assert r.exit_code == 1 and "no fast INT8" in r.output and "--force-int8" in r.output
    r = invoke("deploy", "deepstream", tiny, "-o", tmp_path / "nano", "--calib", calib, "--target", "nano",
               "--force-int8")
    assert r.exit_code == 0, r.output
    with open(tmp_path / "nano" / "config_infer_primary.txt") as handle:
        assert "int8-calib-file=calib/tiny.deepstream.trt8201.cache\n" in handle.read()
    other = tiny_classifier(tmp_path / "other.onnx", seed=5)
    r = invoke("deploy", "deepstream", other, "-o", tmp_path / "ds", "--calib", calib, "--target", "agx-xavier")
    assert r.exit_code == 1 and "made for another model" in r.output
    assert not os.path.exists(tmp_path / "ds" / "config_infer_primary.txt")


def _fake_trt_engine(folder, ds_onnx, batch, dla_core=None, precision="int8", model=None):
    """A TensorRT engine file plus the sidecar `edgealex build` writes (the bytes are opaque here)."""
    from edgealex.artifacts import sha256_file
    from edgealex.engine import EngineRecord, write_record
    from edgealex.modelinfo import read_model_info

    info = read_model_info(model or ds_onnx)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "tiny.deepstream-int8-dla0-trt8.5.2-agx-xavier.engine")
    with open(path, "wb") as handle:
        handle.write(b"serialized plan " * 64)
    record = EngineRecord(backend="tensorrt", precision=precision, device="dla0" if dla_core is not None else "gpu",
                          target="agx-xavier", model=info.to_dict(), onnx_sha256=sha256_file(model or ds_onnx),
                          input_shape=[batch, 3, SIZE, SIZE], builder="trtexec", backend_version="8.5.2",
                          dla_core=dla_core, device_name="Xavier", soc="tegra194")
    write_record(path, record)
    return path


@needs_glib
def test_engine_from_the_deepstream_onnx_is_used_with_its_dla_core(tmp_path, tiny):
    first = tmp_path / "ds"
    r = invoke("deploy", "deepstream", tiny, "-o", first, "-s", "csi://0", "-s", "csi://1", "--batch-mode", "static",
               "--precision", "int8", "--calib", calibration_output(tmp_path / "calib", tiny), "--target", "agx-xavier")
    assert r.exit_code == 0, r.output
    engine = _fake_trt_engine(tmp_path / "engines", str(first / "tiny.deepstream.onnx"), batch=2, dla_core=0)
    out = tmp_path / "with-engine"
    r = invoke("deploy", "deepstream", tiny, "-o", out, "-s", "csi://0", "-s", "csi://1", "--engine", engine,
               "--calib", tmp_path / "calib")
    assert r.exit_code == 0, r.output
    prop = glib_parse(out / "config_infer_primary.txt")["property"]
    # The engine's TensorRT (8.5.2) picks the cache nvinfer would need if it had to rebuild the engine.
    assert prop["int8-calib-file"]["string"] == "calib/tiny.deepstream.trt8502.cache"
    assert prop["model-engine-file"]["string"] == os.path.basename(engine)
    assert os.path.isfile(out / os.path.basename(engine)) and os.path.isfile(out / (os.path.basename(engine) + ".json"))
    assert prop["enable-dla"]["boolean"] is True and prop["use-dla-core"]["integer"] == 0
    assert prop["network-mode"]["integer"] == 1 and prop["batch-size"]["integer"] == 2
    assert "DeepStream 6.2 or 6.3" in r.stdout  # TensorRT 8.5.2 on a Jetson
    with open(out / "deploy.json") as handle:
        assert json.load(handle)["warnings"] == []  # the ONNX written now is the one the engine was built from

    # Three sources do not fit a batch-2 profile.
    r = invoke("deploy", "deepstream", tiny, "-o", tmp_path / "x", "-s", "csi://0", "-s", "csi://1", "-s", "csi://2",
               "--engine", engine)
    assert r.exit_code == 1 and "at most 2" in r.output and "--batch-mode static" in r.output
    # An engine built from the exported ONNX itself expects std-normalised input and gives logits.
    plain = _fake_trt_engine(tmp_path / "plain", tiny, batch=2, model=tiny)
    r = invoke("deploy", "deepstream", tiny, "-o", tmp_path / "y", "--engine", plain)
    assert r.exit_code == 1 and "built from the exported ONNX itself" in r.output
    # An engine that no longer matches its sidecar.
    with open(engine, "ab") as handle:
        handle.write(b"x")
    r = invoke("deploy", "deepstream", tiny, "-o", tmp_path / "z", "-s", "csi://0", "--engine", engine)
    assert r.exit_code == 1 and "sha256 differs" in r.output
    assert not os.path.exists(tmp_path / "x") or not os.listdir(tmp_path / "x")


def _images(folder, model_labels, count, width=40, height=24, seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    for i in range(count):
        label = model_labels[i % len(model_labels)]
        os.makedirs(os.path.join(folder, label), exist_ok=True)
        image = rng.integers(0, 256, size=(height, width, 3)).astype(np.uint8)
        image[:, : width // 4] = 255  # content outside the centre crop: stretch and crop see different frames
        cv2.imwrite(os.path.join(folder, label, f"{i:03d}.png"), image)
    return str(folder)


def test_stretch_vs_crop_agreement_is_measured_and_stated(tmp_path):
    import onnx

    from edgealex.modelinfo import ModelInfo, attach
    from edgealex.preprocess import Preprocess

    images = _images(tmp_path / "holdout", LABELS, 20)
    cropping = tiny_classifier(tmp_path / "crop.onnx")
    r = invoke("deploy", "deepstream", cropping, "-o", tmp_path / "ds", "--images", images)
    assert r.exit_code == 0, r.output
    line = [x for x in r.stdout.splitlines() if x.startswith("Stretch-vs-crop agreement")]
    assert len(line) == 1 and "of 20 held-out images" in line[0], r.stdout
    with open(tmp_path / "ds" / "README.md") as handle:
        assert line[0] in handle.read()
    report = json.load(open(tmp_path / "ds" / "deploy.json"))["agreement"]
    assert report["measured"] and report["images"] == 20 and report["labelled_images"] == 20

    # A model that resizes the whole frame (resize 0: no crop) sees exactly what a stretching nvinfer sees.
    whole = onnx.load(cropping)
    attach(whole, ModelInfo(arch="tiny", labels=list(LABELS), preprocess=Preprocess(input_size=SIZE, resize=0), opset=13))
    onnx.save(whole, str(tmp_path / "whole.onnx"))
    r = invoke("deploy", "deepstream", tmp_path / "whole.onnx", "-o", tmp_path / "ds2", "--images", images, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["agreement"]["agreement"] == 1.0
    r = invoke("deploy", "deepstream", tmp_path / "whole.onnx", "-o", tmp_path / "ds3", "--images", images,
               "--resize", "letterbox", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["agreement"]["agreement"] < 1.0  # black bars on 40x24 frames change the input


def test_unreadable_holdout_images_are_counted_in_the_stated_agreement(tmp_path, tiny):
    # Before: "... on 100.0% of 4 held-out images" with no word about the files it could not read.
    images = _images(tmp_path / "holdout", LABELS, 4)
    first = sorted(p for p in os.listdir(images) if os.path.isdir(os.path.join(images, p)))[0]
    with open(os.path.join(images, first, "broken.png"), "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n truncated")
    r = invoke("deploy", "deepstream", tiny, "-o", tmp_path / "ds", "--images", images)
    assert r.exit_code == 0, r.output
    line = [x for x in r.stdout.splitlines() if x.startswith("Stretch-vs-crop agreement")]
    assert len(line) == 1 and "of 4 held-out images" in line[0] and "1 unreadable image file(s) skipped" in line[0], \
        r.stdout


def test_without_images_the_agreement_is_not_measured_and_says_how(tmp_path, tiny):
    r = invoke("deploy", "deepstream", tiny, "-o", tmp_path / "ds")
    assert r.exit_code == 0, r.output
    assert "Stretch-vs-crop agreement: not measured (no images given); to measure it, pass --images DIR" in r.stdout
    with open(tmp_path / "ds" / "README.md") as handle:
        assert "not measured" in handle.read()


def test_a_graph_that_hard_codes_batch_1_fails_parity_and_writes_nothing(tmp_path):
    import onnx
    from onnx import helper, numpy_helper

    path = tiny_classifier(tmp_path / "tiny.onnx")
    model = onnx.load(path)
    flatten = [n for n in model.graph.node if n.op_type == "Flatten"][0]
    index = list(model.graph.node).index(flatten)
    model.graph.initializer.append(numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "flat_shape"))
    model.graph.node.remove(flatten)
    model.graph.node.insert(index, helper.make_node("Reshape", ["relu", "flat_shape"], ["flat"], name="Reshape_2"))
    onnx.save(model, path)
    out = tmp_path / "ds"
    r = invoke("deploy", "deepstream", path, "-o", out, "-s", "csi://0", "-s", "csi://1")
    assert r.exit_code == 1
    assert "does not run in ONNX Runtime at batch 2" in r.output and "nothing was written" in r.output
    assert not os.path.exists(out)


def test_labels_nvinfer_cannot_carry_are_refused(tmp_path):
    import onnx

    from edgealex.modelinfo import ModelInfo, attach
    from edgealex.preprocess import Preprocess

    path = tiny_classifier(tmp_path / "tiny.onnx")
    model = onnx.load(path)
    attach(model, ModelInfo(arch="tiny", labels=["ok", "scratch;deep", "stain", "crack", "hole"],
                            preprocess=Preprocess(input_size=SIZE, resize=18), opset=13))
    onnx.save(model, path)
    r = invoke("deploy", "deepstream", path, "-o", tmp_path / "ds")
    assert r.exit_code == 1 and "'scratch;deep'" in r.output and "Traceback" not in r.output
    assert not os.path.exists(tmp_path / "ds")


@needs_glib
def test_int8_on_tensorrt_10_uses_the_rewritten_qdq_model(tmp_path, tiny):
    calib = calibration_output(tmp_path / "calib", tiny, caches=(8201,), qdq=True)
    out = tmp_path / "ds"
    r = invoke("deploy", "deepstream", tiny, "-o", out, "--calib", calib, "--target", "agx-orin", "-s", "csi://0")
    assert r.exit_code == 0, r.output
    prop = glib_parse(out / "config_infer_primary.txt")["property"]
    assert prop["onnx-file"]["string"] == "calib/tiny.deepstream.int8-qdq.onnx"
    assert "int8-calib-file" not in prop and prop["network-mode"]["integer"] == 1
    assert "unverified" in r.output and "--engine" in r.output
    # The Q/DQ model behind nvinfer's arithmetic gives the calibrated Q/DQ model's probabilities.
    pixels = np.random.default_rng(7).integers(0, 256, size=(3, 3, SIZE, SIZE)).astype(np.float64)
    z = (pixels / 255 - MEAN.reshape(1, 3, 1, 1)) / STD.reshape(1, 3, 1, 1)
    reference = np.concatenate([softmax(run(os.path.join(calib, "model.qdq.onnx"), z[i:i + 1])) for i in range(3)])
    y = prop["net-scale-factor"]["double"] * (pixels - np.array(prop["offsets"]["double_list"]).reshape(1, 3, 1, 1))
    got = run(out / prop["onnx-file"]["string"], y)
    assert np.max(np.abs(got - reference)) < 1e-4
    # `edgealex build` of the DeepStream ONNX for TensorRT 10.3 takes the rewritten Q/DQ model from calib/.
    r = invoke("build", out / "tiny.deepstream.onnx", "--target", "agx-orin", "--precision", "int8", "--calib",
               out / "calib", "--print-trtexec", "-o", tmp_path / "engines")
    assert r.exit_code == 0, r.output
    assert f"--onnx={out / 'calib' / 'tiny.deepstream.int8-qdq.onnx'} " in r.stdout


def test_key_file_writer_refuses_values_that_would_break_the_line():
    from edgealex.deploy.keyfile import format_key_file
    from edgealex.errors import EdgeAlexError

    text = format_key_file([("property", [("#", "a comment"), ("offsets", [1.5, 2.0]), ("enable", True),
                                          ("skipped", None)])])
    assert text == "[property]\n# a comment\noffsets=1.5;2.0\nenable=1\n"
    with pytest.raises(EdgeAlexError):
        format_key_file([("source0", [("uri", "file:///a\nenable=0")])])


def test_unsupported_source_is_refused(tmp_path, tiny):
    r = invoke("deploy", "deepstream", tiny, "-o", tmp_path / "ds", "-s", "ftp://host/clip.mp4")
    assert r.exit_code == 1 and "not a source deepstream-app can open" in r.output
    assert not os.path.exists(tmp_path / "ds")


@pytest.mark.parametrize("uri, why", [("rtsp://", "has no host"), ("rtsp:///stream", "has no host"),
                                      ("http://:8080/x.mp4", "has no host"), ("rtsp://[::1/x", "is not a valid URI"),
                                      ("file://", "has no file path"), ("file://clip.mp4", "has no file path")])
def test_uris_without_host_or_path_are_refused(tmp_path, tiny, uri, why):
    # Before, these went into deepstream_app.txt as they were and failed only on the device.
    r = invoke("deploy", "deepstream", tiny, "-o", tmp_path / "ds", "-s", uri)
    assert r.exit_code == 1 and why in r.output, r.output
    assert not os.path.exists(tmp_path / "ds")


@pytest.mark.slow
def test_real_alexnet_conv1_fold_keeps_parity(tmp_path, alexnet_onnx):
    """torchvision's conv1 (11x11, stride 4, padding 2): the fold is exact at the padded borders too."""
    r = invoke("deploy", "deepstream", alexnet_onnx, "-o", tmp_path / "ds", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["rewrite"]["std_method"] == "fold-conv" and result["parity"]["max_abs_diff"] < 1e-4
    assert result["parity"]["top1_agreement"] == 1.0


@needs_glib
def test_bgr_model_gets_colour_format_1_and_bgr_offsets(tmp_path):
    import onnx

    from edgealex.modelinfo import ModelInfo, attach
    from edgealex.preprocess import Preprocess

    path = tiny_classifier(tmp_path / "tiny.onnx")
    model = onnx.load(path)
    spec = Preprocess(input_size=SIZE, resize=18, channel_order="BGR", mean=tuple(MEAN[::-1]), std=tuple(STD[::-1]))
    attach(model, ModelInfo(arch="tiny", labels=list(LABELS), preprocess=spec, opset=13))
    onnx.save(model, path)
    out = tmp_path / "ds"
    r = invoke("deploy", "deepstream", path, "-o", out, "--precision", "fp16")
    assert r.exit_code == 0, r.output
    prop = glib_parse(out / "config_infer_primary.txt")["property"]
    assert prop["model-color-format"]["integer"] == 1 and prop["network-mode"]["integer"] == 2
    assert prop["offsets"]["double_list"] == pytest.approx(list(255 * MEAN[::-1]), abs=1e-9)
    pixels = np.random.default_rng(2).integers(0, 256, size=(2, 3, SIZE, SIZE)).astype(np.float64)  # B, G, R planes
    z = (pixels / 255 - MEAN[::-1].reshape(1, 3, 1, 1)) / STD[::-1].reshape(1, 3, 1, 1)
    reference = np.concatenate([softmax(run(path, z[i:i + 1])) for i in range(2)])
    y = prop["net-scale-factor"]["double"] * (pixels - np.array(prop["offsets"]["double_list"]).reshape(1, 3, 1, 1))
    assert np.max(np.abs(run(out / prop["onnx-file"]["string"], y) - reference)) < 1e-4


@needs_glib
def test_dla_without_engine_lets_nvinfer_build_for_the_core_with_a_static_batch(tmp_path, tiny):
    import onnx

    out = tmp_path / "ds"
    r = invoke("deploy", "deepstream", tiny, "-o", out, "--dla", "1", "--target", "agx-xavier", "-s", "csi://0",
               "-s", "csi://1")
    assert r.exit_code == 0, r.output
    prop = glib_parse(out / "config_infer_primary.txt")["property"]
    assert prop["enable-dla"]["boolean"] is True and prop["use-dla-core"]["integer"] == 1
    assert prop["model-engine-file"]["string"] == "tiny.deepstream.onnx_b2_dla1_fp16.engine"
    ds = onnx.load(str(out / "tiny.deepstream.onnx"))
    assert ds.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2  # DLA: static shapes
    r = invoke("deploy", "deepstream", tiny, "-o", tmp_path / "nano", "--dla", "0", "--target", "nano")
    assert r.exit_code == 1 and "has no DLA" in r.output
    r = invoke("deploy", "deepstream", tiny, "-o", tmp_path / "fp32", "--dla", "0", "--precision", "fp32")
    assert r.exit_code == 1 and "DLA runs only FP16 or INT8" in r.output
