"""`edgealex deploy triton`: config.pbtxt parsed into Triton's own ModelConfig protobuf (tritonclient),
the served ONNX against edgealex's pipeline, labels one per line, TensorRT plans from their sidecar."""

import importlib.util
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from build_helpers import LABELS, SIZE, calibration_output, tiny_classifier
from edgealex.cli.main import app

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def model_config_pb2():
    """Triton's ModelConfig message from the tritonclient wheel (integration-facts.md §2.3).

    Loaded from its file: ``tritonclient.grpc``'s __init__ needs grpcio, the message needs only protobuf.
    """
    tritonclient = pytest.importorskip("tritonclient")
    path = os.path.join(os.path.dirname(tritonclient.__file__), "grpc", "model_config_pb2.py")
    spec = importlib.util.spec_from_file_location("model_config_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_config(path):
    from google.protobuf import text_format

    pb2 = model_config_pb2()
    with open(path) as handle:
        return text_format.Parse(handle.read(), pb2.ModelConfig()), pb2


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def run(path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


def softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_onnx_model_repository_parses_into_modelconfig_and_batches(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx")
    repo = tmp_path / "repo"
    r = invoke("deploy", "triton", model, "-o", repo, "--name", "alexnet_defect")
    assert r.exit_code == 0, r.output
    folder = repo / "alexnet_defect"
    config, pb2 = parse_config(folder / "config.pbtxt")
    assert config.name == "alexnet_defect" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 8 and config.HasField("dynamic_batching")
    assert config.dynamic_batching.max_queue_delay_microseconds == 1000
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [("input", pb2.TYPE_FP32, [3, SIZE, SIZE])]
    assert [(o.name, list(o.dims), o.label_filename) for o in config.output] == [("probs", [len(LABELS)], "labels.txt")]
    with open(folder / "labels.txt") as handle:
        assert handle.read() == "\n".join(LABELS) + "\n"  # Triton: one label per line (nvinfer: one line)

    # 1/model.onnx takes the batches the dynamic batcher forms and returns edgealex's probabilities.
    x = np.random.default_rng(0).normal(size=(5, 3, SIZE, SIZE)).astype(np.float32)
    got = run(folder / "1" / "model.onnx", x)
    reference = np.concatenate([softmax(run(model, x[i:i + 1])) for i in range(5)])
    assert got.shape == (5, len(LABELS)) and np.max(np.abs(got - reference)) < 1e-4


def test_int8_ort_engine_of_the_demo_like_model(tmp_path):
    from edgealex.build.api import build_engine

    model = tiny_classifier(tmp_path / "tiny.onnx")
    calib = calibration_output(tmp_path / "calib", model, caches=(8201,), qdq=True)
    engine = build_engine(model, target="cpu", precision="int8", calib=calib, out_dir=str(tmp_path / "engines"),
                          ort_int8="qdq").engine_path
    r = invoke("deploy", "triton", engine, "-o", tmp_path / "repo", "--name", "tiny_int8", "--max-batch-size", "16",
               "--kind", "cpu", "--instances", "2")
    assert r.exit_code == 0, r.output
    config, pb2 = parse_config(tmp_path / "repo" / "tiny_int8" / "config.pbtxt")
    assert config.max_batch_size == 16 and config.platform == "onnxruntime_onnx"
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, pb2.ModelInstanceGroup.KIND_CPU)]
    x = np.random.default_rng(1).normal(size=(3, 3, SIZE, SIZE)).astype(np.float32)
    got = run(tmp_path / "repo" / "tiny_int8" / "1" / "model.onnx", x)
    reference = np.concatenate([softmax(run(engine, x[i:i + 1])) for i in range(3)])
    assert np.max(np.abs(got - reference)) < 1e-4


def _trt_engine(folder, model, batch, dynamic, version="8.5.2", soc="tegra194"):
    """A TensorRT engine file with the sidecar `edgealex build` writes (the plan bytes are opaque here)."""
    from edgealex.artifacts import sha256_file
    from edgealex.engine import EngineRecord, write_record
    from edgealex.modelinfo import read_model_info

    info = read_model_info(model)
    if dynamic:
        info.batch = None
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"tiny-fp16-gpu-trt{version}.engine")
    with open(path, "wb") as handle:
        handle.write(os.urandom(256))
    write_record(path, EngineRecord(backend="tensorrt", precision="fp16", device="gpu", target="agx-xavier",
                                    model=info.to_dict(), onnx_sha256=sha256_file(model),
                                    input_shape=[batch, 3, SIZE, SIZE], builder="python", backend_version=version,
                                    device_name="Xavier" if soc else "NVIDIA RTX", soc=soc))
    return path


