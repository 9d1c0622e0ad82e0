"""Predict, before any build, which ONNX nodes TensorRT will place on the DLA and which fall back.

This is a PREDICTION from the DLA layer limits TensorRT documents per version
(:mod:`edgealex.dla.rules`, facts §3.4), not a TensorRT build. Each node gets one of:

- ``dla``: every documented limit is met;
- ``gpu``: a documented limit is broken (the reason names it) - TensorRT falls back to the GPU
  (with GPU fallback on) or fails the build (without);
- ``unknown``: the facts do not say (e.g. ONNX ``Gemm`` imported as a matrix multiply, shuffles,
  non-4D tensors). The report says so instead of guessing;
- ``none``: no layer (``Identity``, ``Dropout``, ``Constant``).

The subgraph and transition counts are computed twice: with unknown nodes on the GPU (the
pessimistic count, reported first) and with unknown nodes on the DLA.
"""

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from edgealex.dla.rules import rules_for
from edgealex.errors import EdgeAlexError

DEVICES = ("dla", "gpu", "unknown", "none")

_ACTIVATIONS_ELSEWHERE = {"LeakyRelu", "Elu", "Selu", "Softplus", "Softsign", "HardSigmoid", "ThresholdedRelu",
                          "HardSwish", "Gelu", "Mish", "Celu", "ScaledTanh"}
_ELEMENTWISE_ELSEWHERE = {"Div", "Pow", "And", "Or", "Xor", "Equal", "Greater", "Less", "GreaterOrEqual",
                          "LessOrEqual", "Mod", "BitShift"}
_UNARY = {"Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Neg", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh",
          "Cosh", "Asinh", "Acosh", "Atanh", "Floor", "Ceil", "Not", "Erf", "Sign", "Round", "IsNaN", "IsInf"}
_SHUFFLE = {"Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze"}
_NO_LAYER = {"Identity": "removed when TensorRT parses the model", "Dropout": "removed (inference mode)",
             "Constant": "a constant (weights), no computing layer"}
_GEMM_REASON = ("ONNX {op} is imported as IMatrixMultiplyLayer (+ bias), not IFullyConnectedLayer; whether it runs "
                "on DLA in TensorRT {trt} is not verified (onnx-tensorrt builtin_op_importers.cpp imports it so; the "
                "NvInfer.h DLA notes cover IFullyConnectedLayer only): the verbose build log's 'Layers running "
                "on DLA' list tells")


@dataclass
class NodePlacement:
    """The prediction for one ONNX node."""

    index: int
    name: str
    op_type: str
    device: str
    reasons: List[str]
    layer: str = ""

    def to_dict(self):
        return asdict(self)


@dataclass
class PlacementReport:
    """A DLA placement prediction for one model, target and precision."""

    model: str
    target: str
    title: str
    soc: Optional[str]
    precision: str
    tensorrt: str
    rules: str
    rules_source: str
    dla_cores: int
    nodes: List[NodePlacement]
    dla_subgraphs: int
    dla_subgraphs_if_unknown_on_dla: int
    transitions: int
    transitions_if_unknown_on_dla: int
    loadables_per_core: int
    loadables_source: str
    warnings: List[str] = field(default_factory=list)
    caveats: List[str] = field(default_factory=list)
    verdict: str = ""
    label: str = "PREDICTION"
    tensorrt_check: Optional[dict] = None

    @property
    def counts(self):
        out = {device: 0 for device in DEVICES}
        for node in self.nodes:
            out[node.device] += 1
        return out

    @property
    def layers(self):
        """Nodes that become TensorRT layers (everything but ``none``)."""
        return [n for n in self.nodes if n.device != "none"]

    @property
    def fully_on_dla(self):
        """True when every layer is predicted on DLA and the subgraphs fit the per-core limit."""
        counts = self.counts
        return (counts["gpu"] == 0 and counts["unknown"] == 0 and bool(self.layers)
                and self.dla_subgraphs <= self.loadables_per_core)

    def to_dict(self):
        out = asdict(self)
        out["counts"] = self.counts
        out["fully_on_dla"] = self.fully_on_dla
        return out


