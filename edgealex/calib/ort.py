"""ONNX Runtime's calibrators and quantizer, driven so that ONE pass over the images feeds every output.

* :func:`create_range_calibrator` builds ORT's own calibrator (entropy, min-max or percentile) over
  every float tensor of the graph, so the same ranges also cover each tensor TensorRT needs in its
  calibration cache.
* The computed ranges (``TensorsData``) are saved with ORT's ``save_tensors_data`` and handed to
  ``quantize_static(calibration_cache_path=...)``, which then skips its own calibration pass. Both
  INT8 models (TensorRT Q/DQ and ORT-native) are quantized from that one file.
* :func:`inspect_qdq` checks what TensorRT requires of a Q/DQ model (facts §2.6, §10.5).

Everything heavy is imported inside functions (see tests/test_lazy_imports.py).
"""

import inspect
import logging
import os
from typing import Dict

from edgealex._optional import require
from edgealex.errors import EdgeAlexError

METHODS = ("entropy", "minmax", "percentile")
PURPOSE = "edgealex calibrate"

# ORT's entropy defaults (128 histogram bins, 128 quantized bins) leave one candidate threshold,
# i.e. the min-max range. ORT builds a SIGNED histogram over [-T, T] and tries thresholds from
# num_quantized_bins/2 to num_bins/2 bins out from zero. With 1024 bins, 256 quantized bins would
# model INT8 exactly (128 levels per side, TensorRT's own search, facts §2.5) and lets the threshold
# fall to a quarter of the observed |max|; 512 models 9 bits and never clips below half of |max|.
# A defect classifier's rare, large activations are the evidence of a defect, and clipping them
# costs agreement. Measured on two trained demo models here (generators v8 / v7; 200 calibration
# images, 200 held out), Q/DQ top-1 agreement with FP32: 128 quantized bins 86% (v8), 256 96% / 94%,
# 384 99% (v7), 512 100% / 100%; the search is also shorter. 2048 histogram bins took ~3x longer
# and agreed less (ORT's KL loop is pure Python).
ENTROPY_NUM_BINS = 1024
ENTROPY_QUANTIZED_BINS = 512
PERCENTILE = 99.999
PERCENTILE_NUM_BINS = 2048

# TensorRT explicit quantization: symmetric INT8, zero-point 0, per-channel weights, activations
# such as Relu kept (facts §2.6, §10.5). Biases stay FP32: ORT would otherwise feed Conv/Gemm through
# an INT32 DequantizeLinear, which TensorRT's Q/DQ support (INT8 only) does not cover; ORT's CPU
# fusion into QLinearConv/QGemm quantizes a float bias itself (checked: same fused graph).
#
# Weights are stored once, as INT8 initializers feeding DequantizeLinear (AddQDQPairToWeight off):
# a quarter of the FP32 bytes instead of FP32 weights plus a Q/DQ pair. Which TensorRT takes that:
# the ONNX parser imports an INT8 initializer as INT8 weights and hands it to addConstant ->
# addDequantize in every version the targets name (onnx-tensorrt release/8.2-GA
# onnx2trt_utils.cpp convertOnnxWeights, builtin_op_importers.cpp QuantDequantLinearHelper), but
# only from the 9.x/10.x API on is a constant's output typed by its weights ("The output type is
# weights.type", NvInfer.h IConstantLayer::setWeights at TensorRT v9.3.0 and v10.0.0); the 8.2.1,
# 8.5.3 and 8.6.1 headers say any non-INT32 constant is "a tensor of real values", which
# IDequantizeLayer (INT8 input only) does not take. So the Q/DQ ONNX is for TensorRT >= 10 (where
# the build plan uses it, edgealex.build.plan.int8_source_preference); TensorRT 8.x (Nano 8.2,
# Xavier 8.5) and every DLA build take the calibration caches written next to it.
QDQ_MIN_TENSORRT = "10.0"
TRT_QDQ_EXTRA_OPTIONS = {
    "ActivationSymmetric": True,
    "WeightSymmetric": True,
    "QDQKeepRemovableActivations": True,
    "AddQDQPairToWeight": False,
    "QuantizeBias": False,
}


