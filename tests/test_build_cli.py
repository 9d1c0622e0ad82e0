"""`edgealex build` on the command line: the issue's "done when" checks, run on a CPU machine."""

import json
import os
import shlex

import pytest
from conftest import cli_runner

from build_helpers import calibration_output, tiny_classifier, write_cache
from edgealex.cli.main import app

pytest.importorskip("onnx")


def invoke(*args):
    return cli_runner().invoke(app, [str(a) for a in args])


def argv_of(output):
    """The trtexec argv from the printed command (the one line that is not a # comment)."""
    lines = [line for line in output.splitlines() if line.startswith("/usr/src/tensorrt/bin/trtexec")]
    assert len(lines) == 1, output
    return shlex.split(lines[0])


def test_auto_build_on_this_machine_makes_an_ort_engine(tmp_path):
    from edgealex.detect import detect_target

    if detect_target().backend != "ort":
        pytest.skip("this machine is detected as a TensorRT target")
    pytest.importorskip("onnxruntime")
    model = tiny_classifier(tmp_path / "tiny.onnx")
    out = tmp_path / "engines"
    r = invoke("build", model, "-o", out)
    assert r.exit_code == 0, r.output
    assert "builder: ort (target cpu runs ONNX Runtime" in r.stdout
    names = sorted(os.listdir(out))
    assert len(names) == 2 and names[0].endswith("-cpu.onnx") and names[1] == names[0] + ".json"
    assert names[0].startswith("tiny-fp32-cpu-ort")


