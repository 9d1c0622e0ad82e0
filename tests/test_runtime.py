"""Runners and the runner registry: ONNX Runtime on CPU here; TensorRT and CUDA memory where probed."""

import os
import shutil

import numpy as np
import pytest

from edgealex.errors import EdgeAlexError
from test_runtime_models import INPUT_SIZE, LABELS, colour_classifier, ort_engine, solid

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _x(batch=1):
    return np.zeros((batch, 3, INPUT_SIZE, INPUT_SIZE), np.float32)


# -- OrtRunner ---------------------------------------------------------------------------------
def test_ort_runner_infers_and_times(tmp_path):
    from edgealex.runtime.ort import OrtRunner

    runner = OrtRunner(colour_classifier(tmp_path / "m.onnx"))
    with runner:
        assert runner.providers == ["CPUExecutionProvider"]
        assert runner.input_spec.shape == (1, 3, INPUT_SIZE, INPUT_SIZE)
        assert runner.batch_size == 1
        out = runner.infer(_x())
        assert out.shape == (1, len(LABELS)) and out.dtype == np.float32
        assert runner.last_inference_ms > 0
        assert runner.model_info.labels == LABELS
    assert not runner.is_active


@pytest.mark.parametrize("bad, expected", [
    (np.zeros((2, 3, INPUT_SIZE, INPUT_SIZE), np.float32), "shape (2, 3, 32, 32)"),
    (np.zeros((1, 3, 16, 16), np.float32), "expects (1, 3, 32, 32)"),
    (np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float64), "dtype float64"),
    (np.zeros((3, INPUT_SIZE, INPUT_SIZE), np.float32), "shape (3, 32, 32)"),
])
def test_ort_runner_rejects_wrong_inputs(tmp_path, bad, expected):
    from edgealex.runtime.ort import OrtRunner

    with OrtRunner(colour_classifier(tmp_path / "m.onnx")) as runner:
        with pytest.raises(EdgeAlexError) as err:
            runner.infer(bad)
    assert expected in str(err.value)


def test_ort_runner_needs_activation(tmp_path):
    from edgealex.runtime.ort import OrtRunner

    runner = OrtRunner(colour_classifier(tmp_path / "m.onnx"))
    with pytest.raises(EdgeAlexError, match="inactive runner"):
        runner.infer(_x())
    with pytest.raises(EdgeAlexError, match="once the runner is active"):
        runner.input_spec  # no sidecar: the shape comes from the session


def test_ort_runner_dynamic_batch(tmp_path):
    from edgealex.runtime.ort import OrtRunner

    with OrtRunner(colour_classifier(tmp_path / "m.onnx", batch=None)) as runner:
        assert runner.batch_size is None
        assert runner.infer(_x(3)).shape == (3, len(LABELS))


def test_ort_runner_thread_and_optimisation_options_reach_the_session(tmp_path):
    from edgealex.runtime.ort import OrtRunner

    runner = OrtRunner(colour_classifier(tmp_path / "m.onnx"), intra_op_num_threads=1, inter_op_num_threads=1,
                       execution_mode="sequential", graph_optimization_level="basic",
                       session_config={"session.intra_op.allow_spinning": "0"})
    with runner:
        opts = runner._session.get_session_options()
        assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert str(opts.graph_optimization_level).endswith("ORT_ENABLE_BASIC")


@pytest.mark.parametrize("kwargs, expected", [
    ({"graph_optimization_level": "turbo"}, "graph_optimization_level"),
    ({"execution_mode": "async"}, "execution_mode"),
    ({"intra_op_num_threads": -1}, "must be >= 0"),
])
def test_ort_runner_rejects_bad_options(tmp_path, kwargs, expected):
    from edgealex.runtime.ort import OrtRunner

    with pytest.raises(EdgeAlexError, match=expected):
        OrtRunner(colour_classifier(tmp_path / "m.onnx"), **kwargs).activate()


def test_provider_resolution():
    from edgealex.runtime.ort import CPU, CUDA, TENSORRT, resolve_providers

    assert resolve_providers(None, [CPU]) == [CPU]
    assert resolve_providers(["auto"], [CPU]) == [CPU]
    assert resolve_providers(["auto"], [TENSORRT, CUDA, CPU]) == [TENSORRT, CUDA, CPU]
    assert resolve_providers("tensorrt,cuda", [TENSORRT, CUDA, CPU]) == [TENSORRT, CUDA, CPU]
    with pytest.raises(EdgeAlexError) as err:
        resolve_providers(["cuda"], [CPU])
    assert "CUDAExecutionProvider not available" in str(err.value) and "onnxruntime-gpu" in str(err.value)


