"""What a model is and how to feed it: stored in the ONNX ``metadata_props`` under ``edgealex``.

The same record is copied into the sidecar of every artifact derived from the ONNX (Q/DQ model,
calibration cache, engine), so a Jetson without the ``onnx`` package still knows the labels and
the preprocessing of an engine.
"""

import json
import os
from dataclasses import dataclass, field
from typing import List, Optional

from edgealex._optional import require
from edgealex.artifacts import check_input_file
from edgealex.errors import EdgeAlexError
from edgealex.log import logger
from edgealex.preprocess import Preprocess

METADATA_KEY = "edgealex"
SCHEMA_VERSION = 1
DEFECT_FREE_LABELS = ("ok", "good", "pass", "normal")


@dataclass
class ModelInfo:
    """Identity, labels and preprocessing of a classifier.

    Args:
        arch (str): architecture name, e.g. "alexnet".
        labels (list): class names, index = output position.
        preprocess (Preprocess): input preprocessing.
        input_name (str): ONNX input tensor name. Defaults to "input".
        output_name (str): ONNX output tensor name. Defaults to "logits".
        batch (int or None): static batch size, None for a dynamic batch axis. Defaults to 1.
        opset (int): ONNX opset of the export. Defaults to 0 (unknown).
        provenance (dict): how the model was made (weights hash, versions, ...).
        from_defaults (bool): True when the ONNX carried no edgealex metadata and defaults were used.
    """

    arch: str
    labels: List[str]
    preprocess: Preprocess = field(default_factory=Preprocess)
    input_name: str = "input"
    output_name: str = "logits"
    batch: Optional[int] = 1
    opset: int = 0
    provenance: dict = field(default_factory=dict)
    from_defaults: bool = False

    @property
    def num_classes(self):
        return len(self.labels)

    @property
    def input_shape(self):
        """[N, 3, S, S] with N = batch or "batch" for a dynamic axis."""
        return [self.batch if self.batch else "batch"] + list(self.preprocess.input_shape)

    def defect_classes(self):
        """Every class except the defect-free ones (ok/good/pass/normal)."""
        return [name for name in self.labels if name.lower() not in DEFECT_FREE_LABELS]

    def to_dict(self):
        return {
            "schema": SCHEMA_VERSION,
            "arch": self.arch,
            "num_classes": self.num_classes,
            "labels": list(self.labels),
            "preprocess": self.preprocess.to_dict(),
            "input_name": self.input_name,
            "output_name": self.output_name,
            "batch": self.batch,
            "input_shape": self.input_shape,
            "opset": self.opset,
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data):
        try:
            return cls(
                arch=data["arch"],
                labels=list(data["labels"]),
                preprocess=Preprocess.from_dict(data.get("preprocess", {})),
                input_name=data.get("input_name", "input"),
                output_name=data.get("output_name", "logits"),
                batch=data.get("batch", 1),
                opset=int(data.get("opset", 0)),
                provenance=dict(data.get("provenance", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EdgeAlexError("model metadata", f"the edgealex record is incomplete ({exc})",
                                "export the model again with `edgealex export`")


def attach(model_proto, info):
    """Write ``info`` into an ``onnx.ModelProto``'s metadata_props (replacing an older record)."""
    props = [p for p in model_proto.metadata_props if p.key not in (METADATA_KEY, "labels")]
    del model_proto.metadata_props[:]
    model_proto.metadata_props.extend(props)
    entry = model_proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(info.to_dict(), sort_keys=True)
    labels = model_proto.metadata_props.add()
    labels.key = "labels"
    labels.value = "\n".join(info.labels)
    return model_proto


def check_onnx_path(path, what="ONNX model"):
    """Refuse a path that is a folder or does not exist, before anything reads it (no onnx needed).

    Raises:
        EdgeAlexError: the path is a folder, or no file is there.
    """
    return check_input_file(path, what, "check the path or run `edgealex export`",
                            folder_fix="pass the .onnx file itself")


def load_onnx(path, what="ONNX model"):
    """``onnx.load`` with user-facing errors for a missing or corrupt file."""
    onnx = require("onnx", "reading ONNX models")
    path = check_onnx_path(path, what)
    if os.path.getsize(path) == 0:
        raise EdgeAlexError(path, f"the {what} is an empty file (0 bytes)",
                            "export it again; the copy or the export was interrupted")
    refuse_pytorch_checkpoint(path, "an ONNX model")
    try:
        model = onnx.load(path)
    except Exception as exc:  # protobuf DecodeError and friends
        raise EdgeAlexError(path, f"not a readable ONNX file ({type(exc).__name__})",
                            "export it again; the file may be truncated or not ONNX")
    if not model.graph.node:
        raise EdgeAlexError(path, f"the {what} holds no graph (no nodes)",
                            "export it again; the file may be truncated or not ONNX")
    return model


def model_opset(model):
    """The default-domain ("" / "ai.onnx") opset a loaded ONNX model imports, 0 when it names none."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def refuse_pytorch_checkpoint(path, expected="an ONNX model"):
    """Refuse a PyTorch checkpoint where an ONNX model or an engine is expected, pointing to
    ``edgealex export`` (build, run and bench share this rule).

    Raises:
        EdgeAlexError: ``path`` is a file written by ``torch.save`` (:func:`is_pytorch_checkpoint`).
    """
    if is_pytorch_checkpoint(path):
        raise EdgeAlexError(path, f"is a PyTorch checkpoint, not {expected}",
                            f"export it first: edgealex export --weights {path} -o model.onnx")


def is_pytorch_checkpoint(path):
    """True for a file written by ``torch.save``: a zip archive holding ``<name>/data.pkl`` (PyTorch
    1.6+, https://pytorch.org/docs/stable/notes/serialization.html) or a bare pickle (older
    PyTorch: first byte 0x80, the pickle PROTO opcode)."""
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return any(name.endswith("data.pkl") for name in archive.namelist())
        with open(path, "rb") as handle:
            return handle.read(1) == b"\x80"
    except (OSError, zipfile.BadZipFile):
        return False


def from_model_proto(model, path="model", allow_default=True):
    """Read the edgealex record of a loaded ONNX model.

    Without one, ``allow_default`` builds a record from the graph with default ImageNet
    preprocessing and logs a warning (calibration and runtime then use those defaults);
    otherwise the model is refused.
    """
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            try:
                data = json.loads(prop.value)
            except ValueError:
                raise EdgeAlexError(path, "the edgealex metadata is not valid JSON",
                                    "export the model again with `edgealex export`")
            info = ModelInfo.from_dict(data)
            info.opset = model_opset(model) or info.opset  # the graph's own opset is the truth
            return info
    if not allow_default:
        raise EdgeAlexError(path, "the ONNX carries no edgealex metadata (labels, preprocessing)",
                            "export it with `edgealex export`, or pass a model that has it")
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init_names]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise EdgeAlexError(path, f"expected one image input and one output, found {len(inputs)} and {len(graph.output)}", "export a single-input classifier")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    out_dims = [d.dim_value if d.HasField("dim_value") else None
                for d in graph.output[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != 3 or not dims[2] or dims[2] != dims[3]:
        raise EdgeAlexError(path, f"input shape {dims} is not [N, 3, S, S]",
                            "export an NCHW classifier with a square input")
    classes = out_dims[-1] if out_dims and out_dims[-1] else 0
    spec = Preprocess(input_size=int(dims[2]), resize=max(int(dims[2]) * 256 // 224, int(dims[2])))
    logger.warning("%s has no edgealex metadata: using ImageNet preprocessing (resize %d, crop %d, RGB) "
                   "and labels class_0..class_%d", path, spec.resize, spec.input_size, max(classes - 1, 0))
    return ModelInfo(
        arch="unknown",
        labels=[f"class_{i}" for i in range(classes)],
        preprocess=spec,
        input_name=inputs[0].name,
        output_name=graph.output[0].name,
        batch=dims[0],
        opset=model_opset(model),
        from_defaults=True,
    )


def read_model_info(path, allow_default=True):
    """The :class:`ModelInfo` of an ONNX file (see :func:`from_model_proto`)."""
    return from_model_proto(load_onnx(path), str(path), allow_default=allow_default)