def test_tensorrt_engine_with_dynamic_batch_profile(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx", batch=None)
    engine = _trt_engine(tmp_path / "engines", model, batch=4, dynamic=True)
    r = invoke("deploy", "triton", engine, "-o", tmp_path / "repo", "--name", "tiny_trt")
    assert r.exit_code == 0, r.output
    folder = tmp_path / "repo" / "tiny_trt"
    config, _ = parse_config(folder / "config.pbtxt")
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 4 and config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [3, SIZE, SIZE] and list(config.output[0].dims) == [len(LABELS)]
    assert config.output[0].name == "logits"
    with open(folder / "1" / "model.plan", "rb") as a, open(engine, "rb") as b:
        assert a.read() == b.read()
    assert "tritonserver2.34.0-jetpack5.1" in r.stdout  # TensorRT 8.5.2 on a Jetson (facts §2.2)
    with open(folder / "config.pbtxt") as handle:
        assert "tritonserver2.34.0-jetpack5.1" in handle.read()
    r = invoke("deploy", "triton", engine, "-o", tmp_path / "repo2", "--max-batch-size", "8")
    assert r.exit_code == 1 and "accepts batches 1..4" in r.output


def test_tensorrt_engine_with_static_batch_gets_max_batch_size_0(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx", batch=2)
    engine = _trt_engine(tmp_path / "engines", model, batch=2, dynamic=False, version="10.3.0", soc=None)
    r = invoke("deploy", "triton", engine, "-o", tmp_path / "repo", "--name", "tiny_static")
    assert r.exit_code == 0, r.output
    config, pb2 = parse_config(tmp_path / "repo" / "tiny_static" / "config.pbtxt")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [2, 3, SIZE, SIZE] and list(config.output[0].dims) == [2, len(LABELS)]
    assert [g.kind for g in config.instance_group] == [pb2.ModelInstanceGroup.KIND_GPU]
    assert "Triton 2.49.0 (NGC container 24.08)" in r.stdout  # dGPU TensorRT 10.3


def test_engine_without_sidecar_is_refused(tmp_path):
    path = tmp_path / "lonely.engine"
    path.write_bytes(b"plan")
    r = invoke("deploy", "triton", path, "-o", tmp_path / "repo")
    assert r.exit_code == 1 and "no provenance sidecar" in r.output and "Traceback" not in r.output
    assert not os.path.exists(tmp_path / "repo")


def test_tensorrt_entry_needs_no_onnx_numpy_or_opencv(tmp_path):
    """On a Jetson, next to the engine: the TensorRT path imports none of the workstation packages."""
    import subprocess
    import sys

    from conftest import python_env_without

    model = tiny_classifier(tmp_path / "tiny.onnx", batch=None)
    engine = _trt_engine(tmp_path / "engines", model, batch=4, dynamic=True)
    code, env = python_env_without({"onnx", "onnxruntime", "cv2", "torch", "numpy"})
    code += ("from edgealex.deploy.triton import deploy_triton\n"
             f"r = deploy_triton({str(engine)!r}, {str(tmp_path / 'repo')!r}, name='m')\n"
             "print(r.platform, r.max_batch_size)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["tensorrt_plan", "4"]
    config, _ = parse_config(tmp_path / "repo" / "m" / "config.pbtxt")
    assert config.max_batch_size == 4