def _quantization():
    return require("onnxruntime.quantization", PURPOSE)


def method_enum(method):
    """``"entropy"`` -> ``CalibrationMethod.Entropy`` (also minmax, percentile)."""
    if method not in METHODS:
        raise EdgeAlexError(f"--method {method}", "unknown calibration method",
                            "use one of: " + ", ".join(METHODS))
    quant = _quantization()
    return {"entropy": quant.CalibrationMethod.Entropy, "minmax": quant.CalibrationMethod.MinMax,
            "percentile": quant.CalibrationMethod.Percentile}[method]


def method_settings(method):
    """The calibrator options used for ``method`` (recorded in the report)."""
    if method == "entropy":
        return {"num_bins": ENTROPY_NUM_BINS, "num_quantized_bins": ENTROPY_QUANTIZED_BINS, "symmetric": False}
    if method == "percentile":
        return {"num_bins": PERCENTILE_NUM_BINS, "percentile": PERCENTILE, "symmetric": True}
    return {"symmetric": False}


def check_ort_support():
    """Refuse an onnxruntime whose ``quantize_static`` cannot take precomputed ranges.

    Raises:
        EdgeAlexError: ``quantize_static`` has no ``calibration_cache_path`` parameter.
    """
    quant = _quantization()
    params = inspect.signature(quant.quantize_static).parameters
    calibrate = require("onnxruntime.quantization.calibrate", PURPOSE)
    if "calibration_cache_path" not in params or not hasattr(calibrate, "save_tensors_data"):
        ort = require("onnxruntime", PURPOSE)
        raise EdgeAlexError(
            PURPOSE, f"onnxruntime {ort.__version__} cannot reuse computed ranges "
            "(quantize_static has no calibration_cache_path)",
            "upgrade it on this workstation: pip install -U onnxruntime (1.32 has it)")


def create_range_calibrator(model_path, method, augmented_path):
    """ORT's calibrator for ``method`` over every float tensor of ``model_path``.

    Call ``collect_data(reader)`` as often as needed (histograms and min/max merge across calls),
    then ``compute_data()`` once.

    Args:
        model_path (str): the FP32 ONNX.
        method (str): "entropy", "minmax" or "percentile".
        augmented_path (str): where ORT writes its augmented model (a scratch file).

    Returns:
        onnxruntime.quantization.calibrate.CalibraterBase: ready to collect.
    """
    calibrate = require("onnxruntime.quantization.calibrate", PURPOSE)
    return calibrate.create_calibrator(
        str(model_path), None, augmented_model_path=str(augmented_path),
        calibrate_method=method_enum(method), extra_options=method_settings(method))


class ArrayReader:
    """ORT ``CalibrationDataReader`` over a list of input batches (duck-typed: get_next)."""

    def __init__(self, input_name, batches):
        self.input_name = input_name
        self._batches = list(batches)
        self._next = 0

    def get_next(self):
        if self._next >= len(self._batches):
            return None
        batch = self._batches[self._next]
        self._next += 1
        return {self.input_name: batch}

    def __len__(self):
        return len(self._batches)


def save_ranges(tensors_data, path):
    """Write ORT's ranges JSON (``save_tensors_data``); ``quantize_static`` reads it back."""
    calibrate = require("onnxruntime.quantization.calibrate", PURPOSE)
    calibrate.save_tensors_data(tensors_data, str(path))  # ORT writes it atomically (mkstemp: mode 0600)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(str(path), 0o666 & ~mask)
    return str(path)


def ranges_table(tensors_data):
    """``{tensor: (rmin, rmax)}`` as Python floats, sorted by name."""
    np = require("numpy")
    table = {}
    for name in sorted(tensors_data.keys()):
        low, high = tensors_data[name].range_value
        # min-max ranges come back as 1-element arrays, histogram ones as 0-d arrays
        table[name] = (float(np.min(low)), float(np.max(high)))
    return table