def test_ort_runner_refuses_unavailable_provider(tmp_path):
    import onnxruntime

    from edgealex.runtime.ort import OrtRunner

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(EdgeAlexError, match="CUDAExecutionProvider not available"):
        OrtRunner(colour_classifier(tmp_path / "m.onnx"), providers=["cuda"]).activate()


def test_dla_core_becomes_tensorrt_provider_options(tmp_path):
    from edgealex.runtime.ort import TENSORRT, OrtRunner

    runner = OrtRunner(colour_classifier(tmp_path / "m.onnx"), dla_core=1)
    assert runner.options["provider_options"][TENSORRT] == {"trt_dla_enable": True, "trt_dla_core": 1}
    assert runner.options["providers"][0] == "tensorrt"


def test_model_info_from_session_metadata_without_onnx_package(tmp_path):
    """On a device without the onnx package the labels still come from the ONNX metadata."""
    import subprocess
    import sys

    from conftest import python_env_without

    path = colour_classifier(tmp_path / "m.onnx")
    code, env = python_env_without({"onnx"})
    code += ("from edgealex.runtime.ort import OrtRunner\n"
             f"r = OrtRunner({path!r})\n"
             "with r: print(','.join(r.model_info.labels))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ",".join(LABELS)


def test_model_without_metadata_gets_default_labels(tmp_path):
    from edgealex.runtime.ort import OrtRunner

    with OrtRunner(colour_classifier(tmp_path / "m.onnx", with_metadata=False)) as runner:
        assert runner.model_info.labels == [f"class_{i}" for i in range(5)]
        assert runner.model_info.from_defaults


def test_corrupt_model_is_a_user_error(tmp_path):
    from edgealex.runtime.ort import OrtRunner

    path = tmp_path / "bad.onnx"
    path.write_bytes(b"not a protobuf at all")
    with pytest.raises(EdgeAlexError, match="could not load the model"):
        OrtRunner(str(path)).activate()


# -- registry ------------------------------------------------------------------------------------
def test_load_runner_applies_sidecar_runtime_options(tmp_path):
    import edgealex

    path = ort_engine(tmp_path, runtime_options={"providers": ["cpu"], "intra_op_num_threads": 1,
                                                 "graph_optimization_level": "extended"})
    runner = edgealex.load(path)
    assert runner.record is not None and runner.record.backend == "ort"
    with runner:
        opts = runner._session.get_session_options()
        assert opts.intra_op_num_threads == 1
        assert str(opts.graph_optimization_level).endswith("ORT_ENABLE_EXTENDED")
        assert runner.model_info.labels == LABELS
        from edgealex.preprocess import preprocess

        x = preprocess(solid("stain"), runner.model_info.preprocess)[None]
        assert LABELS[int(runner.infer(x).argmax())] == "stain"


def test_load_runner_explicit_options_override_sidecar(tmp_path):
    from edgealex.runtime.registry import load_runner

    path = ort_engine(tmp_path, runtime_options={"providers": ["cpu"], "intra_op_num_threads": 1})
    with load_runner(path, intra_op_num_threads=2) as runner:
        assert runner._session.get_session_options().intra_op_num_threads == 2


def test_load_runner_plain_onnx_with_export_sidecar(tmp_path):
    """An exported ONNX (its sidecar is export provenance, not an engine record) loads on CPU."""
    from edgealex.artifacts import sidecar_path, write_json_atomic
    from edgealex.runtime.registry import load_runner

    path = colour_classifier(tmp_path / "m.onnx")
    write_json_atomic(sidecar_path(path), {"artifact": "onnx", "sha256": "x"})
    runner = load_runner(path)
    assert runner.record is None
    with runner:
        assert runner.model_info.labels == LABELS


def test_load_runner_refuses_modified_engine(tmp_path):
    from edgealex.runtime.registry import load_runner

    path = ort_engine(tmp_path)
    other = colour_classifier(tmp_path / "other.onnx", labels=["ok", "scratch", "stain"])
    shutil.copyfile(other, path)  # engine replaced, sidecar kept
    with pytest.raises(EdgeAlexError, match="does not match its sidecar"):
        load_runner(path)


def test_load_runner_refuses_sidecar_of_another_model_shape(tmp_path):
    from edgealex.engine import read_record, write_record
    from edgealex.runtime.registry import load_runner

    path = ort_engine(tmp_path)
    record = read_record(path)
    record.input_shape = [1, 3, 224, 224]
    write_record(path, record)
    with pytest.raises(EdgeAlexError, match="input shape"):
        load_runner(path).activate()


def test_load_runner_refuses_backend_mismatch(tmp_path):
    from edgealex.engine import read_record, write_record
    from edgealex.runtime.registry import load_runner

    path = ort_engine(tmp_path)
    record = read_record(path)
    record.backend = "tensorrt"
    write_record(path, record)
    with pytest.raises(EdgeAlexError, match="describes a tensorrt engine"):
        load_runner(path)
    # and a TensorRT engine whose sidecar says ONNX Runtime
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"plan")
    record.backend = "ort"
    write_record(str(engine), record)
    with pytest.raises(EdgeAlexError, match="not a TensorRT one"):
        load_runner(str(engine))


