"""ONNX rewrites for serving engines, and the parity check that guards them (workstation side).

:func:`derive_onnx` turns an edgealex ONNX (FP32, Q/DQ INT8 or ONNX Runtime INT8) into the graph
a serving engine wants:

- ``fold_std``: the per-channel ``1/std`` moves into the model, because Gst-nvinfer applies one
  scalar ``net-scale-factor`` and per-channel ``offsets`` only (``y = net-scale-factor * (x - offset[c])``,
  ctx.cpp ``setScaleOffsets``; facts §1.3). With ``net-scale-factor = 1/255`` and
  ``offsets = 255*mean`` nvinfer feeds ``y_c = x/255 - mean_c`` and the model must see
  ``z_c = y_c / std_c``:

  * FP32 graphs whose input feeds exactly one group-1 ``Conv`` with a weight initializer: the
    weights are scaled per input channel, ``W[:, c] *= 1/std_c``, bias unchanged. Exact also at the
    borders, because zero padding of ``y`` equals zero padding of ``z`` (facts §1.3). The mean is
    NOT folded into the bias (that would inject ``-mean/std`` at the padded borders).
  * Any other graph (a Q/DQ model: the input feeds a QuantizeLinear; INT8 weights carry
    per-output-channel scales, so a per-input-channel factor is not representable in them): a
    per-channel ``Mul`` by ``1/std`` is inserted in front of the first consumer, so the calibrated
    quantization scales stay valid unchanged.
- ``softmax``: a ``Softmax`` over the classes is appended (output ``probs``): nvinfer's default
  classifier parser compares the raw outputs with ``classifier-threshold`` and applies no softmax
  (out.cpp ``parseAttributesFromSoftmaxLayers``; facts §1.5); Triton's classification extension
  then reports probabilities too.
- ``batch``: the batch axis of input and output becomes dynamic (``None``) or a static size.

The opset and IR version of the source are kept (Softmax on a 2-D output with ``axis=1`` means the
same in every opset). :func:`parity` runs source and derived graph in ONNX Runtime on the same
pixels and compares probabilities.
"""

import copy
import json

from edgealex._optional import require
from edgealex.errors import EdgeAlexError
from edgealex.modelinfo import ModelInfo, attach
from edgealex.preprocess import Preprocess

PROBS_NAME = "probs"
PARITY_MAX_ABS_DIFF = 1e-4
UNIT_STD = (1.0, 1.0, 1.0)


class Derived:
    """A derived graph and how it was made.

    Attributes:
        proto (onnx.ModelProto): the graph, edgealex metadata attached.
        info (ModelInfo): its record: ``preprocess.std`` is (1, 1, 1) when the std moved inside,
            ``output_name`` is ``probs`` when a Softmax was appended, ``batch`` the new batch.
        std_method (str or None): "fold-conv", "mul" or None (std not moved).
        folded_into (str or None): the Conv node whose weights were scaled.
        softmax (str): "appended" or "present" (the graph already ended in Softmax) or "none".
        renamed (dict): tensor renames a calibration cache must follow (old name -> new name).
    """

    def __init__(self, proto, info, std_method, folded_into, softmax, renamed):
        self.proto, self.info = proto, info
        self.std_method, self.folded_into, self.softmax, self.renamed = std_method, folded_into, softmax, renamed

    def to_dict(self):
        return {"std_method": self.std_method, "folded_into": self.folded_into, "softmax": self.softmax,
                "batch": self.info.batch, "renamed": dict(self.renamed), "opset": self.info.opset}


def _graph_io(graph, name, kind):
    items = graph.input if kind == "input" else graph.output
    for item in items:
        if item.name == name:
            return item
    return None


def _set_batch(value_info, batch):
    dims = value_info.type.tensor_type.shape.dim
    if not len(dims):
        raise EdgeAlexError(value_info.name, "has no shape in the ONNX", "export the model again with edgealex export")
    dim = dims[0]
    if batch is None:
        dim.Clear()
        dim.dim_param = "batch"
    else:
        dim.Clear()
        dim.dim_value = int(batch)