class _Decision:
    def __init__(self, layer):
        self.layer = layer
        self.gpu: List[str] = []
        self.unknown: List[str] = []
        self.ok: List[str] = []

    def result(self):
        if self.gpu:
            return "gpu", self.gpu + self.unknown
        if self.unknown:
            return "unknown", self.unknown
        return "dla", self.ok or ["within the documented DLA limits"]


class _Graph:
    """Shapes, constants and producers of an ONNX graph (after shape inference)."""

    def __init__(self, model):
        from onnx import numpy_helper

        self.graph = model.graph
        graph = _infer_shapes(model)
        self.initializers = {t.name: list(t.dims) for t in model.graph.initializer}
        self.values = {}
        for tensor in model.graph.initializer:
            if len(tensor.dims) <= 1 and (tensor.dims[0] if tensor.dims else 1) <= 16:
                try:
                    self.values[tensor.name] = numpy_helper.to_array(tensor).tolist()
                except Exception:
                    pass
        self.constants = set(self.initializers)
        for node in graph.node:
            if node.op_type == "Constant":
                self.constants.update(node.output)
                for attr in node.attribute:
                    if attr.name == "value":
                        try:
                            self.values[node.output[0]] = numpy_helper.to_array(attr.t).tolist()
                        except Exception:
                            pass
        self.shapes: Dict[str, list] = {}
        for info in list(graph.input) + list(graph.value_info) + list(graph.output):
            if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
                self.shapes[info.name] = [
                    d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else
                    (d.dim_param or None) for d in info.type.tensor_type.shape.dim]
        for name, dims in self.initializers.items():
            self.shapes[name] = dims
        self.inputs = [i.name for i in model.graph.input if i.name not in self.initializers]
        self.outputs = [o.name for o in model.graph.output]

    def shape(self, name):
        return self.shapes.get(name)

    def rank(self, name):
        shape = self.shape(name)
        return len(shape) if shape is not None else None


def _infer_shapes(model, small_elements=1024):
    """Shape-inferred graph, without copying the weights.

    Large initializers (weights) become typed graph inputs for the inference, so ONNX does not
    serialize the whole model (AlexNet: 244 MB); small ones (Reshape shapes, scales) stay as
    initializers because inference reads their values.
    """
    from onnx import TensorProto, helper, shape_inference

    graph = model.graph
    small, big_inputs = [], []
    for tensor in graph.initializer:
        count = 1
        for dim in tensor.dims:
            count *= dim
        if count <= small_elements:
            small.append(tensor)
        else:
            big_inputs.append(helper.make_tensor_value_info(tensor.name, tensor.data_type or TensorProto.FLOAT,
                                                            list(tensor.dims)))
    declared = {i.name for i in graph.input}
    light = helper.make_graph(list(graph.node), graph.name or "g",
                              list(graph.input) + [i for i in big_inputs if i.name not in declared],
                              list(graph.output), initializer=small, value_info=list(graph.value_info))
    light_model = helper.make_model(light, opset_imports=list(model.opset_import))
    light_model.ir_version = model.ir_version
    try:
        return shape_inference.infer_shapes(light_model).graph
    except Exception:  # shape inference is a help, not a requirement
        return light


def _attrs(node):
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _decode(value):
    return value.decode() if isinstance(value, bytes) else value


def _in(value, bounds):
    return bounds[0] <= value <= bounds[1]


def _fmt(values):
    return "x".join(str(v) for v in values)


def predict_placement(onnx_path, target, precision=None, trt_version=None):
    """Predict DLA/GPU placement for every node of an ONNX model.

    Args:
        onnx_path (str): the ONNX model.
        target (str|Target): a target with DLA cores (``agx-xavier``, ``orin-nx-16gb``...).
        precision (str): ``fp16`` or ``int8`` (``fp32`` predicts everything on GPU); default: the target's.
        trt_version (str): TensorRT version whose rules apply; default: the target's.

    Returns:
        PlacementReport: labelled PREDICTION.

    Raises:
        EdgeAlexError: the target has no DLA, an unknown precision, or an unreadable model.
    """
    from edgealex.modelinfo import load_onnx, model_opset
    from edgealex.target import PRECISIONS, list_targets, load_target

    target = load_target(target)
    if target.dla_cores <= 0:
        with_dla = [t.name for t in list_targets() if t.dla_cores > 0]
        raise EdgeAlexError(f"target {target.name}", f"{target.title} has no DLA, so there is nothing to place",
                            "choose a target with DLA cores: " + ", ".join(with_dla))
    precision = precision or target.default_precision
    if precision not in PRECISIONS:
        raise EdgeAlexError("--precision", f"unknown precision {precision!r}", "use fp16 or int8 for DLA")
    version = trt_version or target.tensorrt
    model = load_onnx(onnx_path)
    target.check_opset(model_opset(model), str(onnx_path))
    return predict_model(model, target, precision, version, model_name=str(onnx_path))


