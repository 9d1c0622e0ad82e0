"""``edgealex deploy triton``: a Triton Inference Server model repository for an edgealex classifier.

Layout (TS docs/user_guide/model_repository.md; facts §2.1)::

    REPO/NAME/config.pbtxt
    REPO/NAME/labels.txt           one label per line (Triton's label_filename; NOT nvinfer's format)
    REPO/NAME/1/model.onnx         ONNX Runtime backend (platform onnxruntime_onnx), or
    REPO/NAME/1/model.plan         TensorRT backend (platform tensorrt_plan)
    REPO/NAME/edgealex.json        the preprocessing contract, labels and provenance
    REPO/NAME/README.md            how to start the server and call the model

The entry is built in a staging folder inside ``REPO/NAME`` and swapped in at the end
(:func:`edgealex.artifacts.staging_dir`): a failure leaves the previous entry as it was; other
files of ``REPO/NAME`` (other versions, an earlier ``1/model.plan``) are left alone.

- An exported ONNX or an ONNX Runtime engine from ``edgealex build`` (FP32, Q/DQ INT8 or ORT
  INT8) is served by the ONNX Runtime backend: the batch axis becomes dynamic (Triton's
  ``max_batch_size > 0`` needs ``[-1] + dims``) and a Softmax is appended, so outputs and the
  classification extension report probabilities; parity with edgealex's own pipeline (same input
  tensor -> probabilities within 1e-4 in ONNX Runtime) is checked before anything is written.
  Clients send what :func:`edgealex.preprocess.preprocess` produces (mean and std applied).
- A TensorRT engine from ``edgealex build`` is copied as ``model.plan`` unchanged (an engine cannot
  be rewritten): its input and output names, shape and batch come from the sidecar, and the
  Triton release whose TensorRT matches the engine's is stated (engines are not portable).

The config text is generated here without protobuf (Python 3.6 compatible); the tests parse it
into Triton's own ``ModelConfig`` message (tritonclient's model_config_pb2).
"""

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import List, Optional

from edgealex.artifacts import (check_input_file, environment_summary, read_json, sha256_file, sidecar_path, staging_dir,
                                write_bytes_atomic, write_json_atomic, write_text_atomic)
from edgealex.deploy.common import (engine_batch_is_dynamic, load_engine_record, profile_max_batch,
                                    triton_labels_text, triton_release_for)
from edgealex.errors import EdgeAlexError
from edgealex.log import logger

# ONNX Runtime backend: the batch Triton's dynamic batcher may form. 8 is the value of Triton's own
# examples (TS docs model_configuration.md); raise it for many concurrent clients on a GPU.
DEFAULT_ORT_MAX_BATCH = 8
DEFAULT_QUEUE_DELAY_US = 1000
KINDS = {"auto": "KIND_AUTO", "gpu": "KIND_GPU", "cpu": "KIND_CPU"}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass
class TritonResult:
    """What ``edgealex deploy triton`` wrote."""

    repo: str
    name: str
    model_dir: str
    files: dict
    platform: str
    max_batch_size: int
    dynamic_batching: bool
    command: str
    parity: Optional[dict] = None
    trt_version: Optional[str] = None
    triton_release: Optional[str] = None
    warnings: List[str] = field(default_factory=list)

    def to_dict(self):
        return {"repo": self.repo, "name": self.name, "model_dir": self.model_dir, "files": dict(self.files),
                "platform": self.platform, "max_batch_size": self.max_batch_size,
                "dynamic_batching": self.dynamic_batching, "command": self.command, "parity": self.parity,
                "trt_version": self.trt_version, "triton_release": self.triton_release,
                "warnings": list(self.warnings)}


