"""Issue 12: right on real models, caches and images (each test fails on the code before the fix).

Dynamic batch profiles, calibration cache ownership, opset limits, EXIF orientation, the
torchvision resize, input sizes, and user errors instead of tracebacks.
"""

import json
import re
import os
import shlex

import numpy as np
import pytest
from typer.testing import CliRunner

from build_helpers import SIZE, tiny_classifier
from edgealex.cli.main import app
from edgealex.errors import EdgeAlexError

pytest.importorskip("onnx")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result, *needles):
    """exit 1, the 'subject | what.' line on stderr, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for needle in needles:
        assert needle in result.output, result.output
    return result.output


def trtexec_argv(output):
    lines = [line for line in output.splitlines() if "trtexec --onnx=" in line]
    assert len(lines) == 1, output
    return shlex.split(lines[0])


# -- 1. dynamic batch -----------------------------------------------------------------------------

def test_dynamic_batch_gets_a_real_profile_in_the_trtexec_command(tmp_path):
    model = tiny_classifier(tmp_path / "dyn.onnx", batch=None)
    r = invoke("build", model, "--target", "agx-orin", "--print-trtexec", "--max-batch", "8", "--opt-batch", "4",
               "-o", tmp_path / "e")
    assert r.exit_code == 0, r.output
    argv = trtexec_argv(r.stdout)
    assert f"--minShapes=input:1x3x{SIZE}x{SIZE}" in argv
    assert f"--optShapes=input:4x3x{SIZE}x{SIZE}" in argv
    assert f"--maxShapes=input:8x3x{SIZE}x{SIZE}" in argv
    assert not any(a.startswith("--shapes=") for a in argv)


def test_batch_profile_rules():
    from edgealex.build.plan import batch_profile, make_plan, profile_shapes

    assert batch_profile([None, 3, 16, 16], 8, 2) == {"min": 1, "opt": 2, "max": 8}
    assert batch_profile(["batch", 3, 16, 16]) == {"min": 1, "opt": 8, "max": 8}
    assert batch_profile([1, 3, 16, 16]) is None
    with pytest.raises(EdgeAlexError, match="static batch of 1"):
        batch_profile([1, 3, 16, 16], max_batch=4)
    with pytest.raises(EdgeAlexError, match="above --max-batch 2"):
        batch_profile([None, 3, 16, 16], max_batch=2, opt_batch=4)
    profile = batch_profile([None, 3, 16, 16], 8, 2)
    assert profile_shapes(profile, [None, 3, 16, 16]) == ([1, 3, 16, 16], [2, 3, 16, 16], [8, 3, 16, 16])
    # the plan the Python builder follows carries it; DLA refuses it
    assert make_plan("8.2.1", "fp16", batch_profile=profile).batch_profile == profile
    with pytest.raises(EdgeAlexError, match="DLA does not support dynamic shapes"):
        make_plan("8.5.2", "fp16", dla_core=0, batch_profile=profile)


def test_a_max_batch_past_the_tensor_limit_is_refused(tmp_path):
    # --max-batch 99999999999999999999 used to go straight into --maxShapes (past TensorRT's int32 extents)
    from edgealex.build.plan import MAX_TENSOR_ELEMENTS, batch_profile

    per_image = 3 * 224 * 224
    most = MAX_TENSOR_ELEMENTS // per_image
    assert batch_profile([None, 3, 224, 224], most)["max"] == most
    with pytest.raises(EdgeAlexError, match=f"largest batch of a 3x224x224 input is {most}"):
        batch_profile([None, 3, 224, 224], most + 1)
    model = tiny_classifier(tmp_path / "dyn.onnx", batch=None)
    for option in ("--max-batch", "--opt-batch"):
        r = invoke("build", model, "--target", "agx-orin", "--print-trtexec", option, "99999999999999999999",
                   "-o", tmp_path / "e")
        one_line_error(r, f"{option} | 99999999999999999999 images of 3x{SIZE}x{SIZE}")


def test_dla_build_of_a_dynamic_onnx_is_refused_with_the_fix(tmp_path):
    model = tiny_classifier(tmp_path / "dyn.onnx", batch=None)
    r = invoke("build", model, "--target", "agx-orin", "--dla", "0", "--print-trtexec", "-o", tmp_path / "e")
    one_line_error(r, "DLA does not support dynamic shapes", "--batch N")


@pytest.fixture
def dyn_engine(tmp_path):
    pytest.importorskip("onnxruntime")
    model = tiny_classifier(tmp_path / "dyn.onnx", batch=None)
    r = invoke("build", model, "--target", "cpu", "--max-batch", "4", "--opt-batch", "2", "-o", tmp_path / "e",
               "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["engine"]


def test_engine_sidecar_records_the_profile(dyn_engine):
    with open(dyn_engine + ".json") as handle:
        side = json.load(handle)
    assert side["batch_profile"] == {"min": 1, "opt": 2, "max": 4}
    assert side["input_shape"][0] is None


def test_run_refuses_a_batch_outside_the_profile_before_starting(dyn_engine, tmp_path):
    log = tmp_path / "v.jsonl"
    r = invoke("run", dyn_engine, "--source", "synthetic://?width=64&height=64&fps=0&pool=1", "--max-frames", "8",
               "--batch", "8", "--sink", log)
    one_line_error(r, "outside the engine's optimization profile (batch 1..4)", "--max-batch 8")
    assert not log.exists()
    ok = invoke("run", dyn_engine, "--source", "synthetic://?width=64&height=64&fps=0&pool=1", "--max-frames", "8",
                "--batch", "4", "--threads", "1")
    assert ok.exit_code == 0, ok.output


def test_bench_refuses_a_batch_outside_the_profile_before_measuring(dyn_engine, tmp_path):
    out = tmp_path / "results"
    r = invoke("bench", dyn_engine, "--batch", "1,2,8", "--iterations", "2", "--warmup", "0", "--power", "none",
               "-o", out)
    one_line_error(r, "8 is outside the engine's optimization profile (batch 1..4)")
    assert not out.exists() or not os.listdir(out)


# -- 2. calibration cache ownership ---------------------------------------------------------------

@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A real `edgealex calibrate` output of one model (with a TensorRT 8.2.1 cache + sidecar)."""
    pytest.importorskip("onnxruntime")
    from test_calib import tiny_model, write_colour_folder

    from edgealex.calib.pipeline import calibrate

    root = tmp_path_factory.mktemp("calibrated")
    model = tiny_model(root / "a.onnx")
    result = calibrate(model, write_colour_folder(root / "calib", per_class=5),
                       str(root / "out"), holdout=write_colour_folder(root / "held", per_class=3, seed=500),
                       method="minmax", progress=False, trt_versions=["8.2.1"])
    (cache,) = result.caches.values()
    return model, cache