def _quantize(model_path, out_path, ranges_path, method, **kwargs):
    quant = _quantization()
    # ORT logs a "please run pre-processing" warning on every call through the root logger;
    # edgealex quantizes an exported, shape-inferred model, so it is noise here.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        quant.quantize_static(
            str(model_path), str(out_path), None, calibrate_method=method_enum(method),
            calibration_cache_path=str(ranges_path), **kwargs)
    finally:
        root.setLevel(level)
    return str(out_path)


def quantize_trt_qdq(model_path, out_path, ranges_path, method):
    """The TensorRT-compatible Q/DQ model: symmetric INT8 activations and per-channel weights,
    every zero-point 0, Relu kept, weights stored as INT8 initializers feeding DequantizeLinear
    (TensorRT >= 10, see :data:`QDQ_MIN_TENSORRT`), FP32 biases.

    Returns:
        str: ``out_path``.
    """
    quant = _quantization()
    return _quantize(model_path, out_path, ranges_path, method,
                     quant_format=quant.QuantFormat.QDQ, per_channel=True,
                     activation_type=quant.QuantType.QInt8, weight_type=quant.QuantType.QInt8,
                     extra_options=dict(TRT_QDQ_EXTRA_OPTIONS))


def quantize_ort_native(model_path, out_path, ranges_path, method):
    """ORT's own QDQ layout for CPU: INT8 weights stored once (a quarter of the FP32 file),
    asymmetric UINT8 activations (ORT's recommendation for x86 with VNNI), Relu folded into the
    ranges. Not for TensorRT: it has non-zero zero-points.

    Returns:
        str: ``out_path``.
    """
    quant = _quantization()
    return _quantize(model_path, out_path, ranges_path, method,
                     quant_format=quant.QuantFormat.QDQ, per_channel=True,
                     activation_type=quant.QuantType.QUInt8, weight_type=quant.QuantType.QInt8)