def _quote(text):
    """A protobuf text-format string literal."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dims(values):
    return "[ " + ", ".join(str(int(v)) for v in values) + " ]"


def config_pbtxt(name, platform, max_batch_size, input_name, input_dims, output_name, output_dims,
                 dynamic_batching=True, queue_delay_us=DEFAULT_QUEUE_DELAY_US, instances=1, kind="auto",
                 comments=(), data_type="TYPE_FP32"):
    """Triton's config.pbtxt text (fields of ``inference.ModelConfig``, common/protobuf/model_config.proto).

    Args:
        name (str): model name (= its folder).
        platform (str): "onnxruntime_onnx" or "tensorrt_plan".
        max_batch_size (int): > 0: dims exclude the batch axis; 0: dims are the full shape.
        input_dims, output_dims (list of int): as Triton wants them for ``max_batch_size``.
        dynamic_batching (bool): add ``dynamic_batching {}`` (needs max_batch_size > 1 to matter).
        queue_delay_us (int): ``max_queue_delay_microseconds``.
        instances (int): ``instance_group`` count.
        kind (str): "auto", "gpu" or "cpu".
        comments (iterable of str): ``#`` lines at the top (text format allows them).

    Returns:
        str: the file text.
    """
    lines = ["# " + c for c in comments]
    lines += [
        f"name: {_quote(name)}",
        f"platform: {_quote(platform)}",
        f"max_batch_size: {int(max_batch_size)}",
        "input [",
        "  {",
        f"    name: {_quote(input_name)}",
        f"    data_type: {data_type}",
        f"    dims: {_dims(input_dims)}",
        "  }",
        "]",
        "output [",
        "  {",
        f"    name: {_quote(output_name)}",
        f"    data_type: {data_type}",
        f"    dims: {_dims(output_dims)}",
        '    label_filename: "labels.txt"',
        "  }",
        "]",
    ]
    if dynamic_batching:
        lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {int(queue_delay_us)}", "}"]
    lines += ["instance_group [", "  {", f"    count: {int(instances)}", f"    kind: {KINDS[kind]}",
              "  }", "]", "version_policy: { latest: { num_versions: 1 } }"]
    return "\n".join(lines) + "\n"


def _classify_input(path):
    """("engine", record) for an edgealex engine, ("onnx", None) for an exported ONNX."""
    side = sidecar_path(path)
    if os.path.isfile(side):
        data = read_json(side, "sidecar")
        if isinstance(data, dict) and data.get("artifact") == "engine":
            return "engine", load_engine_record(path)
    if path.endswith(".engine") or path.endswith(".plan"):
        return "engine", load_engine_record(path)  # raises: no sidecar
    return "onnx", None


def deploy_triton(model, repo, name=None, max_batch_size=None, queue_delay_us=DEFAULT_QUEUE_DELAY_US, instances=1,
                  kind="auto"):
    """Write a Triton model repository entry for an edgealex model or engine.

    Args:
        model (str): an ONNX from ``edgealex export``, or an engine from ``edgealex build`` (ONNX
            Runtime ``.onnx`` or TensorRT ``.engine``, with its sidecar).
        repo (str): model repository folder (created; other models in it are left alone).
        name (str or None): model name; default: the model file's stem, sanitized.
        max_batch_size (int or None): ONNX Runtime: the dynamic batcher's largest batch (default 8);
            TensorRT: must not exceed the engine profile's max batch (the default).
        queue_delay_us (int): dynamic batching ``max_queue_delay_microseconds``. Defaults to 1000.
        instances (int): model instances. Defaults to 1.
        kind (str): "auto", "gpu" or "cpu" instances. Defaults to "auto" (GPU when present).

    Returns:
        TritonResult

    Raises:
        EdgeAlexError: bad inputs, a batch the engine cannot take, a failed parity check.
    """
    model = check_input_file(model, "model", "pass an ONNX from `edgealex export` or an engine from `edgealex build`")
    if kind not in KINDS:
        raise EdgeAlexError(f"--kind {kind}", "unknown instance kind", "use auto, gpu or cpu")
    if int(instances) < 1 or int(queue_delay_us) < 0:
        raise EdgeAlexError("--instances/--queue-delay-us", "must be >= 1 / >= 0", "pass e.g. --instances 1")
    if max_batch_size is not None and int(max_batch_size) < 0:
        raise EdgeAlexError(f"--max-batch-size {max_batch_size}", "must be >= 0", "pass e.g. 8")
    name = name or re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.splitext(os.path.basename(model))[0]).strip("._") or "model"
    if not _NAME.match(name) or name.isdigit():
        raise EdgeAlexError(f"--name {name}", "is not a usable model folder name",
                            "use letters, digits, '_', '-' and '.', not only digits")
    what, record = _classify_input(model)
    warnings = []
    if record is not None and record.backend == "tensorrt":
        plan = _tensorrt_entry(model, record, name, max_batch_size, queue_delay_us, instances, kind, warnings)
    else:
        plan = _ort_entry(model, record, name, max_batch_size, queue_delay_us, instances, kind, warnings)

    model_dir = os.path.abspath(os.path.join(str(repo), name))
    version = os.path.join(model_dir, VERSION)
    other = os.path.join(version, "model.plan" if plan["file"] == "model.onnx" else "model.onnx")
    if os.path.exists(other):
        warnings.append(f"{other} from an earlier deployment is left in place; Triton ignores it ({plan['platform']} "
                        f"loads {VERSION}/{plan['file']}), delete it to avoid confusion")
    command = f"tritonserver --model-repository={os.path.abspath(str(repo))}"
    files = {}
    # Built in a staging folder inside the model folder (Triton ignores non-numeric sub-folders) and
    # swapped in at the end: a failure (a full disk, Ctrl-C, SIGTERM) leaves the previous entry intact.
    with staging_dir(model_dir, "Triton model folder", owned=_entry_files) as stage:
        _carry_version_folder(version, os.path.join(stage, VERSION), keep_out=plan["file"])

        def put(rel, write, data):
            write(os.path.join(stage, rel), data)
            return os.path.join(model_dir, rel)

        model_rel = os.path.join(VERSION, plan["file"])
        if plan["copy_from"]:
            files["model"] = put(model_rel, _copy_file, plan["copy_from"])
        else:
            files["model"] = put(model_rel, write_bytes_atomic, plan["bytes"])
        files["labels"] = put("labels.txt", write_text_atomic, triton_labels_text(plan["labels"]))
        files["config"] = put("config.pbtxt", write_text_atomic, plan["config"])
        result = TritonResult(repo=os.path.abspath(str(repo)), name=name, model_dir=model_dir, files=files,
                              platform=plan["platform"], max_batch_size=plan["max_batch_size"],
                              dynamic_batching=plan["dynamic_batching"], command=command, parity=plan.get("parity"),
                              trt_version=plan.get("trt_version"), triton_release=plan.get("triton_release"),
                              warnings=warnings)
        files["edgealex"] = put("edgealex.json", write_json_atomic, {
            "artifact": "triton-model", "source": os.path.abspath(model), "source_sha256": sha256_file(model),
            "source_kind": what, "model": plan["info"], "input_contract": plan["contract"], "result": result.to_dict(),
            "environment": environment_summary()})
        files["readme"] = put("README.md", write_text_atomic, _readme(result, plan))
    for text in warnings:
        logger.warning("%s", text)
    return result


def _ort_entry(model, record, name, max_batch_size, queue_delay_us, instances, kind, warnings):
    from edgealex.deploy import graph
    from edgealex.modelinfo import ModelInfo, from_model_proto, load_onnx

    proto = load_onnx(model)
    if record is not None:
        info = ModelInfo.from_dict(record.model)
    else:
        info = from_model_proto(proto, model, allow_default=True)
        if info.from_defaults:
            warnings.append("the ONNX has no edgealex metadata: ImageNet preprocessing and labels class_0.. assumed")
    derived = graph.derive_onnx(proto, info, fold_std=False, softmax=True, batch=None, stage="deploy-triton",
                                source_sha256=sha256_file(model), path=model)
    batch = DEFAULT_ORT_MAX_BATCH if max_batch_size is None else int(max_batch_size)
    if batch == 0:
        raise EdgeAlexError("--max-batch-size 0", "the ONNX Runtime model has a batch axis",
                            "pass a batch >= 1 (1 disables batching)")

    def same_input(pixels):
        return graph.edgealex_input(pixels, info.preprocess)

    parity = graph.check_parity(graph.parity(proto.SerializeToString(), info, derived, same_input, samples=4,
                                             batch=min(batch, 4) if batch > 1 else 2, path=model),
                                "Triton ONNX", model)
    size = info.preprocess.input_size
    comments = [
        f"Triton model written by edgealex deploy triton from {os.path.basename(model)}",
        f"ONNX Runtime backend; batch axis made dynamic and a Softmax appended ({derived.info.output_name}): outputs are probabilities",
        "max_batch_size {}: {}".format(batch, "the default edgealex chooses for ONNX Runtime (Triton's examples use 8);"
                                       " raise it for many concurrent clients" if max_batch_size is None else
                                       "as requested"),
        f"Input: what edgealex.preprocess.preprocess produces ({info.preprocess.channel_order} {size}x{size}, "
        "mean/std applied), NCHW float32",
    ]
    return {
        "platform": "onnxruntime_onnx", "file": "model.onnx", "bytes": derived.proto.SerializeToString(),
        "copy_from": None, "labels": info.labels, "max_batch_size": batch, "dynamic_batching": batch > 1,
        "parity": parity, "info": derived.info.to_dict(),
        "contract": _contract(info.preprocess, derived.info.output_name, True),
        "config": config_pbtxt(name, "onnxruntime_onnx", batch, info.input_name, [3, size, size],
                               derived.info.output_name, [len(info.labels)], dynamic_batching=batch > 1,
                               queue_delay_us=queue_delay_us, instances=instances, kind=kind, comments=comments),
    }


def _tensorrt_entry(model, record, name, max_batch_size, queue_delay_us, instances, kind, warnings):
    from edgealex.modelinfo import ModelInfo

    info = ModelInfo.from_dict(record.model)
    shape = [int(d) if d is not None else profile_max_batch(record) for d in record.input_shape]
    classes = len(info.labels)
    profile_max = profile_max_batch(record)
    jetson = bool(record.soc)
    pairing = triton_release_for(record.backend_version, jetson)
    release = pairing[0] if pairing else None
    if release is None:
        warnings.append(f"no Triton release with TensorRT {record.backend_version} is known to edgealex: use the one whose TensorRT is "
                        f"exactly {record.backend_version} (NVIDIA Frameworks Support Matrix)")
    if engine_batch_is_dynamic(record):
        batch = profile_max if max_batch_size is None else int(max_batch_size)
        if batch < 1 or batch > profile_max:
            raise EdgeAlexError(f"--max-batch-size {batch}", "the engine's optimization profile accepts "
                                f"batches 1..{profile_max}",
                                "leave out --max-batch-size, or build an engine with a larger max batch")
        input_dims, output_dims = shape[1:], [classes]
        if batch == 1:
            warnings.append("the engine's profile allows batch 1 only, so Triton cannot batch requests; for dynamic "
                            "batching rebuild it with a wider profile: edgealex build MODEL.onnx --max-batch 8")
    else:
        if max_batch_size:
            raise EdgeAlexError(f"--max-batch-size {max_batch_size}", f"the engine has a static batch of {shape[0]} "
                                "(its ONNX had no batch axis), so Triton must use max_batch_size 0",
                                "leave out --max-batch-size, or export with --dynamic-batch and rebuild")
        batch, input_dims, output_dims = 0, shape, [shape[0], classes]
        warnings.append(f"the engine has a static batch of {shape[0]}: max_batch_size 0, no dynamic batching (export with "
                        "--dynamic-batch and rebuild to let Triton batch requests)")
    output_is_probs = ((info.provenance or {}).get("derived") or {}).get("softmax") in ("appended", "present")
    comments = [
        f"Triton model written by edgealex deploy triton from {os.path.basename(model)}",
        f"TensorRT {record.backend_version} engine for {record.device_name or record.target} ({record.precision}, "
        f"{record.device}): it loads only in a Triton built with exactly this TensorRT",
        "Triton release: {}".format(release or "unknown to edgealex (see the NVIDIA Frameworks Support Matrix)"),
        f"max_batch_size from the engine's optimization profile (max {profile_max}, sidecar input_shape {shape})",
        "Input: what edgealex.preprocess.preprocess produces; output {}: {}".format(
            info.output_name, "probabilities" if output_is_probs else "logits (apply softmax for confidences)"),
    ]
    return {
        "platform": "tensorrt_plan", "file": "model.plan", "bytes": None, "copy_from": model, "labels": info.labels,
        "max_batch_size": batch, "dynamic_batching": batch > 1, "trt_version": record.backend_version,
        "triton_release": release, "info": info.to_dict(),
        "contract": _contract(info.preprocess, info.output_name, output_is_probs),
        "config": config_pbtxt(name, "tensorrt_plan", batch, info.input_name, input_dims, info.output_name,
                               output_dims, dynamic_batching=batch > 1, queue_delay_us=queue_delay_us,
                               instances=instances, kind="gpu" if kind == "auto" else kind, comments=comments),
    }


def _contract(spec, output_name, probs):
    return {"preprocess": spec.to_dict(), "function": "edgealex.preprocess.preprocess(bgr_image, spec)",
            "layout": "NCHW float32", "output": output_name, "output_is_probabilities": bool(probs)}


def _copy_file(dst, src):
    shutil.copyfile(src, dst)


VERSION = "1"
ENTRY_FILES = (VERSION, "labels.txt", "config.pbtxt", "edgealex.json", "README.md")


def _entry_files(model_dir):
    """The previous entry's files in the model folder that a new one replaces (other files are left alone)."""
    return [name for name in ENTRY_FILES if os.path.lexists(os.path.join(model_dir, name))]