def test_bare_cache_of_another_model_is_refused_by_its_sidecar(calibrated, tmp_path):
    _, cache = calibrated
    other = tiny_classifier(tmp_path / "b.onnx")
    r = invoke("build", other, "--target", "nano", "--precision", "int8", "--force-int8", "--calib", cache,
               "--print-trtexec", "-o", tmp_path / "e")
    one_line_error(r, "made for another model", "edgealex calibrate")


def test_cache_without_sidecar_is_checked_by_tensor_names(calibrated, tmp_path):
    import shutil

    _, cache = calibrated
    bare = tmp_path / "moved.cache"
    shutil.copy(cache, bare)  # no sidecar travels with it
    other = tiny_classifier(tmp_path / "b.onnx")
    r = invoke("build", other, "--target", "nano", "--precision", "int8", "--force-int8", "--calib", bare,
               "--print-trtexec", "-o", tmp_path / "e")
    out = one_line_error(r, "does not belong to b.onnx", "are not in the model", "have no range")
    assert "conv_out" in out and "conv," in out  # a foreign name and a missing one, by name


def test_own_cache_still_builds(calibrated, tmp_path):
    model, cache = calibrated
    r = invoke("build", model, "--target", "nano", "--precision", "int8", "--force-int8", "--calib", cache,
               "--print-trtexec", "-o", tmp_path / "e")
    assert r.exit_code == 0, r.output
    assert "--calib=" + cache in r.stdout


def test_cache_sidecar_left_out_must_be_a_list(calibrated, tmp_path):
    # "left_out": "abc" was read as "nothing left out" without a word
    import shutil

    from edgealex.artifacts import sidecar_path

    model, cache = calibrated
    copy = tmp_path / "own.cache"
    shutil.copy(cache, copy)
    side = json.loads(open(sidecar_path(cache)).read())
    side["left_out"] = "abc"
    with open(sidecar_path(str(copy)), "w") as handle:
        json.dump(side, handle)
    r = invoke("build", model, "--target", "nano", "--precision", "int8", "--force-int8", "--calib", copy,
               "--print-trtexec", "-o", tmp_path / "e")
    one_line_error(r, "'left_out' is 'abc', not a list")


# -- 3. opset against the target's ONNX parser ----------------------------------------------------

def _with_opset(src, dst, opset):
    import onnx

    model = onnx.load(str(src))
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = opset
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return str(dst)


@pytest.mark.parametrize("target, opset, limit", [("nano", 17, 13), ("agx-xavier", 18, 17), ("agx-orin", 21, 20)])
def test_build_and_print_trtexec_refuse_an_opset_the_parser_cannot_read(tmp_path, target, opset, limit):
    model = _with_opset(tiny_classifier(tmp_path / "m13.onnx"), tmp_path / "m.onnx", opset)
    r = invoke("build", model, "--target", target, "--print-trtexec", "-o", tmp_path / "e")
    one_line_error(r, f"opset {opset}", f"up to opset {limit}", f"re-export with --opset {limit}")
    ok = _with_opset(model, tmp_path / "ok.onnx", limit)
    assert invoke("build", ok, "--target", target, "--print-trtexec", "-o", tmp_path / "e").exit_code == 0


def test_dla_check_refuses_an_opset_the_parser_cannot_read(tmp_path):
    model = _with_opset(tiny_classifier(tmp_path / "m13.onnx"), tmp_path / "m.onnx", 18)
    r = invoke("dla-check", model, "--target", "agx-xavier", "--no-tensorrt")
    one_line_error(r, "opset 18", "re-export with --opset 17")