def predict_model(model, target, precision, trt_version, model_name="model"):
    """:func:`predict_placement` on a loaded ``onnx.ModelProto``."""
    rules = rules_for(trt_version)
    graph = _Graph(model)
    warnings, caveats = [], list(rules.caveats)

    dynamic_nonbatch = []
    for name in graph.inputs:
        shape = graph.shape(name) or []
        dynamic = [i for i, d in enumerate(shape) if not isinstance(d, int)]
        if dynamic and dynamic != [0]:
            dynamic_nonbatch.append(f"{name} {shape}")
        elif dynamic == [0]:
            warnings.append(f"input {name} has a dynamic batch dimension {shape}: DLA needs fixed shapes, so "
                            "`edgealex build --dla-core N` refuses this ONNX (TensorRT itself would need one "
                            "optimization profile where min = opt = max); export with a static batch: "
                            "edgealex export --batch N")
    if dynamic_nonbatch:
        warnings.append("dynamic non-batch dimensions (" + "; ".join(dynamic_nonbatch) + "): DLA does not support "
                        "dynamic shapes, every layer stays on the GPU")
    if precision == "int8":
        caveats.append("INT8 on DLA needs per-tensor scales from EntropyCalibrator2; pooling inputs/outputs and both "
                       "elementwise inputs must share one dynamic range (TensorRT 8.2.1 include/NvInfer.h IPoolingLayer and "
                       "IElementWiseLayer notes; 'required calibrator for DLA': the IInt8EntropyCalibrator2 "
                       "Python docstring)")

    nodes = []
    for index, node in enumerate(graph.graph.node):
        name = node.name or f"{node.op_type}_{index}"
        if node.op_type in _NO_LAYER:
            nodes.append(NodePlacement(index, name, node.op_type, "none", [_NO_LAYER[node.op_type]], ""))
            continue
        decision = _place(node, graph, rules, target, str(trt_version))
        _general_limits(node, graph, rules, decision)
        if precision == "fp32":
            decision.gpu.insert(0, "DLA runs only FP16 or INT8; fp32 was requested")
        if dynamic_nonbatch:
            decision.gpu.insert(0, "dynamic shapes: DLA supports fixed shapes only")
        device, reasons = decision.result()
        nodes.append(NodePlacement(index, name, node.op_type, device, reasons, decision.layer))

    report = PlacementReport(
        model=model_name, target=target.name, title=target.title, soc=target.soc, precision=precision,
        tensorrt=str(trt_version), rules=rules.name, rules_source=rules.source, dla_cores=target.dla_cores,
        nodes=nodes, dla_subgraphs=0, dla_subgraphs_if_unknown_on_dla=0, transitions=0,
        transitions_if_unknown_on_dla=0, loadables_per_core=rules.loadables_per_core,
        loadables_source=rules.loadables_source, warnings=warnings, caveats=caveats)
    for optimistic in (False, True):
        subgraphs, transitions, sizes = _partition(graph, nodes, optimistic, precision)
        if optimistic:
            report.dla_subgraphs_if_unknown_on_dla, report.transitions_if_unknown_on_dla = subgraphs, transitions
        else:
            report.dla_subgraphs, report.transitions = subgraphs, transitions
            for size in sizes:
                if size >= rules.subgraph_bytes_max:
                    warnings.append(f"a DLA subgraph holds about {size / 2**30:.2f} GiB of intermediate tensors; "
                                    "the limit is 1 GiB per subgraph (TensorRT 8.2.1 include/NvInfer.h, DLA notes)")
    report.verdict = _verdict(report)
    return report


# ---------------------------------------------------------------------------------------------------
# per-operator rules