def derive_onnx(model, info, fold_std=False, softmax=True, batch=None, stage="deploy", source_sha256=None,
                path="model"):
    """Rewrite a classifier for a serving engine (see the module docstring).

    Args:
        model (onnx.ModelProto): the source graph (not modified).
        info (ModelInfo): its edgealex record (input/output names, preprocessing, labels).
        fold_std (bool): move the per-channel 1/std into the model. Defaults to False.
        softmax (bool): append a Softmax named ``probs`` (skipped when the graph already ends in
            one). Defaults to True.
        batch (int or None): static batch, or None for a dynamic batch axis. Defaults to None.
        stage (str): recorded in the provenance, e.g. "deploy-deepstream".
        source_sha256 (str or None): sha256 of the source file, recorded in the provenance.
        path (str): the source's path, for messages.

    Returns:
        Derived: the new graph and what was done.

    Raises:
        EdgeAlexError: the graph is not a single-input NCHW classifier with a [N, classes] output.
    """
    onnx = require("onnx", "edgealex deploy")
    numpy_helper = require("onnx.numpy_helper")
    helper = require("onnx.helper")
    np = require("numpy")
    proto = copy.deepcopy(model)
    graph = proto.graph
    inp = _graph_io(graph, info.input_name, "input")
    out = _graph_io(graph, info.output_name, "output")
    if inp is None or out is None or len(graph.output) != 1:
        raise EdgeAlexError(path, f"expected one input {info.input_name!r} and one output {info.output_name!r} "
                            f"(the edgealex record), found inputs {[i.name for i in graph.input]} and outputs "
                            f"{[o.name for o in graph.output]}",
                            "pass the ONNX written by `edgealex export` (or an engine built from it)")
    if len(out.type.tensor_type.shape.dim) != 2:
        raise EdgeAlexError(path, f"the output {info.output_name!r} is not [batch, classes]",
                            "serve a classifier whose output is one score per class")
    opset = max([o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] or [0])
    renamed = {}
    std_method = folded_into = None
    spec = info.preprocess
    if fold_std:
        inv_std = [1.0 / s for s in spec.std]
        consumers = [n for n in graph.node if info.input_name in n.input]
        inits = {t.name: t for t in graph.initializer}
        conv = consumers[0] if len(consumers) == 1 else None
        weight = inits.get(conv.input[1]) if conv is not None and conv.op_type == "Conv" and len(conv.input) > 1 else None
        group = 1
        if conv is not None:
            for attr in conv.attribute:
                if attr.name == "group":
                    group = attr.i
        if weight is not None and group == 1 and conv.input[0] == info.input_name and len(weight.dims) == 4 \
                and weight.dims[1] == 3:
            array = numpy_helper.to_array(weight).astype(np.float32)
            folded = (array * np.asarray(inv_std, dtype=np.float32).reshape(1, 3, 1, 1)).astype(array.dtype)
            new_name = weight.name + "_std_folded"
            graph.initializer.append(numpy_helper.from_array(folded, new_name))
            conv.input[1] = new_name
            if not any(weight.name in n.input for n in graph.node):
                graph.initializer.remove(weight)
            std_method, folded_into = "fold-conv", conv.name or conv.output[0]
        else:
            # A per-channel Mul in front of every consumer of the input.
            scaled = info.input_name + "_std"
            scale_name = info.input_name + "_inv_std"
            graph.initializer.append(numpy_helper.from_array(
                np.asarray(inv_std, dtype=np.float32).reshape(1, 3, 1, 1), scale_name))
            for node in consumers:
                for i, name in enumerate(node.input):
                    if name == info.input_name:
                        node.input[i] = scaled
            graph.node.insert(0, helper.make_node("Mul", [info.input_name, scale_name], [scaled], name="edgealex_inv_std"))
            renamed[info.input_name] = scaled
            std_method = "mul"
        spec = Preprocess.from_dict(dict(spec.to_dict(), std=list(UNIT_STD)))

    softmax_state = "none"
    output_name = info.output_name
    if softmax:
        producer = [n for n in graph.node if info.output_name in n.output]
        if producer and producer[0].op_type == "Softmax":
            softmax_state = "present"
        else:
            graph.node.append(helper.make_node("Softmax", [info.output_name], [PROBS_NAME], axis=1,
                                               name="edgealex_softmax"))
            new_out = copy.deepcopy(out)
            new_out.name = PROBS_NAME
            graph.output.remove(out)
            graph.output.append(new_out)
            out = graph.output[0]
            output_name = PROBS_NAME
            softmax_state = "appended"
    _set_batch(inp, batch)
    _set_batch(out, batch)
    del graph.value_info[:]  # intermediate shapes recorded for the old batch would contradict the new one

    provenance = dict(info.provenance)
    provenance["derived"] = {"stage": stage, "source_sha256": source_sha256, "std_method": std_method,
                             "std_moved": list(info.preprocess.std) if std_method else None,
                             "softmax": softmax_state, "batch": batch, "source_output": info.output_name}
    new_info = ModelInfo(arch=info.arch, labels=list(info.labels), preprocess=spec, input_name=info.input_name,
                         output_name=output_name, batch=batch, opset=info.opset or opset, provenance=provenance)
    attach(proto, new_info)
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise EdgeAlexError(path, f"the rewritten graph fails onnx.checker ({str(exc)[:300]})",
                            "report this with the command line; the source graph is unusual")
    return Derived(proto, new_info, std_method, folded_into, softmax_state, renamed)


