"""FP32 -> FP16 ONNX conversion for strongly typed TensorRT (11.x): the FP16 engine needs an FP16 ONNX.

A small converter of our own instead of ``onnxconverter-common`` (one more dependency for a pass this
simple): every FP32 weight, constant and Cast target becomes FP16, the graph inputs and outputs stay
FP32 (``keep_io_types``) with a Cast after each input and before each output, so runners feed and
read float32 as before. Inputs that ONNX requires in float32 (Resize ``roi``/``scales``, Upsample
``scales``) keep their FP32 producers. Weights beyond the FP16 range (|x| > 65504) are clipped and
counted. Graphs with control flow (If/Loop/Scan) are refused: an AlexNet-class classifier has none.
"""

import json

from edgealex._optional import require
from edgealex.errors import EdgeAlexError

FP16_MAX = 65504.0
METADATA_KEY = "edgealex_fp16"
# (op_type, input index) pairs that must stay float32 in every opset that has them.
_FP32_ONLY_INPUTS = {("Resize", 1), ("Resize", 2), ("Upsample", 1)}
_CONTROL_FLOW = {"If", "Loop", "Scan"}


def convert_to_fp16(model, source="model"):
    """An FP16 copy of an FP32 ONNX model with float32 inputs and outputs.

    Args:
        model (onnx.ModelProto): the FP32 model (not modified).
        source (str): name used in error messages. Defaults to "model".

    Returns:
        tuple: ``(fp16_model, stats)`` with stats ``{"initializers": n, "constants": n, "casts": n,
        "clipped_values": n}``.

    Raises:
        EdgeAlexError: the graph has control flow or no float32 input.
    """
    onnx = require("onnx", "FP16 conversion for strongly typed TensorRT")
    np = require("numpy")
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    for node in graph.node:
        if node.op_type in _CONTROL_FLOW:
            raise EdgeAlexError(source, f"has a {node.op_type} node (control flow), which the FP16 converter "
                                "does not handle", "export the classifier without control flow")

    keep_fp32 = set()
    for node in graph.node:
        for index, name in enumerate(node.input):
            if (node.op_type, index) in _FP32_ONLY_INPUTS and name:
                keep_fp32.add(name)

    stats = {"initializers": 0, "constants": 0, "casts": 0, "clipped_values": 0}

    def to_fp16(tensor):
        array = numpy_helper.to_array(tensor).astype(np.float32)
        clipped = int(np.count_nonzero(np.abs(array) > FP16_MAX))
        stats["clipped_values"] += clipped
        half = np.clip(array, -FP16_MAX, FP16_MAX).astype(np.float16)
        return numpy_helper.from_array(half, tensor.name)

    for index, tensor in enumerate(graph.initializer):
        if tensor.data_type == TensorProto.FLOAT and tensor.name not in keep_fp32:
            graph.initializer[index].CopyFrom(to_fp16(tensor))
            stats["initializers"] += 1

    for node in graph.node:
        if node.op_type == "Cast" and not (set(node.output) & keep_fp32):
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16
                    stats["casts"] += 1
        if node.op_type in ("Constant", "ConstantOfShape") and not (set(node.output) & keep_fp32):
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(to_fp16(attr.t))
                    stats["constants"] += 1

    # Intermediate types are re-inferred by any consumer; stale FP32 annotations would be wrong.
    del graph.value_info[:]

    initializer_names = {t.name for t in graph.initializer}
    float_inputs = [i for i in graph.input if i.name not in initializer_names
                    and i.type.tensor_type.elem_type == TensorProto.FLOAT]
    if not float_inputs:
        raise EdgeAlexError(source, "has no float32 input, so it is not an FP32 image classifier",
                            "convert the FP32 ONNX from `edgealex export`")
    renames = {}
    head = []
    for value in float_inputs:
        inner = value.name + "_fp16"
        renames[value.name] = inner
        head.append(helper.make_node("Cast", [value.name], [inner], to=TensorProto.FLOAT16,
                                     name=value.name + "_cast_to_fp16"))
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in renames and name not in keep_fp32:
                node.input[index] = renames[name]

    tail = []
    for value in graph.output:
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        inner = value.name + "_fp16"
        for node in graph.node:
            for index, name in enumerate(node.output):
                if name == value.name:
                    node.output[index] = inner
            for index, name in enumerate(node.input):
                if name == value.name:
                    node.input[index] = inner
        tail.append(helper.make_node("Cast", [inner], [value.name], to=TensorProto.FLOAT,
                                     name=value.name + "_cast_to_fp32"))

    nodes = head + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(nodes)

    props = [p for p in out.metadata_props if p.key != METADATA_KEY]
    del out.metadata_props[:]
    out.metadata_props.extend(props)
    entry = out.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps({"converter": "edgealex.build.fp16", "keep_io_types": True, **stats}, sort_keys=True)
    try:
        onnx.checker.check_model(out)
    except Exception as exc:  # onnx.checker.ValidationError
        raise EdgeAlexError(source, f"the FP16 conversion produced an invalid model ({exc})",
                            "report this with the model; build FP16 with TensorRT 10.x meanwhile")
    return out, stats