def test_load_runner_refuses_tensorrt_engine_not_matching_its_sidecar(tmp_path):
    """Checked before TensorRT is imported, so it is answered on any machine."""
    from edgealex.engine import EngineRecord, write_record
    from edgealex.runtime.registry import load_runner

    engine = tmp_path / "alexnet.engine"
    engine.write_bytes(b"serialized plan v1")
    write_record(str(engine), EngineRecord(backend="tensorrt", precision="fp16", device="gpu", target="agx-xavier",
                                           model={}, onnx_sha256="0", input_shape=[1, 3, 224, 224],
                                           builder="python", backend_version="8.5.2.2", device_name="Xavier"))
    engine.write_bytes(b"serialized plan v2")
    with pytest.raises(EdgeAlexError, match="sha256 differs"):
        load_runner(str(engine))


def test_load_runner_tensorrt_without_tensorrt_says_how_to_install(tmp_path):
    from conftest import probe_tensorrt
    from edgealex.engine import EngineRecord, write_record
    from edgealex.runtime.registry import load_runner

    if probe_tensorrt()[0]:
        pytest.skip("tensorrt is installed here")
    engine = tmp_path / "alexnet.plan"
    engine.write_bytes(b"serialized plan")
    write_record(str(engine), EngineRecord(backend="tensorrt", precision="fp16", device="gpu", target="x",
                                           model={}, onnx_sha256="0", input_shape=[1, 3, 224, 224],
                                           builder="python", backend_version="10.3.0"))
    with pytest.raises(EdgeAlexError) as err:
        load_runner(str(engine))
    assert "TensorRT is not installed" in str(err.value) and "JetPack" in str(err.value)


@pytest.mark.parametrize("name, content, expected", [
    ("model.pt", b"x", "unknown artifact type '.pt'"),
    ("missing.onnx", None, "does not exist"),
    ("nosidecar.engine", b"x", "no provenance sidecar"),
])
def test_load_runner_bad_paths(tmp_path, name, content, expected):
    from edgealex.runtime.registry import load_runner

    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EdgeAlexError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_runner(str(path))


@pytest.mark.parametrize("name", ["model.engine", "model.onnx"])
def test_a_folder_named_like_an_engine_or_model_is_called_a_folder(tmp_path, name):
    """Engine and runtime loaders share the ONNX loaders' input-file check (artifacts.check_input_file):
    a folder is called a folder, not a missing file."""
    from edgealex.engine import read_record
    from edgealex.runtime.ort import OrtRunner
    from edgealex.runtime.registry import load_runner

    folder = tmp_path / name
    folder.mkdir()
    kind = "an engine" if name.endswith(".engine") else "an ONNX model"
    with pytest.raises(EdgeAlexError, match=f"is a folder, not {kind} file"):
        load_runner(str(folder))
    if name.endswith(".engine"):
        with pytest.raises(EdgeAlexError, match="is a folder, not an engine file"):
            read_record(str(folder))
    else:
        with pytest.raises(EdgeAlexError, match="is a folder, not a model file"):
            OrtRunner(str(folder)).activate()