def test_every_tensorrt_target_names_its_opset_limit():
    from edgealex.target import list_targets

    limits = {t.name: t.max_onnx_opset for t in list_targets() if t.backend == "tensorrt"}
    assert limits["nano"] == 13 and limits["agx-xavier"] == 17 and limits["agx-orin"] == 20
    assert all(isinstance(v, int) for v in limits.values())


def test_dla_check_of_an_empty_onnx_is_an_error(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    r = invoke("dla-check", empty, "--target", "agx-xavier", "--no-tensorrt")
    one_line_error(r, "empty file (0 bytes)")


# -- 4. EXIF orientation --------------------------------------------------------------------------

def _asymmetric(height=240, width=320):
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x * 255 // width), (y * 255 // height), ((x + 2 * y) % 256)], axis=-1).astype(np.uint8)
    img[10:50, 20:100] = (255, 0, 0)  # a marker near the top-left corner
    return img


def _save_with_orientation(path, array, orientation, **kwargs):
    pytest.importorskip("PIL")  # Pillow comes with matplotlib (the report extra)
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array).save(str(path), exif=exif.tobytes(), **kwargs)
    return str(path)


def _pil_upright(path, mode=None):
    from PIL import Image, ImageOps

    with Image.open(str(path)) as im:
        up = ImageOps.exif_transpose(im)
        return np.asarray(up.convert(mode) if mode else up)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_orientation_is_applied_for_every_tag_value(tmp_path, orientation):
    import cv2

    from edgealex.preprocess import read_image

    path = _save_with_orientation(tmp_path / f"o{orientation}.jpg", _asymmetric(), orientation, quality=95)
    got = read_image(path)
    expected = cv2.imread(path, cv2.IMREAD_COLOR)  # OpenCV applies EXIF orientation here
    assert got.shape == expected.shape == ((320, 240, 3) if orientation >= 5 else (240, 320, 3))
    assert np.array_equal(got, expected)
    # and it is upright the way Pillow sees it (JPEG decoders differ by a few levels)
    pil = _pil_upright(path, "RGB")[:, :, ::-1]
    assert np.mean(np.abs(got.astype(int) - pil.astype(int))) < 2.0


def test_orientation_after_fill_bytes_before_the_exif_segment(tmp_path):
    """0xFF fill bytes may precede any JPEG marker (ITU T.81 B.1.1.2): the EXIF walk skips them as
    the pixel-limit header reader does, instead of reading a fill byte as a marker and a huge length."""
    import cv2

    from edgealex.preprocess import exif_orientation, read_image

    path = _save_with_orientation(tmp_path / "o6.jpg", _asymmetric(), 6, quality=95)
    data = open(path, "rb").read()
    at = data.index(b"\xff\xe1Exif"[:2])  # the APP1 (Exif) marker
    padded = tmp_path / "o6-fill.jpg"
    padded.write_bytes(data[:at] + b"\xff\xff" + data[at:])  # two fill bytes before APP1
    assert exif_orientation(padded.read_bytes()) == 6
    got = read_image(str(padded))
    assert got.shape == (320, 240, 3)
    assert np.array_equal(got, read_image(path))
    assert cv2.imread(str(padded), cv2.IMREAD_UNCHANGED).shape == (240, 320, 3)  # the decoder takes the file


def test_orientation_keeps_16_bit_depth(tmp_path):
    from edgealex.preprocess import read_image

    gray16 = (np.arange(240 * 320, dtype=np.uint32).reshape(240, 320) * 7 % 65536).astype(np.uint16)
    path = _save_with_orientation(tmp_path / "g16.png", gray16, 6)
    got = read_image(path)
    assert got.dtype == np.uint16 and got.shape == (320, 240)
    assert np.array_equal(got, _pil_upright(path).astype(np.uint16))


def test_orientation_keeps_alpha_in_png_and_webp(tmp_path):
    from edgealex.preprocess import read_image

    rgba = np.dstack([_asymmetric(), np.tile(np.arange(320, dtype=np.uint8), (240, 1))])
    png = _save_with_orientation(tmp_path / "a.png", rgba, 8)
    got = read_image(png)
    assert got.shape == (320, 240, 4)
    expected = _pil_upright(png, "RGBA")[:, :, [2, 1, 0, 3]]
    assert np.array_equal(got, expected)
    webp = _save_with_orientation(tmp_path / "a.webp", rgba, 3, lossless=True)
    got = read_image(webp)
    assert got.shape == (240, 320, 4)
    assert np.array_equal(got, _pil_upright(webp, "RGBA")[:, :, [2, 1, 0, 3]])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_is_applied_once(tmp_path, orientation):
    # OpenCV's TIFF decoder turns the pixels upright itself, even with IMREAD_UNCHANGED
    # (grfmt_tiff.cpp fixOrientation); read_image used to apply tag 274 a second time.
    from edgealex.preprocess import read_image

    rgb = _asymmetric()
    path = _save_with_orientation(tmp_path / f"o{orientation}.tiff", rgb, orientation, compression="raw")
    got = read_image(path)
    expected = _pil_upright(path, "RGB")[:, :, ::-1]
    assert got.shape == expected.shape == ((320, 240, 3) if orientation >= 5 else (240, 320, 3))
    assert np.array_equal(got, expected)