def _carry_version_folder(previous, staged, keep_out):
    """Start the staged version folder with what the previous one held besides ``keep_out`` (hard links,
    copies where links are refused), since the swap replaces the whole version folder."""
    if not os.path.isdir(previous):
        os.mkdir(staged)
        return

    def link_or_copy(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(previous, staged, symlinks=True, copy_function=link_or_copy,
                    ignore=lambda folder, names: [keep_out] if os.path.samefile(folder, previous) else [])


def _readme(result, plan):
    contract = plan["contract"]
    spec = contract["preprocess"]
    lines = [
        f"# Triton model `{result.name}`",
        "",
        "Written by `edgealex deploy triton` ({}, max_batch_size {}{}).".format(
            result.platform, result.max_batch_size, ", dynamic batching" if result.dynamic_batching else ""),
        "",
        "```bash",
        result.command,
        f"# or: docker run --gpus all --rm -p8000:8000 -p8001:8001 -p8002:8002 -v {result.repo}:/models "
        "nvcr.io/nvidia/tritonserver:<release>-py3 tritonserver --model-repository=/models",
        "```",
        "",
        "Input `{}`: NCHW float32, what `edgealex.preprocess.preprocess` produces: short side to {}, centre crop "
        "{}x{}, {} order, (x/255 - mean {}) / std {}.".format(
            plan["info"]["input_name"], spec["resize"], spec["input_size"], spec["input_size"], spec["channel_order"],
            spec["mean"], spec["std"]),
        "Output `{}`: {}; `labels.txt` (one label per line) serves the classification extension "
        "(`class_count=k` returns `\"<score>:<index>:<label>\"`).".format(
            contract["output"], "probabilities" if contract["output_is_probabilities"] else "logits"),
        "",
    ]
    if result.parity:
        lines.append("Parity: probabilities within {:.2g} of edgealex's own pipeline on the same input tensors "
                     "(limit 1e-4, top-1 agreement {:.0%}, ONNX Runtime).".format(
                         result.parity["max_abs_diff"], result.parity["top1_agreement"]))
    if result.trt_version:
        lines.append("TensorRT {}: {}. Engines are not portable across TensorRT versions or GPUs.".format(
            result.trt_version, result.triton_release or "no Triton release known to edgealex"))
    lines += ["", "```python", "import numpy as np, tritonclient.grpc as grpcclient",
              "from edgealex.preprocess import Preprocess, preprocess, read_image",
              f"spec = Preprocess.from_dict({json.dumps(spec)})",
              "x = preprocess(read_image('frame.png'), spec)[None]",
              "client = grpcclient.InferenceServerClient('localhost:8001')",
              "inp = grpcclient.InferInput('{}', list(x.shape), 'FP32'); inp.set_data_from_numpy(x)".format(
                  plan["info"]["input_name"]),
              "out = grpcclient.InferRequestedOutput('{}', class_count=3)".format(contract["output"]),
              "print(client.infer('{}', [inp], outputs=[out]).as_numpy('{}'))".format(result.name, contract["output"]),
              "```", ""]
    for text in result.warnings:
        lines.append("Warning: " + text)
    return "\n".join(lines).rstrip() + "\n"
