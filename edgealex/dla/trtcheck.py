"""Ask TensorRT itself: ``config.can_run_on_DLA(layer)`` for every layer of the parsed ONNX network.

Needs ``tensorrt`` and a GPU (a builder). The ONNX parser names each layer after its ONNX node
(facts §2.3); helper layers a node creates (weights constants, bias additions, reshapes) are
unnamed and are attributed to the next named layer, which is how the parser adds them. Constant
layers are ignored: they hold weights and say nothing about where the node runs.
"""

from typing import Dict, List

from edgealex.errors import EdgeAlexError


def ask_tensorrt(onnx_path, precision, dla_core=0):
    """Parse the model with TensorRT and query ``can_run_on_DLA`` per layer.

    Args:
        onnx_path (str): the ONNX model.
        precision (str): ``fp16`` or ``int8`` (sets the builder flag, when the version has it).
        dla_core (int): DLA core for the config.

    Returns:
        dict: ``{"tensorrt": version, "layers": [{"name", "type", "can_run_on_dla"}], "dla_cores": n}``.

    Raises:
        EdgeAlexError: TensorRT missing, no builder (no GPU), or a parser error (all errors listed).
    """
    from edgealex._optional import require

    trt = require("tensorrt", "edgealex dla-check (TensorRT cross-check)")
    logger = trt.Logger(trt.Logger.ERROR)
    try:
        builder = trt.Builder(logger)
    except Exception as exc:
        raise EdgeAlexError("TensorRT", f"cannot create a builder ({type(exc).__name__}: {exc})",
                            "the cross-check needs a CUDA device; run it on the board")
    if builder is None:
        raise EdgeAlexError("TensorRT", "cannot create a builder", "the cross-check needs a CUDA device")
    flags = 0
    creation = getattr(trt, "NetworkDefinitionCreationFlag", None)
    if creation is not None and hasattr(creation, "EXPLICIT_BATCH"):
        # required by the 8.x ONNX parser; ignored (deprecated) in 10.x; absent in 11
        flags = 1 << int(creation.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(onnx_path))
    if not ok:
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EdgeAlexError(str(onnx_path), "TensorRT's ONNX parser rejected the model: " + " | ".join(errors),
                            "check the opset (TensorRT 8.2 parses up to opset 13) and unsupported operators")
    config = builder.create_builder_config()
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = int(dla_core)
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    flag = {"fp16": "FP16", "int8": "INT8"}.get(precision)
    if flag and hasattr(trt.BuilderFlag, flag):  # TensorRT 11 removed them (strong typing)
        config.set_flag(getattr(trt.BuilderFlag, flag))
    layers = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        layers.append({"name": layer.name, "type": str(layer.type).split(".")[-1],
                       "can_run_on_dla": bool(config.can_run_on_DLA(layer))})
    return {"tensorrt": str(getattr(trt, "__version__", "?")), "layers": layers,
            "dla_cores": int(getattr(builder, "num_DLA_cores", -1))}


def attribute_layers(node_names, layers):
    """Map TensorRT layers to ONNX node names.

    A layer named exactly like a node (or starting with ``<node>_``/``<node> ``) belongs to it;
    unnamed helper layers before it belong to it too; trailing unmatched layers go to the last node.

    Returns:
        dict: node name -> list of layer dicts (constants excluded).
    """
    names = set(node_names)
    out: Dict[str, List[dict]] = {}
    pending: List[dict] = []
    last = None
    for layer in layers:
        if layer["type"].upper() == "CONSTANT":
            continue
        owner = layer["name"] if layer["name"] in names else next(
            (n for n in node_names if layer["name"].startswith(n + "_") or layer["name"].startswith(n + " ")), None)
        if owner is None:
            pending.append(layer)
            continue
        out.setdefault(owner, []).extend(pending + [layer])
        pending = []
        last = owner
    if pending and last is not None:
        out[last].extend(pending)
    return out


def compare(report, trt_result):
    """Compare a :class:`PlacementReport` with TensorRT's answers; store the result in the report.

    Returns:
        dict: ``{"tensorrt", "agree", "disagree": [...], "resolved": [...], "unmatched_nodes": [...]}``:
        ``disagree`` = predicted dla/gpu but TensorRT says otherwise; ``resolved`` = predicted unknown,
        TensorRT decided.
    """
    by_node = attribute_layers([n.name for n in report.nodes], trt_result["layers"])
    agree, disagree, resolved, unmatched = 0, [], [], []
    for node in report.layers:
        layers = by_node.get(node.name)
        if not layers:
            unmatched.append(node.name)
            continue
        trt_dla = all(layer["can_run_on_dla"] for layer in layers)
        trt_device = "dla" if trt_dla else "gpu"
        entry = {"node": node.name, "op_type": node.op_type, "predicted": node.device, "tensorrt": trt_device,
                 "layers": [f"{layer['name']} ({layer['type']}): {'DLA' if layer['can_run_on_dla'] else 'GPU'}"
                            for layer in layers]}
        if node.device == "unknown":
            resolved.append(entry)
        elif node.device == trt_device:
            agree += 1
        else:
            disagree.append(entry)
    result = {"tensorrt": trt_result["tensorrt"], "dla_cores": trt_result.get("dla_cores"), "agree": agree,
              "disagree": disagree, "resolved": resolved, "unmatched_nodes": unmatched}
    report.tensorrt_check = result
    return result