def _place(node, graph, rules, target, trt):
    op = node.op_type
    attrs = _attrs(node)
    if op == "Conv":
        return _conv(node, attrs, graph, rules)
    if op == "ConvTranspose":
        return _deconv(node, attrs, graph, rules)
    if op in ("MaxPool", "AveragePool"):
        return _pool(node, attrs, graph, rules, target)
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return _global_pool(node, graph, rules)
    if op == "LRN":
        d = _Decision("LRN")
        size = attrs.get("size")
        if size in rules.lrn_windows:
            d.ok.append(f"LRN window {size} in {{3, 5, 7, 9}}")
        else:
            d.gpu.append(f"LRN window {size} not in {{3, 5, 7, 9}}")
        return d
    if op in rules.activations or op in _ACTIVATIONS_ELSEWHERE:
        d = _Decision("Activation")
        if op in _ACTIVATIONS_ELSEWHERE:
            d.gpu.append(f"activation {op} is not one of ReLU, Sigmoid, Tanh, Clip")
        elif op == "Clip" and any(name and name not in graph.constants for name in node.input[1:]):
            d.unknown.append("Clip with run-time min/max is not an activation layer")
        else:
            d.ok.append(f"activation {op} is DLA-supported")
        _rank4(node, graph, d)
        return d
    if op in rules.elementwise or op in _ELEMENTWISE_ELSEWHERE or op == "Mean":
        d = _Decision("ElementWise")
        if op in _ELEMENTWISE_ELSEWHERE:
            d.gpu.append(f"elementwise {op} is not one of SUM, PROD, MAX, MIN, SUB")
        elif op == "Mean":
            d.unknown.append("Mean is imported as SUM + scale; not covered by the DLA rules")
        else:
            d.ok.append(f"elementwise {op} is DLA-supported")
        _rank4(node, graph, d)
        return d
    if op == "PRelu":
        d = _Decision("ParametricReLU")
        if not rules.prelu_known:
            d.unknown.append(f"no DLA rule for PReLU in the TensorRT {rules.name} header")
        elif node.input[1] in graph.constants:
            d.ok.append("PReLU with build-time constant slopes")
        else:
            d.gpu.append("PReLU slopes must be build-time constants on DLA")
        _rank4(node, graph, d)
        return d
    if op in _UNARY:
        d = _Decision("Unary")
        if not rules.unary_known:
            d.unknown.append(f"no DLA rule for Unary layers in the TensorRT {rules.name} header")
        elif op == "Abs":
            d.ok.append("Unary ABS is DLA-supported")
        else:
            d.gpu.append(f"Unary {op}: only ABS runs on DLA")
        return d
    if op == "Softmax":
        return _softmax(node, attrs, graph, rules, target)
    if op == "Concat":
        return _concat(node, attrs, graph, rules)
    if op == "Gather":
        d = _Decision("Gather")
        d.gpu.append("Gather has no DLA support")
        return d
    if op in ("Resize", "Upsample"):
        return _resize(node, attrs, graph, rules)
    if op in ("Gemm", "MatMul"):
        d = _Decision("MatrixMultiply")
        d.unknown.append(_GEMM_REASON.format(op=op, trt=trt))
        return d
    if op in _SHUFFLE:
        d = _Decision("Shuffle")
        d.unknown.append(f"{op} becomes a Shuffle layer; TensorRT 8.2.1/8.5.3 include/NvInfer.h give no DLA rule for Shuffle")
        return d
    if op == "BatchNormalization":
        d = _Decision("Scale")
        d.unknown.append("BatchNormalization becomes a Scale layer (often fused into the convolution before it); "
                         "no DLA rule for Scale in TensorRT 8.2.1/8.5.3 include/NvInfer.h")
        return d
    if op in ("QuantizeLinear", "DequantizeLinear"):
        d = _Decision("Quantize" if op == "QuantizeLinear" else "Dequantize")
        if rules.explicit_quantization is False:
            d.gpu.append("DLA does not support explicit quantization (Q/DQ) in TensorRT 8.x: use a calibration "
                         "cache (TensorRT 8.x Developer Guide, DLA chapter; NVIDIA's QAT-to-DLA flow converts Q/DQ to "
                             "a cache: github.com/NVIDIA-AI-IOT/cuDLA-samples README)")
        else:
            d.unknown.append("the first TensorRT version accepting symmetric INT8 Q/DQ on DLA is not stated in "
                             "NVIDIA's TensorRT documentation (8.x does not accept it)")
        return d
    d = _Decision(op)
    d.unknown.append(f"no DLA rule for ONNX {op} in TensorRT 8.2.1/8.5.3 include/NvInfer.h or the DLA layer restrictions "
                     "(docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/dla-layer-restrictions.html)")
    return d