def test_tiff_orientation_keeps_16_bit_depth(tmp_path):
    from edgealex.preprocess import read_image

    gray16 = (np.arange(240 * 320, dtype=np.uint32).reshape(240, 320) * 7 % 65536).astype(np.uint16)
    path = _save_with_orientation(tmp_path / "g16.tiff", gray16, 6)
    got = read_image(path)
    assert got.dtype == np.uint16 and got.shape == (320, 240)
    assert np.array_equal(got, np.rot90(gray16, -1))  # orientation 6: rotate 90 degrees clockwise


# -- 5. torchvision's resize ----------------------------------------------------------------------

def _photo():
    matplotlib = pytest.importorskip("matplotlib")

    path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")
    if not os.path.isfile(path):
        pytest.skip("matplotlib's sample photograph is not installed")
    return path


def _torchvision_reference(pil_rgb, resize=256, crop=224):
    """torchvision's Resize(256) + CenterCrop(224) + ToTensor + Normalize, written out with Pillow."""
    from PIL import Image

    w, h = pil_rgb.size
    if w <= h:
        new_w, new_h = resize, int(resize * h / w)
    else:
        new_h, new_w = resize, int(resize * w / h)
    img = np.asarray(pil_rgb.resize((new_w, new_h), Image.BILINEAR), dtype=np.float32) / 255.0
    top, left = int(round((new_h - crop) / 2.0)), int(round((new_w - crop) / 2.0))
    img = img[top:top + crop, left:left + crop]
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    return ((img - mean) / std).transpose(2, 0, 1)


@pytest.mark.parametrize("size", [None, (1280, 720), (720, 1280), (300, 200)])
def test_pil_bilinear_reproduces_torchvision_on_a_photograph(size):
    from PIL import Image

    from edgealex.preprocess import Preprocess, preprocess

    photo = Image.open(_photo()).convert("RGB")
    if size:
        photo = photo.resize(size, Image.LANCZOS)
    # a 2-pixel texture, the case where a plain bilinear resize aliases
    rgb = np.asarray(photo).copy()
    rgb[::2, ::2] = 255 - rgb[::2, ::2]
    frame = Image.fromarray(rgb)
    expected = _torchvision_reference(frame)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    got = preprocess(bgr, Preprocess(interpolation="pil-bilinear"))
    assert got.shape == expected.shape
    # float32 normalisation order only: the pixels are Pillow's exactly
    assert np.max(np.abs(got - expected)) < 1e-5
    old = preprocess(bgr, Preprocess())  # OpenCV bilinear on the crop, no antialiasing
    assert np.mean(np.abs(old - expected)) > 0.03  # 0.04 (600x512) to 0.7 (300x200) normalised units


def test_old_records_without_the_key_keep_linear():
    from edgealex.preprocess import Preprocess

    record = Preprocess().to_dict()
    del record["interpolation"]  # an ONNX exported before the key existed
    assert Preprocess.from_dict(record).interpolation == "linear"


# -- 6. input sizes -------------------------------------------------------------------------------

def test_every_input_size_from_63_has_an_exportable_equivalent():
    torch = pytest.importorskip("torch")
    from edgealex.models.alexnet import build_model, export_module

    from edgealex.models.alexnet import feature_map_side

    model = build_model("alexnet-v1", num_classes=5, lrn=False, seed=0).eval()
    sizes = {}
    for size in range(63, 330):  # the smallest input for each feature-map side 1..9
        sizes.setdefault(feature_map_side(size), size)
    assert sorted(sizes) == list(range(1, 10))
    # every side kind: smaller than the pool (1, 2, 5), a fixed pool (7 = 6+1), a branch pool (8, 9)
    for size in [sizes[side] for side in (1, 2, 5, 7, 8, 9)]:
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            diff = (model(x) - export_module(model, size)(x)).abs().max().item()
        assert diff < 1e-5, (size, diff)


@pytest.mark.parametrize("size, ops, interpolation", [(256, {"AveragePool"}, "area"), (320, {"Conv", "Concat"}, None)])
def test_export_at_other_input_sizes(tmp_path, size, ops, interpolation):
    pytest.importorskip("torch")
    import onnx

    from edgealex.export.onnx import export_onnx
    from edgealex.modelinfo import read_model_info

    result = export_onnx(str(tmp_path / f"m{size}.onnx"), num_classes=5, input_size=size, parity_samples=1,
                         interpolation=interpolation)
    assert result.max_abs_diff < 1e-4 and result.info.input_shape == [1, 3, size, size]
    types = {n.op_type for n in onnx.load(result.path).graph.node}
    assert ops <= types and not {t for t in types if "Adaptive" in t or t in ("MatMul", "Resize")}
    # the interpolation chosen at export travels in the metadata; random init keeps linear
    assert read_model_info(result.path).preprocess.interpolation == (interpolation or "linear")