def test_bench_triton_matrix_and_weights_call_a_folder_a_folder(tmp_path):
    """bench, deploy triton, the bench matrix and --weights use the same input-file check."""
    from edgealex.bench.harness import BenchOptions, run_bench
    from edgealex.bench.matrix import matrix_engines
    from edgealex.deploy.triton import deploy_triton
    from edgealex.models.alexnet import _torch_load

    (tmp_path / "m.onnx").mkdir()
    (tmp_path / "e.engine").mkdir()
    (tmp_path / "w.pth").mkdir()
    with pytest.raises(EdgeAlexError, match="is a folder, not an engine file"):
        run_bench([str(tmp_path / "e.engine")], BenchOptions(), str(tmp_path / "bench"))
    with pytest.raises(EdgeAlexError, match="is a folder, not a model file"):
        deploy_triton(str(tmp_path / "m.onnx"), str(tmp_path / "repo"))
    with pytest.raises(EdgeAlexError, match="is a folder, not an ONNX model file"):
        matrix_engines(str(tmp_path / "m.onnx"), "cpu", str(tmp_path / "engines"))
    with pytest.raises(EdgeAlexError, match="is a folder, not a checkpoint file"):
        _torch_load(str(tmp_path / "w.pth"))


def test_load_runner_unknown_option(tmp_path):
    from edgealex.runtime.registry import load_runner

    with pytest.raises(EdgeAlexError, match="do not apply to OrtRunner"):
        load_runner(colour_classifier(tmp_path / "m.onnx"), cuda_backend="pycuda")


def test_alexnet_fixture_runs_through_load(alexnet_onnx):
    import edgealex
    from edgealex.preprocess import preprocess

    with edgealex.load(alexnet_onnx) as runner:
        x = preprocess(solid("ok", 720, 1280), runner.model_info.preprocess)[None]
        logits = runner.infer(x)
    assert logits.shape == (1, 5)


# -- CUDA memory layer ---------------------------------------------------------------------------
def test_check_cuda_err_accepts_runtime_and_driver_codes():
    from edgealex.runtime.cudamem import check_cuda_err, cuda_call

    check_cuda_err(0)
    assert cuda_call((0, 42)) == 42 and cuda_call((0,)) is None and cuda_call((0, 1, 2)) == (1, 2)
    with pytest.raises(EdgeAlexError, match="error 35"):
        check_cuda_err(35, "cudaMalloc")
    try:
        from cuda.bindings import driver, runtime
    except ImportError:
        pytest.skip("cuda-python not installed: real enum values not checked")
    # The TensorRT 8.6-10.x sample helper raised "Unknown error type" for driver-API codes.
    check_cuda_err(driver.CUresult.CUDA_SUCCESS)
    with pytest.raises(EdgeAlexError, match="CUDA_ERROR_INVALID_VALUE"):
        check_cuda_err(driver.CUresult.CUDA_ERROR_INVALID_VALUE, "cuMemAlloc")
    with pytest.raises(EdgeAlexError, match="cudaErrorMemoryAllocation"):
        check_cuda_err(runtime.cudaError_t.cudaErrorMemoryAllocation, "cudaMalloc")


def test_open_cuda_unknown_backend():
    from edgealex.runtime.cudamem import open_cuda

    with pytest.raises(EdgeAlexError, match="unknown"):
        open_cuda("opencl")


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cuda-python", "pycuda"])
def test_cuda_memory_round_trip(backend):
    from edgealex.runtime.cudamem import available_backends, open_cuda

    if backend not in available_backends():
        pytest.skip(f"{backend} not installed")
    with open_cuda(backend) as cuda:
        assert cuda.device_name()
        stream = cuda.create_stream()
        host = cuda.pinned_empty((4, 5), np.float32)
        host[:] = np.arange(20, dtype=np.float32).reshape(4, 5)
        back = cuda.pinned_empty((4, 5), np.float32)
        back[:] = 0
        device = cuda.malloc(host.nbytes)
        cuda.htod_async(device, host, stream)
        cuda.dtoh_async(back, device, stream)
        cuda.synchronize(stream)
        assert np.array_equal(host, back)
        half = cuda.pinned_empty((3,), np.float16)
        assert half.dtype == np.float16 and half.shape == (3,)


