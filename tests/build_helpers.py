"""Tiny real ONNX classifiers and calibration folders for the build tests (not a test module)."""

import json
import os

import numpy as np

LABELS = ["ok", "scratch", "stain", "crack", "hole"]
SIZE = 16


def tiny_classifier(path, batch=1, seed=0, metadata=True):
    """Conv(3->4, 3x3) + Relu + Flatten + Gemm(-> 5 logits) on a 3x16x16 input, written to ``path``.

    Args:
        path (str): where to save it.
        batch (int or None): static batch, or None for a dynamic batch axis.
        seed (int): weights seed.
        metadata (bool): attach the edgealex ModelInfo (labels, preprocessing).

    Returns:
        str: ``path``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgealex.modelinfo import ModelInfo, attach
    from edgealex.preprocess import Preprocess

    rng = np.random.default_rng(seed)
    conv_w = rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32)
    conv_b = rng.normal(0, 0.1, (4,)).astype(np.float32)
    fc_w = rng.normal(0, 0.05, (len(LABELS), 4 * SIZE * SIZE)).astype(np.float32)
    fc_b = rng.normal(0, 0.1, (len(LABELS),)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1], name="Conv_0"),
        helper.make_node("Relu", ["conv"], ["relu"], name="Relu_1"),
        helper.make_node("Flatten", ["relu"], ["flat"], axis=1, name="Flatten_2"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1, name="Gemm_3"),
    ]
    dim = batch if batch else "batch"
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [dim, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [dim, len(LABELS)])],
        initializer=[numpy_helper.from_array(conv_w, "conv_w"), numpy_helper.from_array(conv_b, "conv_b"),
                     numpy_helper.from_array(fc_w, "fc_w"), numpy_helper.from_array(fc_b, "fc_b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    if metadata:
        info = ModelInfo(arch="tiny", labels=list(LABELS), preprocess=Preprocess(input_size=SIZE, resize=18),
                         batch=batch, opset=13)
        attach(model, info)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def write_cache(path, version_number, algorithm="EntropyCalibration2"):
    """A real-format TensorRT calibration cache for the tiny model's tensors."""
    from edgealex.calib.cache import write_cache as write

    write(str(path), {"input": 0.0157, "conv": 0.031, "relu": 0.031, "flat": 0.031, "logits": 0.05},
          version_number, algorithm=algorithm)
    return str(path)


def calibration_output(folder, onnx_path, caches=(8201, 8502), qdq=True, ort_native=False, model_sha256=None):
    """A calibration output folder as `edgealex calibrate` writes it (calibration.json + members).

    The Q/DQ model is a real static INT8 quantization of the tiny model by ONNX Runtime (symmetric,
    zero-points 0, ReLU kept: the TensorRT-loadable settings of facts §10.5); the ORT-native one
    uses ONNX Runtime's defaults.
    """
    from edgealex.artifacts import sha256_file

    os.makedirs(folder, exist_ok=True)
    record = {"artifact": "calibration", "model_sha256": model_sha256 or sha256_file(onnx_path),
              "qdq_onnx": None, "ort_int8_onnx": None, "caches": {}}
    for number in caches:
        name = f"calib-{number}.cache"
        write_cache(os.path.join(folder, name), number)
        record["caches"][str(number)] = name
    if qdq:
        _quantize(onnx_path, os.path.join(folder, "model.qdq.onnx"), trt_style=True)
        record["qdq_onnx"] = "model.qdq.onnx"
    if ort_native:
        _quantize(onnx_path, os.path.join(folder, "model.ort-int8.onnx"), trt_style=False)
        record["ort_int8_onnx"] = "model.ort-int8.onnx"
    with open(os.path.join(folder, "calibration.json"), "w") as handle:
        json.dump(record, handle)
    return str(folder)


def _quantize(onnx_path, out_path, trt_style):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.data = iter([{"input": rng.random((1, 3, SIZE, SIZE), dtype=np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.data, None)

    extra = {}
    if trt_style:
        extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "QDQKeepRemovableActivations": True,
                 "AddQDQPairToWeight": True}
    quantize_static(onnx_path, out_path, Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, extra_options=extra)


def run_onnx(path, batch):
    """Logits of an ONNX model on ONNX Runtime CPU (the reference the engines are compared with)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0]