def _rank4(node, graph, d):
    rank = graph.rank(node.input[0]) if node.input else None
    if rank is not None and rank != 4:
        d.unknown.append(f"input is rank {rank}; the DLA rules describe NCHW (rank-4) tensors only")


def _pairs(values, count):
    values = list(values or [])
    return values if len(values) == count else None


def _conv(node, attrs, graph, rules):
    d = _Decision("Convolution")
    weights = graph.initializers.get(node.input[1]) if len(node.input) > 1 else None
    kernel = list(attrs.get("kernel_shape") or (weights[2:] if weights else []))
    if not kernel:
        d.unknown.append("kernel shape unknown (weights are not an initializer)")
        return d
    if len(kernel) != 2:
        d.gpu.append(f"{len(kernel)}D convolution: DLA supports 2D only")
        return d
    strides = list(attrs.get("strides") or [1, 1])
    dilations = list(attrs.get("dilations") or [1, 1])
    group = int(attrs.get("group", 1))
    pads = list(attrs.get("pads") or [0, 0, 0, 0])
    auto_pad = _decode(attrs.get("auto_pad", "NOTSET"))
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [((k - 1) * dl + 1) // 2 for k, dl in zip(kernel, dilations)] * 2
    out_maps = weights[0] if weights else None
    if not all(_in(k, rules.conv_kernel) for k in kernel):
        d.gpu.append(f"kernel {_fmt(kernel)} outside DLA's [{rules.conv_kernel[0]}, {rules.conv_kernel[1]}]")
    if not all(_in(s, rules.conv_stride) for s in strides):
        d.gpu.append(f"stride {_fmt(strides)} outside DLA's [{rules.conv_stride[0]}, {rules.conv_stride[1]}]")
    if not all(_in(p, rules.conv_padding) for p in pads):
        d.gpu.append(f"padding {pads} outside DLA's [{rules.conv_padding[0]}, {rules.conv_padding[1]}]")
    elif any(p >= kernel[i % 2] for i, p in enumerate(pads)):
        d.gpu.append(f"padding {pads} not smaller than kernel {_fmt(kernel)} (DLA needs padding < kernel)")
    if not all(_in(v, rules.conv_dilation) for v in dilations):
        d.gpu.append(f"dilation {_fmt(dilations)} outside DLA's [{rules.conv_dilation[0]}, {rules.conv_dilation[1]}]")
    if group > rules.conv_groups_max:
        d.gpu.append(f"{group} groups > {rules.conv_groups_max}")
    if out_maps is not None and not _in(out_maps, rules.conv_output_maps):
        d.gpu.append(f"{out_maps} output maps outside DLA's [1, {rules.conv_output_maps[1]}]")
    d.ok.append(f"conv {_fmt(kernel)} stride {_fmt(strides)} pad {max(pads) if pads else 0}"
                + (f" groups {group}" if group != 1 else "") + " within DLA limits")
    return d


def _deconv(node, attrs, graph, rules):
    d = _Decision("Deconvolution")
    weights = graph.initializers.get(node.input[1]) if len(node.input) > 1 else None
    kernel = list(attrs.get("kernel_shape") or (weights[2:] if weights else []))
    if len(kernel) != 2:
        (d.gpu if kernel else d.unknown).append(
            f"{len(kernel)}D deconvolution: DLA supports 2D only" if kernel else "kernel shape unknown")
        return d
    group = int(attrs.get("group", 1))
    strides = list(attrs.get("strides") or [1, 1])
    pads = list(attrs.get("pads") or [0, 0, 0, 0])
    long_ok = (kernel[1] == 1 and kernel[0] in rules.deconv_long_kernels) or (
        kernel[0] == 1 and kernel[1] in rules.deconv_long_kernels)
    if not (all(_in(k, rules.deconv_kernel) for k in kernel) or long_ok):
        d.gpu.append(f"kernel {_fmt(kernel)} outside [1, 32] and not {{64, 96, 128}}x1 / 1x{{64, 96, 128}}")
    if strides != kernel:
        d.gpu.append(f"stride {_fmt(strides)} must equal the kernel {_fmt(kernel)} on DLA")
    if any(p != 0 for p in pads):
        d.gpu.append(f"padding {pads} must be 0 on DLA")
    if group != 1:
        d.gpu.append(f"{group} groups: DLA deconvolution needs 1")
    out_maps = weights[1] * group if weights else None
    if out_maps is not None and not _in(out_maps, rules.conv_output_maps):
        d.gpu.append(f"{out_maps} output maps outside DLA's [1, 8192]")
    if any(v != 1 for v in attrs.get("dilations") or []):
        d.unknown.append("dilated deconvolution is not covered by the DLA rules")
    d.ok.append(f"deconv {_fmt(kernel)} stride = kernel within DLA limits")
    return d


def _pool(node, attrs, graph, rules, target):
    d = _Decision("Pooling")
    kernel = list(attrs.get("kernel_shape") or [])
    if len(kernel) != 2:
        d.gpu.append(f"{len(kernel)}D pooling: DLA supports 2D only")
        return d
    strides = list(attrs.get("strides") or [1, 1])
    pads = list(attrs.get("pads") or [0, 0, 0, 0])
    if _decode(attrs.get("auto_pad", "NOTSET")) in ("SAME_UPPER", "SAME_LOWER"):
        pads = [(k - 1 + 1) // 2 for k in kernel] * 2
    kind = "max" if node.op_type == "MaxPool" else "average"
    if not all(_in(k, rules.pool_window) for k in kernel):
        d.gpu.append(f"{kind} pool window {_fmt(kernel)} outside DLA's [{rules.pool_window[0]}, {rules.pool_window[1]}]")
    if not all(_in(s, rules.pool_stride) for s in strides):
        d.gpu.append(f"pool stride {_fmt(strides)} outside DLA's [{rules.pool_stride[0]}, {rules.pool_stride[1]}]")
    if not all(_in(p, rules.pool_padding) for p in pads):
        d.gpu.append(f"pool padding {pads} outside DLA's [{rules.pool_padding[0]}, {rules.pool_padding[1]}]")
    if kind == "average" and any(pads) and not attrs.get("count_include_pad", 0):
        where = rules.avgpool_inclusive_padding_only_on
        if where is None or where == target.soc:
            d.gpu.append("average pooling with exclusive padding (count_include_pad=0); DLA needs inclusive padding"
                         + (" on Xavier" if where else ""))
    if attrs.get("ceil_mode", 0):
        d.unknown.append("ceil_mode=1 is not covered by the DLA rules")
    if any(v != 1 for v in attrs.get("dilations") or []):
        d.unknown.append("dilated pooling is not covered by the DLA rules")
    d.ok.append(f"{kind} pool {_fmt(kernel)} stride {_fmt(strides)} within DLA limits")
    return d


def _global_pool(node, graph, rules):
    d = _Decision("Pooling")
    shape = graph.shape(node.input[0])
    if shape is None:
        d.unknown.append("input shape unknown: the pooling window is the whole feature map")
        return d
    if len(shape) != 4:
        d.gpu.append(f"rank-{len(shape)} global pooling: DLA supports 2D only")
        return d
    window = shape[2:]
    if not all(isinstance(v, int) for v in window):
        d.unknown.append(f"feature map {shape} not static")
    elif not all(_in(v, rules.pool_window) for v in window):
        d.gpu.append(f"global pool window {_fmt(window)} (the whole feature map) outside DLA's [1, 8]")
    else:
        d.ok.append(f"global pool window {_fmt(window)} within DLA limits")
    return d


def _norm_axis(axis, rank):
    return axis + rank if axis < 0 and rank is not None else axis


def _softmax(node, attrs, graph, rules, target):
    d = _Decision("SoftMax")
    if not rules.softmax_known:
        d.unknown.append(f"the TensorRT {rules.name} header has no DLA Softmax rule (8.5 says: not on Xavier)")
        return d
    if target.soc == "tegra194":
        d.gpu.append("Softmax is not supported on Xavier's DLA")
        return d
    shape = graph.shape(node.input[0])
    rank = len(shape) if shape is not None else None
    axis = _norm_axis(int(attrs.get("axis", -1)), rank)
    if rank is None or axis < 0:
        d.unknown.append("input rank unknown: cannot check the Softmax axis")
        return d
    if not (axis == rank - 3 or (rank == 4 and axis in (2, 3))):
        d.gpu.append(f"Softmax over axis {axis} of a rank-{rank} tensor: DLA needs the channel or a spatial axis")
        return d
    size = shape[axis]
    others = [v for i, v in enumerate(shape) if i not in (0, axis)]
    if not isinstance(size, int) or not all(isinstance(v, int) for v in others):
        d.unknown.append(f"Softmax input {shape} not static")
        return d
    limit = 8192 if all(v == 1 for v in others) else 1024
    if size > limit:
        d.gpu.append(f"Softmax axis size {size} > {limit}")
    else:
        d.ok.append(f"Softmax axis size {size} <= {limit}")
    return d


def _concat(node, attrs, graph, rules):
    d = _Decision("Concatenation")
    rank = graph.rank(node.input[0])
    axis = _norm_axis(int(attrs.get("axis", 1)), rank)
    if rank is None and axis < 0:
        d.unknown.append("input rank unknown: cannot check the concatenation axis")
    elif (rank is None or rank == 4) and axis == 1 or (rules.name != "8.2" and rank is not None and axis == rank - 3):
        d.ok.append("concatenation on the channel axis")
    else:
        d.gpu.append(f"concatenation on axis {axis}: DLA allows the {rules.concat_axis_rule}")
    return d


def _resize(node, attrs, graph, rules):
    d = _Decision("Resize")
    if not rules.resize_known:
        d.unknown.append(f"the DLA Resize rules were dropped from the TensorRT {rules.name} header (unverified)")
        return d
    mode = _decode(attrs.get("mode", "nearest"))
    ctm = _decode(attrs.get("coordinate_transformation_mode", "half_pixel" if node.op_type == "Resize" else "asymmetric"))
    nearest = _decode(attrs.get("nearest_mode", "round_prefer_floor" if node.op_type == "Resize" else "floor"))
    scales_name = node.input[2] if node.op_type == "Resize" and len(node.input) > 2 else (
        node.input[1] if node.op_type == "Upsample" and len(node.input) > 1 else None)
    scales = graph.values.get(scales_name) if scales_name else attrs.get("scales")
    if mode != "nearest":
        d.gpu.append(f"Resize mode {mode}: DLA supports nearest only")
    if ctm != "asymmetric":
        d.gpu.append(f"coordinate transformation {ctm}: DLA needs asymmetric")
    if mode == "nearest" and nearest != "floor":
        d.gpu.append(f"nearest_mode {nearest}: DLA needs floor")
    if not scales:
        d.unknown.append("scales not constant (sizes input?): cannot check them")
    elif len(scales) != 4 or scales[0] != 1 or scales[1] != 1:
        d.gpu.append(f"scales {scales}: DLA needs 4 scales with the first two = 1")
    d.ok.append("nearest/asymmetric/floor resize with N, C scales = 1")
    return d


def _general_limits(node, graph, rules, d):
    """Dimension limits that apply to every layer (current DLA docs)."""
    if d.gpu:
        return
    for name in list(node.input) + list(node.output):
        if not name or name in graph.constants:
            continue
        shape = graph.shape(name) or []
        big = [v for v in shape[1:] if isinstance(v, int) and v > 8192]
        if big:
            if rules.max_dim:
                d.gpu.append(f"tensor {name} {shape} has a dimension > {rules.max_dim} (DLA limit, current docs)")
            else:
                d.unknown.append(f"tensor {name} {shape} has a dimension > 8192: the current DLA docs forbid it; "
                                 f"the TensorRT {rules.name} limit was not retrieved")
            return


# ---------------------------------------------------------------------------------------------------
# subgraphs and transitions

def _partition(graph, nodes, optimistic, precision):
    """(number of DLA subgraphs, number of GPU<->DLA tensor crossings, bytes per subgraph)."""
    alias = {}
    producer = {}
    by_index = {}
    for onnx_node, placed in zip(graph.graph.node, nodes):
        by_index[placed.index] = placed
        if placed.device == "none":
            if onnx_node.op_type != "Constant" and onnx_node.input:
                for out in onnx_node.output:
                    alias[out] = onnx_node.input[0]
            continue
        for out in onnx_node.output:
            producer[out] = placed.index

    def resolve(name):
        seen = set()
        while name in alias and name not in seen:
            seen.add(name)
            name = alias[name]
        return name

    def side(index):
        if index is None:
            return "gpu"  # graph inputs and outputs live in GPU memory
        device = by_index[index].device
        return "dla" if device == "dla" or (optimistic and device == "unknown") else "gpu"

    parent = {}

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    crossings = set()
    # phase[i]: how many device changes the longest path from the inputs to node i crosses (nodes
    # are in topological order). Two DLA nodes joined by an edge belong to one DLA subgraph only in
    # the same phase: a DLA node that also waits for a GPU result computed from the other (SE's
    # Relu -> GlobalAveragePool (GPU) -> ... -> Mul, next to the direct Relu -> Mul edge) starts a
    # new subgraph, since a DLA loadable runs to completion before the GPU can use its output.
    phase = {}
    for onnx_node, placed in zip(graph.graph.node, nodes):
        if placed.device == "none":
            continue
        mine = side(placed.index)
        sources = []
        for name in onnx_node.input:
            if not name:
                continue
            name = resolve(name)
            if name in graph.constants:
                continue
            source = producer.get(name)
            theirs = side(source)
            sources.append((source, theirs))
            if theirs != mine:
                crossings.add((name, theirs, mine))
        phase[placed.index] = max([phase.get(src, 0) + (theirs != mine) for src, theirs in sources] or [0])
        if mine == "dla":
            parent.setdefault(placed.index, placed.index)
            for source, theirs in sources:
                if theirs == "dla" and source is not None and phase.get(source, 0) == phase[placed.index]:
                    parent.setdefault(source, source)
                    parent[find(placed.index)] = find(source)
    for name in graph.outputs:
        source = producer.get(resolve(name))
        if side(source) == "dla":
            crossings.add((resolve(name), "dla", "gpu"))

    element = 1 if precision == "int8" else 2
    sizes: Dict[int, int] = {}
    for onnx_node, placed in zip(graph.graph.node, nodes):
        if placed.index in parent:
            root = find(placed.index)
            for out in onnx_node.output:
                shape = graph.shape(out) or []
                if shape and all(isinstance(v, int) for v in shape):
                    count = 1
                    for v in shape:
                        count *= v
                    sizes[root] = sizes.get(root, 0) + count * element
    roots = {find(i) for i in parent}
    return len(roots), len(crossings), [sizes.get(r, 0) for r in roots]


def _verdict(report):
    counts = report.counts
    total = len(report.layers)
    plural = "s" if report.dla_subgraphs != 1 else ""
    if total == 0:
        return "PREDICTION: the model has no layers"
    if report.fully_on_dla:
        return (f"PREDICTION: all {total} layers can run on DLA ({report.dla_subgraphs} subgraph{plural}, "
                f"{report.transitions} GPU<->DLA transitions); confirm with a DLA build without GPU fallback.")
    parts = [f"PREDICTION: {counts['dla']} of {total} layers on DLA in {report.dla_subgraphs} subgraph{plural}"]
    if counts["gpu"]:
        ops = _op_summary([n for n in report.nodes if n.device == "gpu"])
        parts.append(f"{counts['gpu']} fall back to GPU ({ops})")
    if counts["unknown"]:
        ops = _op_summary([n for n in report.nodes if n.device == "unknown"])
        parts.append(f"{counts['unknown']} unknown ({ops}; with them on DLA: "
                     f"{report.dla_subgraphs_if_unknown_on_dla} subgraph(s), "
                     f"{report.transitions_if_unknown_on_dla} transitions)")
    parts.append(f"{report.transitions} GPU<->DLA transitions")
    if report.dla_subgraphs > report.loadables_per_core:
        parts.append(f"{report.dla_subgraphs} subgraphs exceed the {report.loadables_per_core}-per-core loadable "
                     "limit: TensorRT moves the rest to GPU")
    return "; ".join(parts) + "."


def _op_summary(nodes):
    counts: Dict[str, int] = {}
    for node in nodes:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return ", ".join(f"{op} x{n}" if n > 1 else op for op, n in counts.items())