def test_torchvision_weights_export_with_pil_bilinear_at_the_smallest_size(tmp_path):
    torch = pytest.importorskip("torch")
    from edgealex.models.alexnet import build_model
    from edgealex.modelinfo import read_model_info

    weights = tmp_path / "tv.pth"
    torch.save(build_model("alexnet", num_classes=5, seed=1).state_dict(), str(weights))  # torchvision layout
    r = invoke("export", "--weights", weights, "--input-size", "63", "-o", tmp_path / "tv.onnx", "--json")
    assert r.exit_code == 0, r.output
    info = read_model_info(str(tmp_path / "tv.onnx"))
    assert info.preprocess.interpolation == "pil-bilinear" and info.input_shape == [1, 3, 63, 63]
    assert json.loads(r.stdout)["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("value", ["bogus", "LINEAR", ""])
def test_unknown_interpolation_names_the_option_and_every_choice(tmp_path, value):
    # it used to blame "preprocessing" and "the model's metadata", and left out auto
    r = invoke("export", "--interpolation", value, "--input-size", "63", "-o", tmp_path / "m.onnx")
    one_line_error(r, f"--interpolation | unknown value {value!r}", "auto, pil-bilinear, linear, area")
    assert not (tmp_path / "m.onnx").exists()


def test_default_preprocessing_warning_names_the_resize_it_uses(tmp_path, caplog):
    # an ONNX without edgealex metadata at 63x63 is read with resize 72, but the warning said 256
    import logging

    onnx = pytest.importorskip("onnx")
    from edgealex.modelinfo import read_model_info

    model = tiny_classifier(tmp_path / "plain.onnx")
    proto = onnx.load(model)
    del proto.metadata_props[:]
    onnx.save(proto, model)
    with caplog.at_level(logging.WARNING):
        info = read_model_info(model, allow_default=True)
    assert info.from_defaults and info.preprocess.input_size == SIZE
    expected = f"resize {info.preprocess.resize}, crop {SIZE}"
    assert any(expected in record.getMessage() for record in caplog.records), caplog.text


def test_a_folder_named_like_an_onnx_is_not_called_missing(tmp_path):
    folder = tmp_path / "model.onnx"
    folder.mkdir()
    one_line_error(invoke("dla-check", folder, "--target", "agx-orin"), "is a folder, not an ONNX model file")
    one_line_error(invoke("build", folder, "--target", "cpu", "-o", tmp_path / "e"),
                   "is a folder, not an ONNX model file")


@pytest.mark.parametrize("args, needle", [
    (["--batch", "99999999999"], "--batch | 99999999999 images of 3x63x63 are more than"),  # was a torch OOM traceback
    (["--batch", "4", "--dynamic-batch"], "--batch 4 | a static batch and --dynamic-batch were both given"),
    (["--num-classes", "-1"], "--num-classes -1 | a classifier needs at least 2 classes"),  # it said 0
])
def test_export_batch_conflicts_and_sizes_are_one_line(tmp_path, args, needle):
    r = invoke("export", "--input-size", "63", "--num-classes", "3", "-o", tmp_path / "m.onnx", *args)
    one_line_error(r, needle)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("args, needle", [
    (["--width-mult", "nan"], "--width-mult | nan is not a finite number"),   # it blamed --keep
    (["--width-mult", "-0"], "--width-mult | must be between 0 and 1"),
    (["--threads", "-1"], "--threads | must be a whole number >= 0"),         # was a RuntimeError traceback
])
def test_train_options_are_refused_by_their_own_names(tmp_path, args, needle):
    r = invoke("train", "-d", tmp_path / "no-data-needed", "-o", tmp_path / "m.pt", "--epochs", "1", *args)
    one_line_error(r, needle)
    assert not (tmp_path / "m.pt").exists()


def test_input_size_below_63_is_one_line(tmp_path):
    r = invoke("export", "--input-size", "16", "-o", tmp_path / "m.onnx")
    one_line_error(r, "--input-size 16", "at least 63")
    assert not (tmp_path / "m.onnx").exists()


# -- every remaining traceback becomes one user error ---------------------------------------------

@pytest.fixture
def cpu_engine(tmp_path):
    pytest.importorskip("onnxruntime")
    model = tiny_classifier(tmp_path / "tiny.onnx")
    r = invoke("build", model, "--target", "cpu", "-o", tmp_path / "e", "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["engine"]


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: [1, 2], "JSON list, not an object"),
    (lambda d: dict(d, schema="abc"), "schema is 'abc', not an integer"),
    (lambda d: dict(d, schema=None), "schema is None, not an integer"),
    (lambda d: dict(d, sha256=""), "sha256 is '', not 64 hex digits"),
    (lambda d: dict(d, input_shape="1x3"), "'input_shape' is '1x3'"),
])
def test_malformed_engine_sidecar_is_one_user_error(cpu_engine, mutate, needle):
    side = cpu_engine + ".json"
    with open(side) as handle:
        data = json.load(handle)
    with open(side, "w") as handle:
        json.dump(mutate(data), handle)
    r = invoke("run", cpu_engine, "--source", "synthetic://?width=64&height=64&fps=0&pool=1", "--max-frames", "2")
    one_line_error(r, needle, "rebuild the engine")
    r = invoke("bench", cpu_engine, "--iterations", "2", "--power", "none", "-o", os.path.dirname(cpu_engine) + "/r")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output