def _session(ort, model_bytes):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _run(ort_session, batch_array, static_batch):
    """Run a session over (N, ...) inputs, in chunks of a static batch (padded) when it has one."""
    np = require("numpy")
    name = ort_session.get_inputs()[0].name
    if not static_batch:
        return ort_session.run(None, {name: batch_array})[0]
    outs = []
    for start in range(0, len(batch_array), static_batch):
        chunk = batch_array[start:start + static_batch]
        count = len(chunk)
        if count < static_batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], static_batch - count, axis=0)])
        outs.append(ort_session.run(None, {name: chunk})[0][:count])
    return np.concatenate(outs)


def static_batch_of(model):
    """The static batch of a model's first input, or None when dynamic."""
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    return int(dim.dim_value) if dim.HasField("dim_value") and dim.dim_value > 0 else None


def parity_pixels(spec, count, seed=0):
    """Pixels in 0..255, float32 (count, 3, S, S) in the model's channel order: black, white, then random."""
    np = require("numpy")
    rng = np.random.default_rng(seed)
    size = spec.input_size
    pixels = rng.integers(0, 256, size=(max(count, 3), 3, size, size)).astype(np.float32)
    pixels[0] = 0.0
    pixels[1] = 255.0
    return pixels[:max(count, 3)]


def edgealex_input(pixels, spec):
    """What edgealex's own preprocessing makes of pixels: ``pixel * 1/(255 std) - mean/std`` (preprocess.py)."""
    np = require("numpy")
    scale, offset = spec._affine()
    return (pixels * scale.reshape(1, 3, 1, 1) + offset.reshape(1, 3, 1, 1)).astype(np.float32)


def nvinfer_input(pixels, net_scale_factor, offsets):
    """What Gst-nvinfer makes of pixels: ``net-scale-factor * (x - offsets[c])`` (facts §1.3)."""
    np = require("numpy")
    off = np.asarray(offsets, dtype=np.float32).reshape(1, 3, 1, 1)
    return (np.float32(net_scale_factor) * (pixels - off)).astype(np.float32)


