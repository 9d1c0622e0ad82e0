"""The trtexec command per TensorRT version (facts §4), and running it through `build_engine`."""

import json
import os
import stat
import sys

import pytest

from build_helpers import tiny_classifier, write_cache
from edgealex.build.plan import make_plan
from edgealex.build.trtexec import (format_command, parse_trtexec_version, trtexec_command, version_from_number)
from edgealex.errors import EdgeAlexError

ONNX, ENGINE = "m.onnx", "e.engine"


def command(version, precision="fp16", **kw):
    plan_kw = {k: kw.pop(k) for k in ("dla_core", "gpu_fallback", "int8_source", "workspace_mib", "timing_cache")
               if k in kw}
    plan = make_plan(version, precision, **plan_kw)
    return trtexec_command(plan, ONNX, ENGINE, **kw)


def test_nano_82_fp16():
    assert command("8.2.1", workspace_mib=512) == [
        "trtexec", "--onnx=m.onnx", "--saveEngine=e.engine", "--workspace=512", "--fp16",
        "--profilingVerbosity=detailed", "--buildOnly", "--verbose"]


def test_80_adds_explicit_batch_and_has_no_profiling_verbosity():
    argv = command("8.0.1", workspace_mib=256)
    assert "--explicitBatch" in argv and "--workspace=256" in argv
    assert not any(a.startswith("--profilingVerbosity") for a in argv)


def test_xavier_85_int8_dla_with_cache():
    argv = command("8.5.2", "int8", dla_core=0, int8_source="cache", workspace_mib=2048, calib_cache="c.cache")
    assert argv == [
        "trtexec", "--onnx=m.onnx", "--saveEngine=e.engine", "--memPoolSize=workspace:2048", "--fp16", "--int8",
        "--calib=c.cache", "--useDLACore=0", "--allowGPUFallback", "--profilingVerbosity=detailed", "--buildOnly",
        "--verbose"]


def test_strict_dla_drops_allow_gpu_fallback():
    argv = command("8.5.2", "fp16", dla_core=1, gpu_fallback=False)
    assert "--useDLACore=1" in argv and "--allowGPUFallback" not in argv


@pytest.mark.parametrize("version, skip_flag", [("8.4.3", "--buildOnly"), ("8.5.2", "--buildOnly"),
                                                ("8.6.1", "--skipInference"), ("10.3.0", "--skipInference")])
def test_build_only_spelling(version, skip_flag):
    argv = command(version)
    assert skip_flag in argv
    assert any(a.startswith("--memPoolSize=workspace:") for a in argv)
    assert not any(a.startswith("--workspace=") for a in argv)
    assert "--explicitBatch" not in argv


def test_10_int8_qdq_has_no_calib():
    argv = command("10.3.0", "int8", int8_source="qdq")
    assert "--int8" in argv and "--fp16" in argv
    assert not any(a.startswith("--calib") for a in argv)


def test_11_has_no_precision_flags():
    for precision, source in (("fp16", None), ("int8", "qdq"), ("fp32", None)):
        argv = command("11.1.0", precision, int8_source=source)
        assert not {"--fp16", "--int8", "--best", "--stronglyTyped"} & set(argv)
        assert "--skipInference" in argv


def test_trtexec_cannot_calibrate_from_images():
    with pytest.raises(EdgeAlexError, match="cannot calibrate from images"):
        command("8.5.2", "int8", int8_source="images")


def test_timing_cache_and_dynamic_shapes():
    argv = trtexec_command(make_plan("8.5.2", "fp16", timing_cache=True), ONNX, ENGINE, timing_cache="t.cache",
                           input_name="input", input_shape=[1, 3, 224, 224], dynamic=True)
    assert "--timingCacheFile=t.cache" in argv and "--shapes=input:1x3x224x224" in argv
    static = trtexec_command(make_plan("8.5.2", "fp16"), ONNX, ENGINE, input_name="input",
                             input_shape=[1, 3, 224, 224], dynamic=False)
    assert not any(a.startswith("--shapes") for a in static)  # trtexec refuses shapes for a static model