def test_trtexec_engine_sidecar_that_is_not_an_object(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    (tmp_path / "m.engine.json").write_text("[1, 2]")
    r = invoke("run", engine, "--max-frames", "1")
    one_line_error(r, "JSON list, not an object")


@pytest.mark.parametrize("variant", ["strings", "nulls"])
def test_report_of_results_with_string_or_null_figures(cpu_engine, tmp_path, variant):
    res = tmp_path / "res"
    r = invoke("bench", cpu_engine, "--iterations", "5", "--warmup-iters", "1", "--power", "none", "-o", res)
    assert r.exit_code == 0, r.output
    (path,) = [p for p in res.iterdir() if p.suffix == ".json"]
    data = json.loads(path.read_text())

    def walk(node):
        for key, value in list(node.items()):
            if isinstance(value, dict):
                walk(value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                node[key] = str(value) if variant == "strings" else None
    walk(data)
    path.write_text(json.dumps(data))
    r = invoke("report", res, "-o", tmp_path / "rep")
    one_line_error(r, "no benchmark results found")


def test_data_synth_to_an_unwritable_place(tmp_path):
    r = invoke("data", "synth", "-o", "/proc/edgealex-synth", "--per-class", "4", "--size", "64")
    one_line_error(r, "/proc/edgealex-synth", "choose a writable location")


def test_data_synth_to_a_read_only_mount(tmp_path):
    import subprocess

    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        r = invoke("data", "synth", "-o", mnt / "d", "--per-class", "4", "--size", "64")
        one_line_error(r, "not writable", "choose a writable location")
    finally:
        subprocess.run(["umount", str(mnt)])


@pytest.mark.parametrize("content, needle", [
    (b"timestamp,watts\n1.0,5\n2.0,\xff\xfe\n", "not UTF-8 text"),
    (b"timestamp,watts\n1.0,5\n2.0,nan\n", "power must be a finite number >= 0"),
    (b"timestamp,watts\n1.0,5\n2.0,-3\n", "power must be a finite number >= 0"),
    (b"timestamp,watts\n1.0,5\n2.0,inf\n", "power must be a finite number >= 0"),
])
def test_meter_log_that_is_not_utf8_or_has_impossible_watts(tmp_path, content, needle):
    from edgealex.bench.power import open_meter

    log = tmp_path / "meter.csv"
    log.write_bytes(content)
    meter = open_meter("csv:" + str(log))  # no traceback, no nan mJ/frame: power n/a with the reason
    assert not meter.available and needle in meter.reason


# -- bad input accepted silently ------------------------------------------------------------------

@pytest.mark.parametrize("elem", ["INT64", "UINT8"])
def test_integer_input_model_is_refused_by_run(tmp_path, elem):
    pytest.importorskip("onnxruntime")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["input"], ["f"], to=TensorProto.FLOAT),
         helper.make_node("GlobalAveragePool", ["f"], ["g"]),
         helper.make_node("Flatten", ["g"], ["logits"])], "int",
        [helper.make_tensor_value_info("input", getattr(TensorProto, elem), [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    path = tmp_path / "int.onnx"
    onnx.save(model, str(path))
    r = invoke("run", path, "--source", "synthetic://?width=64&height=64&fps=0&pool=1", "--max-frames", "2")
    one_line_error(r, "which would be cast to integers", "float32 image input")


@pytest.mark.parametrize("option, value", [("--duration", "nan"), ("--threshold", "nan"), ("--duration", "inf")])
def test_float_options_refuse_nan_and_inf(cpu_engine, option, value):
    r = invoke("run", cpu_engine, "--source", "synthetic://?width=64&height=64&fps=0&pool=1", "--max-frames", "2",
               option, value)
    one_line_error(r, option, "not a finite number")


def test_bench_float_options_refuse_nan(cpu_engine, tmp_path):
    r = invoke("bench", cpu_engine, "--duration", "nan", "--power", "none", "-o", tmp_path / "r")
    one_line_error(r, "--duration", "not a finite number")
    r = invoke("bench", cpu_engine, "--iterations", "2", "--idle", "nan", "--power", "none", "-o", tmp_path / "r")
    one_line_error(r, "--idle", "not a finite number")


def test_check_float_rule():
    from edgealex.validate import check_float

    assert check_float("--x", "0.5", 0, 1) == 0.5
    for bad in ("nan", float("inf"), "abc", True, None):
        with pytest.raises(EdgeAlexError):
            check_float("--x", bad)
    with pytest.raises(EdgeAlexError, match="must be > 0"):
        check_float("--x", 0, low=0, low_open=True)
    assert check_float("--x", None, allow_none=True) is None


@pytest.mark.parametrize("args, needle", [
    (["--power-interval-ms", "0"], "--power-interval-ms | must be > 0, got 0"),    # 0 was read as "unset"
    (["--power-interval-ms", "-0"], "--power-interval-ms | must be > 0, got -0"),
    (["--power-interval-ms", "-5"], "--power-interval-ms | must be > 0, got -5"),  # in ms, not -0.005
    (["--iterations", "2", "--duration", "nan"], "--duration | nan is not a finite number"),  # skipped before
    (["--iterations", "2", "--duration", "-1"], "--duration | must be > 0"),
])
def test_bench_float_options_are_checked_whatever_else_is_given(cpu_engine, tmp_path, args, needle):
    r = invoke("bench", cpu_engine, "--warmup-iters", "1", "--power", "none", "-o", tmp_path / "b", *args)
    one_line_error(r, needle)
    assert not (tmp_path / "b").exists() or not os.listdir(tmp_path / "b")


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_trtexec_warmup_must_be_a_finite_number(tmp_path, value):
    # nan/inf/-1 kept every query (the warm-up included) and wrote "warmup_s": NaN into the result
    times = tmp_path / "times.json"
    times.write_text(json.dumps([{"startH2dMs": 0.0, "startComputeMs": 0.1, "endComputeMs": 0.9,
                                  "endD2hMs": 1.0, "latencyMs": 1.0}] * 3))
    r = invoke("bench", "--import-trtexec", times, "--trtexec-warmup-ms", value, "-o", tmp_path / "res")
    one_line_error(r, "--trtexec-warmup-ms |")
    assert not (tmp_path / "res").exists() or not os.listdir(tmp_path / "res")


def test_check_float_fix_reads_right_without_bounds():
    from edgealex.validate import check_float

    with pytest.raises(EdgeAlexError) as info:
        check_float("--meter-offset", "nan", example="0")
    assert info.value.note == "pass --meter-offset 0 (any finite number)"
    with pytest.raises(EdgeAlexError) as info:
        check_float("--idle", -1, low=0, example="10")
    assert info.value.note == "pass --idle 10 (a finite number >= 0)"


def test_folder_of_only_undecodable_images_is_an_error(cpu_engine, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(b"not a jpeg")
    r = invoke("run", cpu_engine, "--source", folder)
    one_line_error(r, "none of its 3 image file(s) could be decoded")


# -- small things a user sees ---------------------------------------------------------------------

@pytest.mark.parametrize("key, values", [("std", [float("nan")] * 3), ("mean", [0.5, float("inf"), 0.5]),
                                          ("std", [0.2, "0.2", 0.2]), ("mean", [True, 0.4, 0.4])])
def test_preprocessing_with_non_finite_mean_or_std_is_refused(cpu_engine, key, values):
    # a sidecar or ONNX metadata with std NaN ran and turned every frame into NaN inputs
    from edgealex.artifacts import sidecar_path
    from edgealex.preprocess import Preprocess

    with pytest.raises(EdgeAlexError, match="mean and std need 3 finite numbers each"):
        Preprocess(**{key: tuple(values)})
    side = sidecar_path(cpu_engine)
    data = json.loads(open(side).read())
    data["model"]["preprocess"][key] = values
    with open(side, "w") as handle:
        json.dump(data, handle)
    r = invoke("run", cpu_engine, "--source", "synthetic://", "--max-frames", "2")
    one_line_error(r, "mean and std need 3 finite numbers each")


def test_truncated_png_is_refused_without_libpng_noise(tmp_path, capfd):
    # libpng's own error handler printed "libpng error: PNG input buffer is incomplete" on stderr
    # (fd 2, past OpenCV's logging) before the skip line of the folder source or calibrate
    import cv2

    from edgealex.preprocess import read_image

    whole = tmp_path / "whole.png"
    assert cv2.imwrite(str(whole), np.full((64, 80, 4), 40000, dtype=np.uint16))
    data = whole.read_bytes()
    assert read_image(whole).shape == (64, 80, 4)
    (tmp_path / "trailing.png").write_bytes(data + b"junk after IEND")
    assert read_image(tmp_path / "trailing.png").shape == (64, 80, 4)
    for cut in (len(data) // 2, len(data) - 12, len(data) - 5, 20):
        part = tmp_path / f"cut{cut}.png"
        part.write_bytes(data[:cut])
        capfd.readouterr()
        with pytest.raises(EdgeAlexError, match="truncated PNG|not a decodable image"):
            read_image(part)
        assert "libpng" not in capfd.readouterr().err


def test_no_opencv_or_ffmpeg_noise_before_the_error_line(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video")
    model = tiny_classifier(tmp_path / "tiny.onnx")
    proc = subprocess.run([sys.executable, "-m", "edgealex", "run", model, "--source", str(bad)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[0].startswith(str(bad) + " | OpenCV cannot open this video"), proc.stderr
    assert len(lines) == 2 and lines[1].startswith("Note:"), proc.stderr


def test_messages_name_the_flags_as_spelled(cpu_engine):
    r = invoke("run", cpu_engine, "--source", "synthetic://?width=64&height=64&fps=0&pool=1", "--max-frames", "2",
               "--threads", "-1")
    one_line_error(r, "--threads | must be >= 0")
    r = invoke("run", cpu_engine, "--source", "synthetic://?width=64&height=64&fps=0&pool=1", "--max-frames", "2",
               "--drop", "newest")
    one_line_error(r, "--drop | unknown value 'newest'")


def test_train_checks_its_output_before_the_first_epoch(tmp_path):
    pytest.importorskip("torch")
    r = invoke("train", "--data", tmp_path / "nowhere", "-o", "/proc/edgealex/model.pt")
    one_line_error(r, "/proc/edgealex", "choose a writable location")


def test_bench_rejects_bad_torch_weights_before_measuring(cpu_engine, tmp_path):
    pytest.importorskip("torch")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    out = tmp_path / "r"
    r = invoke("bench", cpu_engine, "--mode", "compare", "--baselines", "torch", "--torch-weights", bad,
               "--iterations", "2", "--power", "none", "-o", out)
    one_line_error(r, str(bad), "truncated or not a PyTorch file")
    assert not out.exists() or not [p for p in out.iterdir() if p.suffix == ".json"]


def test_truncated_checkpoint_message_is_whole(tmp_path):
    torch = pytest.importorskip("torch")
    from edgealex.models.alexnet import build_model

    full = tmp_path / "full.pth"
    torch.save(build_model("alexnet", num_classes=5).state_dict(), str(full))
    data = full.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[:len(data) // 2])
    r = invoke("export", "--weights", cut, "-o", tmp_path / "m.onnx")
    out = one_line_error(r, "the checkpoint is truncated or not a PyTorch file")
    first = out.strip().splitlines()[0]
    assert first.endswith(").") and "your checkpoint file is" not in first


@pytest.mark.parametrize("key, value, needle", [
    ("qdq_onnx", 5, "'qdq_onnx' is 5, not a string or null"),          # was a TypeError traceback
    ("gate_passed", "no", "'gate_passed' is 'no', not true/false"),     # a failed gate read as passed
    ("schema", "1", "schema is '1', not an integer"),
    ("schema", 99, "written by a newer edgealex"),
])
def test_calibration_manifest_fields_of_the_wrong_type_are_refused(tmp_path, key, value, needle):
    from edgealex.calib.pipeline import read_calibration

    record = {"artifact": "calibration", "schema": 1, "model_sha256": "ab", "qdq_onnx": "m.int8-qdq-trt.onnx",
              "ort_int8_onnx": None, "caches": {}, "gate_passed": True}
    (tmp_path / "calibration.json").write_text(json.dumps(record))
    assert read_calibration(str(tmp_path))["qdq_onnx"] == str(tmp_path / "m.int8-qdq-trt.onnx")
    record[key] = value
    (tmp_path / "calibration.json").write_text(json.dumps(record))
    with pytest.raises(EdgeAlexError, match=re.escape(needle)):
        read_calibration(str(tmp_path))


def test_malformed_calibration_manifest_and_training_record(tmp_path):
    from edgealex.calib.pipeline import read_calibration
    from edgealex.train.trainer import _reusable, settings_for

    (tmp_path / "calibration.json").write_text(json.dumps({"artifact": "calibration", "model_sha256": None}))
    with pytest.raises(EdgeAlexError, match="'model_sha256' is None"):
        read_calibration(str(tmp_path))
    (tmp_path / "calibration.json").write_text(json.dumps({"artifact": "calibration", "model_sha256": "ab",
                                                           "caches": {"abc": 3}}))
    with pytest.raises(EdgeAlexError, match="TensorRT version number: file name"):
        read_calibration(str(tmp_path))
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    (tmp_path / "m.pt.json").write_text("[1, 2]")
    assert _reusable(str(model), "hash", settings_for("fast")) is None  # retrains instead of a traceback


def test_build_prints_the_batch_profile(tmp_path):
    pytest.importorskip("onnxruntime")
    model = tiny_classifier(tmp_path / "dyn.onnx", batch=None)
    r = invoke("build", model, "--target", "cpu", "--max-batch", "16", "-o", tmp_path / "e")
    assert r.exit_code == 0, r.output
    assert "batch profile: min 1 / opt 16 / max 16" in r.stdout


@pytest.mark.parametrize("uri, needle", [
    ("synthetic://?width=64&height=64&fps=nan", "fps"),
    ("synthetic://?width=64&height=64&fps=-1", "fps"),
])
def test_uri_float_parameters_refuse_nan_and_negatives(cpu_engine, uri, needle):
    r = invoke("run", cpu_engine, "--source", uri, "--max-frames", "2")
    one_line_error(r, needle)
    assert "not a finite number" in r.output or "must be >= 0" in r.output


@pytest.mark.parametrize("uri, said", [("synthetic://?fps=-1", "fps must be >= 0, got -1"),
                                       ("synthetic://?fps=nan", "fps nan is not a finite number")])
def test_uri_number_options_name_the_uri_and_the_option(cpu_engine, uri, said):
    # Before: "synthetic://?fps=-1 fps | ...  Note: pass synthetic://?fps=-1 fps 0 (...)", a fix nobody can type.
    r = invoke("run", cpu_engine, "--source", uri, "--max-frames", "2")
    one_line_error(r, f"{uri} | {said}", "set fps=0 in the URI")