def probabilities(outputs, already_probs):
    """Softmax of logits as edgealex's loop computes it (pipeline/classify.py), or the outputs as they are."""
    np = require("numpy")
    if already_probs:
        return np.asarray(outputs, dtype=np.float32)
    from edgealex.pipeline.classify import softmax

    return softmax(outputs)


def parity(source_bytes, source_info, derived, derived_input, samples=4, batch=None, seed=0, path="model"):
    """Probabilities of the derived graph vs edgealex's own pipeline on the same pixels (ONNX Runtime).

    The reference is the source graph fed with edgealex's preprocessing arithmetic, its logits
    through edgealex's softmax. The derived graph is fed ``derived_input(pixels)``.

    Args:
        source_bytes (bytes): the serialized source ONNX.
        source_info (ModelInfo): its record.
        derived (Derived): from :func:`derive_onnx`.
        derived_input (callable): pixels (N, 3, S, S) float32 0..255 -> the derived graph's input.
        samples (int): images (at least 3: black, white, random). Defaults to 4.
        batch (int or None): run the derived graph at this batch (its static batch, or a batch > 1
            to exercise a dynamic axis).
        seed (int): seed of the random pixels.
        path (str): for messages.

    Returns:
        dict: ``max_abs_diff`` (probability units), ``top1_agreement`` (0..1), ``samples``, ``batch``.
    """
    ort = require("onnxruntime", "edgealex deploy (parity check)")
    onnx = require("onnx", "edgealex deploy")
    np = require("numpy")
    spec = source_info.preprocess
    count = max(samples, 3)
    if batch:
        count = max(count, batch)
    pixels = parity_pixels(spec, count, seed)
    source_model = onnx.load_from_string(source_bytes)
    src_sess = _session(ort, source_bytes)
    source_is_probs = any(n.op_type == "Softmax" and source_info.output_name in n.output for n in source_model.graph.node)
    ref = probabilities(_run(src_sess, edgealex_input(pixels, spec), static_batch_of(source_model)), source_is_probs)
    run_batch = derived.info.batch or batch or 2
    try:
        der_sess = _session(ort, derived.proto.SerializeToString())
        got = probabilities(_run(der_sess, derived_input(pixels), run_batch), derived.softmax != "none")
    except EdgeAlexError:
        raise
    except Exception as exc:  # onnxruntime's Fail/InvalidArgument/RuntimeException
        first_line = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise EdgeAlexError(path, f"the rewritten graph does not run in ONNX Runtime at batch {run_batch} "
                            f"({type(exc).__name__}: {first_line}); nothing was written",
                            "the graph hard-codes its batch size: export with --dynamic-batch, or use a static "
                            "batch (deepstream: --batch-mode static)")
    if got.shape != ref.shape:
        raise EdgeAlexError(path, f"the rewritten graph outputs {list(got.shape)} where the source gives "
                            f"{list(ref.shape)}", "report this with the command line")
    diff = float(np.max(np.abs(got - ref)))
    agree = float(np.mean(np.argmax(got, axis=1) == np.argmax(ref, axis=1)))
    return {"max_abs_diff": diff, "top1_agreement": agree, "samples": int(count), "batch": int(run_batch),
            "threshold_max_abs_diff": PARITY_MAX_ABS_DIFF}


def check_parity(result, what, path):
    """Raise when a parity result is outside 1e-4 or top-1 disagrees (nothing has been written yet)."""
    if result["max_abs_diff"] > PARITY_MAX_ABS_DIFF or result["top1_agreement"] < 1.0:
        raise EdgeAlexError(path, "the {} disagrees with edgealex's own pipeline on the same input tensor (max abs "
                            "diff of probabilities {:.3g} > {:g}, top-1 agreement {:.1%}); nothing was written".format(
                                what, result["max_abs_diff"], PARITY_MAX_ABS_DIFF, result["top1_agreement"]),
                            "report this with the command line; check the model's preprocessing metadata")
    return result


def describe(derived):
    """One line for logs: what the rewrite did."""
    return json.dumps(derived.to_dict(), sort_keys=True)