def test_version_numbers_and_banner():
    assert version_from_number(8201) == "8.2.1" and version_from_number(8502) == "8.5.2"
    assert version_from_number(100300) == "10.3.0" and version_from_number(110100) == "11.1.0"
    banner = "&&&& RUNNING TensorRT.trtexec [TensorRT v8502] # /usr/src/tensorrt/bin/trtexec --help"
    assert parse_trtexec_version(banner) == "8.5.2"
    assert parse_trtexec_version("no banner") is None


def test_format_command_quotes():
    assert format_command(["trtexec", "--onnx=my model.onnx"]) == "trtexec '--onnx=my model.onnx'"


# --- running trtexec through build_engine -----------------------------------------------------------
# A stand-in executable named trtexec: it prints what TensorRT 8.5's trtexec prints (banner, device,
# DLA/GPU listing, PASSED) and writes the --saveEngine file, or fails like trtexec does. It lets the
# test drive build_engine's real subprocess, log, atomic-write and sidecar code without TensorRT.
STAND_IN = r'''#!{python}
import sys
args = sys.argv[1:]
print("&&&& RUNNING TensorRT.trtexec [TensorRT v{number}] # trtexec " + " ".join(args))
if args == ["--help"]:
    sys.exit(0)
print("[11/20/2026-10:00:00] [I] Selected Device: Xavier")
if "{mode}" == "fail":
    print("[11/20/2026-10:00:01] [E] Error[4]: [network.cpp::validate::2997] Error Code 4: Internal Error (DLA validation failed)")
    print("&&&& FAILED TensorRT.trtexec [TensorRT v{number}]")
    sys.exit(1)
print("[11/20/2026-10:00:01] [W] [TRT] Layer 'Gemm_3' (MATRIX_MULTIPLY): Unsupported on DLA. Switching this layer's device type to GPU.")
print("[11/20/2026-10:00:02] [I] [TRT] ---------- Layers Running on DLA ----------")
print("[11/20/2026-10:00:02] [I] [TRT] [DlaLayer] {{ForeignNode[Conv_0...Relu_1]}}")
print("[11/20/2026-10:00:02] [I] [TRT] ---------- Layers Running on GPU ----------")
print("[11/20/2026-10:00:02] [I] [TRT] [GpuLayer] SHUFFLE: Flatten_2")
print("[11/20/2026-10:00:02] [I] [TRT] [GpuLayer] MATRIX_MULTIPLY: Gemm_3")
engine = [a.split("=", 1)[1] for a in args if a.startswith("--saveEngine=")][0]
with open(engine, "wb") as handle:
    handle.write(b"serialized-engine-bytes " + " ".join(args).encode())
print("&&&& PASSED TensorRT.trtexec [TensorRT v{number}] # trtexec")
'''


def install_stand_in(folder, mode="ok", number=8502):
    path = os.path.join(str(folder), "trtexec")
    with open(path, "w") as handle:
        handle.write(STAND_IN.format(python=sys.executable, mode=mode, number=number))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture()
def trtexec_on_path(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()

    def install(mode="ok", number=8502):
        install_stand_in(bin_dir, mode, number)
        monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))

    return install