def keep_outputs_float(model):
    """Drop the QuantizeLinear -> DequantizeLinear pair that ORT's quantizer puts on each graph
    output, in place, so the classifier's logits stay float.

    Quantized logits (127 steps over the calibrated range, clipped by entropy calibration) blur
    the softmax confidence that the defect threshold is compared with; TensorRT also returns the
    network output in float, and on ONNX Runtime the last layer then runs as a float-output
    QGemm. Measured on the demo model: the same top-1 agreement, Q/DQ throughput slightly up.

    Args:
        model (onnx.ModelProto): a quantized model (changed in place).

    Returns:
        list: the graph outputs that were made float again.
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    restored = []
    for output in graph.output:
        dequantize = producer.get(output.name)
        if dequantize is None or dequantize.op_type != "DequantizeLinear":
            continue
        quantize = producer.get(dequantize.input[0])
        if quantize is None or quantize.op_type != "QuantizeLinear" or consumers.get(quantize.output[0]) != 1:
            continue
        source = producer.get(quantize.input[0])
        if source is None or consumers.get(quantize.input[0]) != 1:
            continue  # the float tensor feeds something else too, or is a graph input
        graph.node.remove(dequantize)
        graph.node.remove(quantize)
        source.output[list(source.output).index(quantize.input[0])] = output.name
        restored.append(output.name)
        params = set(quantize.input[1:]) | set(dequantize.input[1:])
        used = {name for node in graph.node for name in node.input}
        for init in [i for i in graph.initializer if i.name in params and i.name not in used]:
            graph.initializer.remove(init)  # the dropped pair's scale and zero-point
    return restored


def _initializers(model):
    numpy_helper = require("onnx.numpy_helper", PURPOSE)
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def qdq_activation_scales(model):
    """``{tensor: scale}`` of every per-tensor QuantizeLinear on an activation (not a weight).

    Args:
        model (onnx.ModelProto): a Q/DQ model.

    Returns:
        dict: ONNX tensor name (the QuantizeLinear input) -> float scale.
    """
    inits = _initializers(model)
    producers = {out for node in model.graph.node for out in node.output}
    graph_inputs = {i.name for i in model.graph.input}
    graph_outputs = {o.name for o in model.graph.output}
    dq_output = {node.input[0]: node.output[0] for node in model.graph.node if node.op_type == "DequantizeLinear"}
    scales: Dict[str, float] = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        source = node.input[0]
        if source in inits or not (source in producers or source in graph_inputs):
            continue
        scale = inits.get(node.input[1])
        if scale is None or scale.size != 1:
            continue
        # A quantized graph output is renamed (ORT: "<name>_QuantizeLinear_Input") so that the
        # DequantizeLinear can produce the original name: key the scale by that original name.
        restored = dq_output.get(node.output[0])
        scales[restored if restored in graph_outputs else source] = float(scale.reshape(-1)[0])
    return scales


def inspect_qdq(model):
    """What a Q/DQ model looks like from TensorRT's side.

    Args:
        model (onnx.ModelProto): a Q/DQ model.

    Returns:
        dict: ``quantize_nodes``, ``dequantize_nodes``, ``zero_points`` (how many checked),
        ``nonzero_zero_points`` (node names), ``non_int8_zero_points`` (node names whose
        zero-point is not INT8, e.g. UINT8), ``missing_zero_points``, ``relu_nodes``,
        ``per_channel_weights`` (DequantizeLinear with a vector scale), ``int8_weights``
        (DequantizeLinear fed by an INT8 initializer), ``float_weight_qdq`` (QuantizeLinear fed
        by a float initializer: FP32 weights stored with a Q/DQ pair), ``min_tensorrt`` (the
        oldest TensorRT that takes the file: :data:`QDQ_MIN_TENSORRT` with INT8 weights, else
        "8.0"), ``trt_compatible`` (bool).
    """
    onnx = require("onnx", PURPOSE)
    inits = _initializers(model)
    init_types = {init.name: init.data_type for init in model.graph.initializer}
    summary = {"quantize_nodes": 0, "dequantize_nodes": 0, "zero_points": 0, "nonzero_zero_points": [],
               "non_int8_zero_points": [], "missing_zero_points": [], "relu_nodes": 0,
               "per_channel_weights": 0, "int8_weights": 0, "float_weight_qdq": 0}
    for node in model.graph.node:
        if node.op_type == "Relu":
            summary["relu_nodes"] += 1
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        summary["quantize_nodes" if node.op_type == "QuantizeLinear" else "dequantize_nodes"] += 1
        stored = init_types.get(node.input[0])
        if node.op_type == "DequantizeLinear" and stored == onnx.TensorProto.INT8:
            summary["int8_weights"] += 1
        elif node.op_type == "QuantizeLinear" and stored == onnx.TensorProto.FLOAT:
            summary["float_weight_qdq"] += 1
        label = node.name or node.output[0]
        if len(node.input) < 3 or not node.input[2]:
            summary["missing_zero_points"].append(label)  # defaults to UINT8 0: not INT8
            continue
        zero_name = node.input[2]
        if zero_name not in inits:
            summary["missing_zero_points"].append(label)
            continue
        summary["zero_points"] += 1
        if init_types[zero_name] != onnx.TensorProto.INT8:
            summary["non_int8_zero_points"].append(label)
        if (inits[zero_name] != 0).any():
            summary["nonzero_zero_points"].append(label)
        scale = inits.get(node.input[1])
        if node.op_type == "DequantizeLinear" and scale is not None and scale.size > 1:
            summary["per_channel_weights"] += 1
    summary["min_tensorrt"] = QDQ_MIN_TENSORRT if summary["int8_weights"] else "8.0"
    summary["trt_compatible"] = bool(summary["quantize_nodes"]) and not (
        summary["nonzero_zero_points"] or summary["non_int8_zero_points"] or summary["missing_zero_points"])
    return summary