# -- TensorRT runner (skipped unless TensorRT and a GPU are present) --------------------------------
def _build_trt_engine(tmp_path, onnx_path, dynamic=False):
    import tensorrt as trt

    from edgealex.engine import EngineRecord, write_record
    from edgealex.modelinfo import read_model_info
    from edgealex.runtime.cudamem import current_device_name

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(str(onnx_path)), [parser.get_error(i) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    if dynamic:
        profile = builder.create_optimization_profile()
        profile.set_shape("input", (1, 3, INPUT_SIZE, INPUT_SIZE), (2, 3, INPUT_SIZE, INPUT_SIZE),
                          (4, 3, INPUT_SIZE, INPUT_SIZE))
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    assert plan is not None
    engine = tmp_path / ("dyn.engine" if dynamic else "static.engine")
    engine.write_bytes(bytes(plan))
    info = read_model_info(onnx_path)
    write_record(str(engine), EngineRecord(
        backend="tensorrt", precision="fp32", device="gpu", target="test", model=info.to_dict(), onnx_sha256="0",
        input_shape=[None if dynamic else 1, 3, INPUT_SIZE, INPUT_SIZE], builder="python",
        backend_version=trt.__version__, device_name=current_device_name()))
    return str(engine)


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.parametrize("dynamic", [False, True])
def test_trt_runner_matches_onnxruntime(tmp_path, dynamic):
    import edgealex
    from edgealex.preprocess import preprocess_batch
    from edgealex.runtime.ort import OrtRunner

    onnx_path = colour_classifier(tmp_path / "m.onnx", batch=None if dynamic else 1)
    engine = _build_trt_engine(tmp_path, onnx_path, dynamic)
    batch = 3 if dynamic else 1
    with OrtRunner(onnx_path) as ort_runner:
        x = preprocess_batch([solid(label) for label in LABELS[:batch]], ort_runner.model_info.preprocess)
        want = ort_runner.infer(x).copy()
    with edgealex.load(engine) as runner:
        assert runner.name == "tensorrt"
        got = runner.infer(x).copy()
        assert runner.last_inference_ms > 0
        with pytest.raises(EdgeAlexError):
            runner.infer(x.astype(np.float64))
        if dynamic:
            with pytest.raises(EdgeAlexError, match="exceeds"):
                runner.infer(np.zeros((5, 3, INPUT_SIZE, INPUT_SIZE), np.float32))
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


@pytest.mark.trt
@pytest.mark.gpu
def test_trt_runner_refuses_garbage_plan(tmp_path):
    from edgealex.engine import EngineRecord, write_record
    from edgealex.runtime.trt import TrtRunner

    engine = tmp_path / "garbage.engine"
    engine.write_bytes(os.urandom(4096))
    write_record(str(engine), EngineRecord(backend="tensorrt", precision="fp16", device="gpu", target="x",
                                           model={"arch": "a", "labels": LABELS}, onnx_sha256="0",
                                           input_shape=[1, 3, 224, 224], builder="python", backend_version="0"))
    from edgealex.engine import read_record

    with pytest.raises(EdgeAlexError, match="could not deserialize"):
        TrtRunner(str(engine), record=read_record(str(engine))).activate()


@pytest.mark.trt
@pytest.mark.gpu
def test_load_runner_refuses_engine_from_other_tensorrt(tmp_path):
    from edgealex.engine import read_record, write_record
    from edgealex.runtime.registry import load_runner

    onnx_path = colour_classifier(tmp_path / "m.onnx")
    engine = _build_trt_engine(tmp_path, onnx_path)
    record = read_record(engine)
    record.backend_version = "7.0.0.11"
    write_record(engine, record)
    with pytest.raises(EdgeAlexError, match="not portable across versions"):
        load_runner(engine)


def test_foreign_engine_names_the_target_mismatch_first(tmp_path):
    """Issue 17: an engine built for agx-xavier run here says so first (from the sidecar), not
    "install TensorRT"."""
    from edgealex.engine import EngineRecord, write_record
    from edgealex.runtime.registry import load_runner
    from edgealex.target import resolve_target

    here = resolve_target(None).name
    if here == "agx-xavier":
        pytest.skip("this machine is an AGX Xavier")
    engine = tmp_path / "alexnet-int8-dla0-trt8.5.2.2-agx-xavier.engine"
    engine.write_bytes(b"serialized plan")
    write_record(str(engine), EngineRecord(backend="tensorrt", precision="int8", device="dla0", target="agx-xavier",
                                           model={}, onnx_sha256="0", input_shape=[1, 3, 224, 224],
                                           builder="python", backend_version="8.5.2.2", device_name="Xavier"))
    with pytest.raises(EdgeAlexError) as err:
        load_runner(str(engine))
    text = str(err.value)
    assert "was built for agx-xavier (TensorRT 8.5.2.2, Xavier)" in text and f"this machine is '{here}'" in text
    assert "not installed" not in text