def test_xavier_int8_dla_prints_the_trt85_command(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx")
    calib = calibration_output(tmp_path / "calib", model, caches=(8201, 8502), qdq=False)
    out = tmp_path / "engines"
    r = invoke("build", model, "--target", "agx-xavier", "--precision", "int8", "--dla", "0", "--calib", calib,
               "--print-trtexec", "-o", out)
    assert r.exit_code == 0, r.output
    argv = argv_of(r.stdout)
    engine = os.path.join(str(out), "tiny-int8-dla0-trt8.5.2-agx-xavier.engine")
    assert argv[1:] == [f"--onnx={model}", f"--saveEngine={engine}", "--memPoolSize=workspace:2048", "--fp16",
                        "--int8", "--calib=" + os.path.join(calib, "calib-8502.cache"), "--useDLACore=0",
                        "--allowGPUFallback", "--profilingVerbosity=detailed", "--buildOnly", "--verbose"]
    assert not os.path.exists(engine)
    assert "TensorRT 8.5.2" in r.stdout and "not run" in r.stdout


def test_nano_fp16_prints_the_trt82_command(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx")
    r = invoke("build", model, "--target", "nano", "--precision", "fp16", "--print-trtexec", "-o", tmp_path / "e")
    assert r.exit_code == 0, r.output
    argv = argv_of(r.stdout)
    assert "--workspace=512" in argv and "--fp16" in argv and "--buildOnly" in argv
    assert not any(a.startswith("--memPoolSize") for a in argv) and "--int8" not in argv
    assert argv[2].endswith("tiny-fp16-gpu-trt8.2.1-nano.engine")


def test_nano_int8_is_refused_with_the_reason(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx")
    r = invoke("build", model, "--target", "nano", "--precision", "int8", "--print-trtexec", "-o", tmp_path / "e")
    assert r.exit_code == 1
    assert "target nano | " in r.output and "has no fast INT8" in r.output and "--force-int8" in r.output
    assert "Traceback" not in r.output
    forced = invoke("build", model, "--target", "nano", "--precision", "int8", "--force-int8", "--calib",
                    write_cache(tmp_path / "n.cache", 8201), "--print-trtexec", "-o", tmp_path / "e")
    assert forced.exit_code == 0, forced.output
    assert "building INT8 anyway because it was forced" in forced.output
    assert "--calib=" + str(tmp_path / "n.cache") in argv_of(forced.stdout)


def test_refusals_on_the_command_line(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx")
    r = invoke("build", model, "--target", "agx-xavier", "--precision", "fp32", "--dla", "0", "--print-trtexec")
    assert r.exit_code == 1 and "DLA runs only FP16 or INT8" in r.output
    r = invoke("build", model, "--target", "agx-xavier", "--precision", "fp16", "--dla-core", "2", "--print-trtexec")
    assert r.exit_code == 1 and "DLA core 2 does not exist" in r.output
    r = invoke("build", model, "--target", "agx-xavier", "--precision", "int8", "--print-trtexec")
    assert r.exit_code == 1 and "INT8 needs calibration data" in r.output
    r = invoke("build", model, "--target", "cpu", "--print-trtexec")
    assert r.exit_code == 1 and "builds ONNX Runtime engines, not TensorRT" in r.output
    calib = calibration_output(tmp_path / "calib", model, caches=(8201, 8502), qdq=False)
    r = invoke("build", model, "--target", "agx-orin", "--precision", "int8", "--dla", "1", "--calib", calib,
               "--print-trtexec")
    assert r.exit_code == 1 and "needs a calibration cache for TensorRT 10.3.0 (100300)" in r.output
    assert "--trt-version agx-orin" in r.output
    dynamic = tiny_classifier(tmp_path / "dyn.onnx", batch=None)
    r = invoke("build", dynamic, "--target", "agx-xavier", "--precision", "fp16", "--dla", "0", "--print-trtexec")
    assert r.exit_code == 1 and "DLA does not support dynamic shapes" in r.output
    assert "Traceback" not in r.output


def test_json_output(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx", batch=None)
    r = invoke("build", model, "--target", "xavier-nx", "--precision", "fp16", "--timing-cache", tmp_path / "t.cache",
               "--workspace-mib", "300", "--print-trtexec", "--json", "-o", tmp_path / "e")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["builder"] == "trtexec" and data["printed_only"] is True
    assert "--memPoolSize=workspace:300" in data["trtexec_command"]
    assert "--timingCacheFile=" + str(tmp_path / "t.cache") in data["trtexec_command"]
    # a dynamic batch gets a real optimization profile (default max 8), not batch 1 (issue 12)
    assert "--minShapes=input:1x3x16x16 --optShapes=input:8x3x16x16 --maxShapes=input:8x3x16x16" in \
        data["trtexec_command"]
    assert data["plan"]["batch_profile"] == {"min": 1, "opt": 8, "max": 8}
    assert data["plan"]["timing_cache"] is True and data["plan"]["generation"] == "8.5"


def test_build_of_a_pytorch_checkpoint_points_to_export(tmp_path):
    """Issue 17: `build model.pt` recognises a PyTorch checkpoint and names the command that fixes it."""
    torch = pytest.importorskip("torch")
    weights = tmp_path / "model.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, str(weights))
    r = invoke("build", str(weights), "-o", str(tmp_path / "engines"))
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "is a PyTorch checkpoint, not an ONNX model" in r.output
    assert f"edgealex export --weights {weights} -o model.onnx" in r.output
    garbage = tmp_path / "junk.onnx"
    garbage.write_bytes(b"not a model at all")
    r = invoke("build", str(garbage), "-o", str(tmp_path / "engines"))
    assert r.exit_code == 1 and "not a readable ONNX file" in r.output


def test_the_int8_weight_qdq_onnx_is_refused_for_tensorrt_8_and_as_calib(tmp_path):
    """Found by a fresh-user attack (issue 17): the calibrate Q/DQ ONNX (INT8 weight initializers,
    TensorRT >= 10) got a TensorRT 8.5 trtexec command, and as --calib a utf-8 decoding error."""
    import cv2
    import numpy as np
    from conftest import require_calibrate
    from edgealex.calib.pipeline import calibrate

    require_calibrate()
    model = tiny_classifier(tmp_path / "tiny.onnx")
    images = tmp_path / "imgs"
    for i in range(10):
        os.makedirs(images / "a", exist_ok=True)
        cv2.imwrite(str(images / "a" / f"{i}.png"), np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    result = calibrate(model, images, tmp_path / "calib", method="minmax", min_agreement=0.0, progress=False,
                       ort_native=False)
    r = invoke("build", result.qdq_onnx, "--target", "agx-xavier", "--precision", "fp16", "--print-trtexec",
               "-o", tmp_path / "e")
    assert r.exit_code == 1 and "TensorRT 8.5.2 does not take" in r.output and "--calib" in r.output
    assert "Traceback" not in r.output
    r = invoke("build", result.qdq_onnx, "--target", "agx-orin", "--precision", "fp16", "--print-trtexec",
               "-o", tmp_path / "e")
    assert r.exit_code == 0 and "TensorRT 10" in r.output, r.output  # TensorRT 10 (JetPack 6) takes it
    r = invoke("build", model, "--target", "agx-orin", "--precision", "int8", "--calib", result.qdq_onnx,
               "--print-trtexec", "-o", tmp_path / "e")
    assert r.exit_code == 1 and "not one of its ONNX models" in r.output and "utf-8" not in r.output
