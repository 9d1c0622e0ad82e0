"""Tiny real ONNX classifiers (onnx.helper) and media writers shared by the runtime, camera and
loop tests, plus the tests that pin down how the colour classifier behaves.

The colour classifier averages the normalised input per channel and scores 5 defect labels:
grey -> ok, red -> scratch, green -> stain, blue -> crack, black -> hole. It runs in well under a
millisecond, so loop tests exercise the real ONNX Runtime path without AlexNet's cost.
"""

import os

import numpy as np
import pytest

LABELS = ["ok", "scratch", "stain", "crack", "hole"]
COLOURS_BGR = {"ok": (128, 128, 128), "scratch": (0, 0, 255), "stain": (0, 255, 0), "crack": (255, 0, 0),
               "hole": (0, 0, 0)}
INPUT_SIZE = 32


def colour_classifier(path, batch=1, input_size=INPUT_SIZE, labels=None, with_metadata=True, opset=13):
    """Write the colour classifier ONNX to ``path``; ``batch=None`` gives a dynamic batch axis."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from edgealex.modelinfo import ModelInfo, attach
    from edgealex.preprocess import Preprocess

    labels = list(labels or LABELS)
    # Input is RGB normalised with ImageNet mean/std; rows: ok (bias), R, G, B, -(R+G+B).
    weights = np.array([[0, 0, 0], [8, 0, 0], [0, 8, 0], [0, 0, 8], [-8, -8, -8]], dtype=np.float32)
    bias = np.array([6, 0, 0, 0, 0], dtype=np.float32)
    weights, bias = weights[:len(labels)], bias[:len(labels)]
    dim0 = batch if batch else "batch"
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "W", "b"], ["logits"], transB=1)]
    graph = helper.make_graph(
        nodes, "colour_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [dim0, 3, input_size, input_size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [dim0, len(labels)])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if with_metadata:
        info = ModelInfo("colour", labels, Preprocess(input_size=input_size, resize=input_size + 4),
                         batch=batch, opset=opset)
        attach(model, info)
    onnx.save(model, str(path))
    return str(path)


def ort_engine(tmp_path, name="colour.onnx", batch=1, runtime_options=None):
    """The colour classifier as an ONNX Runtime engine: ONNX + EngineRecord sidecar."""
    from edgealex.engine import EngineRecord, write_record
    from edgealex.modelinfo import read_model_info

    path = colour_classifier(os.path.join(str(tmp_path), name), batch=batch)
    info = read_model_info(path)
    record = EngineRecord(backend="ort", precision="fp32", device="cpu", target="cpu", model=info.to_dict(),
                          onnx_sha256="0" * 64, input_shape=[batch, 3, INPUT_SIZE, INPUT_SIZE], builder="ort",
                          backend_version="test", runtime_options=dict(runtime_options or {"providers": ["cpu"]}))
    write_record(path, record)
    return path


def solid(label, height=48, width=64):
    """A frame of the colour that the classifier maps to ``label``."""
    return np.full((height, width, 3), COLOURS_BGR[label], dtype=np.uint8)


def write_video(path, labels, size=(64, 48), fps=10.0, fourcc="mp4v"):
    """Write one solid frame per label with cv2.VideoWriter; returns the path."""
    cv2 = pytest.importorskip("cv2")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened()
    for label in labels:
        writer.write(solid(label, size[1], size[0]))
    writer.release()
    return str(path)


def write_folder(root, per_label, sizes=((64, 48),)):
    """Class sub-folders of solid images (``per_label`` images each, cycling through ``sizes``)."""
    cv2 = pytest.importorskip("cv2")
    paths = []
    k = 0
    for label in LABELS:
        os.makedirs(os.path.join(str(root), label), exist_ok=True)
        for i in range(per_label):
            width, height = sizes[k % len(sizes)]
            k += 1
            path = os.path.join(str(root), label, f"{i:03d}.png")
            assert cv2.imwrite(path, solid(label, height, width))
            paths.append(path)
    return paths


# -- the model behaves as documented -----------------------------------------------------------------
def test_colour_classifier_maps_colours_to_labels(tmp_path):
    pytest.importorskip("onnxruntime")
    from edgealex.preprocess import preprocess_batch
    from edgealex.runtime.ort import OrtRunner

    path = colour_classifier(tmp_path / "c.onnx", batch=None)
    with OrtRunner(path) as runner:
        spec = runner.model_info.preprocess
        batch = preprocess_batch([solid(label) for label in LABELS], spec)
        logits = runner.infer(batch)
    assert [LABELS[i] for i in logits.argmax(axis=1)] == LABELS


def test_written_video_reads_back(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = write_video(tmp_path / "v.mp4", ["ok", "scratch", "hole"])
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3)