def test_build_with_trtexec_writes_engine_sidecar_and_layers(tmp_path, trtexec_on_path):
    from edgealex.build.api import build_engine
    from edgealex.engine import check_record, read_record

    trtexec_on_path()
    onnx_path = tiny_classifier(tmp_path / "tiny.onnx")
    cache = write_cache(tmp_path / "x.cache", 8502)
    out = tmp_path / "engines"
    result = build_engine(onnx_path, target="agx-xavier", precision="int8", dla_core=0, calib=cache,
                          builder="trtexec", out_dir=str(out))
    assert result.builder == "trtexec" and "requested" in result.builder_reason
    assert os.path.basename(result.engine_path) == "tiny-int8-dla0-trt8.5.2-agx-xavier.engine"
    record = read_record(result.engine_path)
    assert record.backend == "tensorrt" and record.backend_version == "8.5.2" and record.builder == "trtexec"
    assert record.device == "dla0" and record.dla_core == 0 and record.gpu_fallback is True
    assert record.device_name == "Xavier" and record.soc == "tegra194" and record.target == "agx-xavier"
    assert record.calibration["method"] == "cache" and record.calibration["cache_version_number"] == 8502
    assert "--calib=" + cache in record.flags and "--useDLACore=0" in record.flags
    assert record.layers == {"dla": ["{ForeignNode[Conv_0...Relu_1]}"], "gpu": ["Flatten_2", "Gemm_3"],
                             "fallback": ["Gemm_3"]}
    assert record.build["plan"]["int8_mode"] == "calibrator"
    assert any("fell back to the GPU: Gemm_3" in w for w in result.warnings)
    # The engine was written under a temporary name, then renamed: the log shows the temp path.
    with open(result.log_path) as handle:
        first = handle.readline()
    written = [a for a in first.split() if a.startswith("--saveEngine=")][0].split("=", 1)[1]
    assert os.path.basename(written).startswith(".tmp-") and not os.path.exists(written)
    check_record(result.engine_path, record, tensorrt_version="8.5.2.2", device_name="Xavier")
    with pytest.raises(EdgeAlexError, match="built with TensorRT 8.5.2 but this machine has TensorRT 8.6.1"):
        check_record(result.engine_path, record, tensorrt_version="8.6.1")
    with pytest.raises(EdgeAlexError, match="built on 'Xavier'"):
        check_record(result.engine_path, record, device_name="Orin")
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in
                                             (result.engine_path, result.sidecar_path, result.log_path))


def test_failed_trtexec_leaves_no_engine(tmp_path, trtexec_on_path):
    from edgealex.build.api import build_engine

    trtexec_on_path(mode="fail")
    onnx_path = tiny_classifier(tmp_path / "tiny.onnx")
    out = tmp_path / "engines"
    with pytest.raises(EdgeAlexError) as err:
        build_engine(onnx_path, target="agx-xavier", precision="fp16", dla_core=1, gpu_fallback=False,
                     builder="trtexec", out_dir=str(out))
    assert "trtexec failed (exit code 1)" in err.value.what and "DLA validation failed" in err.value.what
    assert sorted(os.listdir(out)) == ["tiny-fp16-dla1-trt8.5.2-agx-xavier.engine.log"]  # log kept, no engine


def test_auto_picks_trtexec_when_tensorrt_does_not_import(tmp_path, trtexec_on_path):
    pytest.importorskip("onnx")
    from edgealex._optional import available
    from edgealex.build.api import build_engine

    if available("tensorrt"):
        pytest.skip("tensorrt imports here, so auto picks the Python API")
    trtexec_on_path(number=8201)
    onnx_path = tiny_classifier(tmp_path / "tiny.onnx")
    result = build_engine(onnx_path, target="nano", precision="fp16", out_dir=str(tmp_path / "e"))
    assert result.builder == "trtexec" and "tensorrt does not import" in result.builder_reason
    assert "--workspace=512" in result.record.flags  # TensorRT 8.2 spelling, from the trtexec banner version


def test_other_trtexec_version_than_the_target_is_refused(tmp_path, trtexec_on_path):
    from edgealex.build.api import build_engine

    trtexec_on_path(number=100300)
    onnx_path = tiny_classifier(tmp_path / "tiny.onnx")
    with pytest.raises(EdgeAlexError) as err:
        build_engine(onnx_path, target="agx-xavier", precision="fp16", builder="trtexec", out_dir=str(tmp_path / "e"))
    assert "runs TensorRT 8.5.2 but this machine builds with TensorRT 10.3.0" in err.value.what
    assert not os.path.exists(tmp_path / "e") or not any(n.endswith(".engine") for n in os.listdir(tmp_path / "e"))


def test_print_json_is_machine_readable(tmp_path):
    from edgealex.build.api import build_engine

    onnx_path = tiny_classifier(tmp_path / "tiny.onnx")
    result = build_engine(onnx_path, target="agx-orin", precision="fp16", print_trtexec=True,
                          out_dir=str(tmp_path / "e"))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["printed_only"] and data["engine"] is None
    assert data["trtexec_command"].startswith("/usr/src/tensorrt/bin/trtexec --onnx=")
    assert "--skipInference" in data["trtexec_command"] and data["plan"]["generation"] == "10"
