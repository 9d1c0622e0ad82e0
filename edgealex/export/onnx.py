"""PyTorch -> ONNX with preprocessing metadata and an ONNX Runtime parity check.

Default opset 13: TensorRT 8.2 (Jetson Nano, JetPack 4.6.x) ships onnx-tensorrt 8.2, which parses
opsets 7-13; every newer TensorRT also reads opset 13. The IR version is set to 7 (ONNX 1.8), the
newest one that TensorRT 8.2's bundled protobuf schema knows.
"""

import dataclasses
import os
import time
from dataclasses import dataclass, field

from edgealex._optional import require
from edgealex.artifacts import atomic_path, environment_summary, sha256_file, sidecar_path, write_json_atomic
from edgealex.errors import EdgeAlexError
from edgealex.log import logger
from edgealex.modelinfo import ModelInfo, attach
from edgealex.models.alexnet import (build_model, check_arch, check_input_size, check_num_classes, export_module,
                                     head_classes, load_checkpoint, load_weights, parameter_count)
from edgealex.preprocess import INTERPOLATIONS, TORCHVISION_INTERPOLATION, Preprocess

DEFAULT_OPSET = 13
IR_VERSION = 7
MAX_ABS_DIFF_FP32 = 1e-4
PARITY_SAMPLES = 4


@dataclass
class ExportResult:
    path: str
    info: ModelInfo
    sha256: str
    max_abs_diff: float
    top1_agreement: float
    parity_samples: int
    seconds: float
    simplified: bool = False
    sidecar: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self):
        return {
            "path": self.path, "sha256": self.sha256, "arch": self.info.arch,
            "num_classes": self.info.num_classes, "input_shape": self.info.input_shape,
            "opset": self.info.opset, "max_abs_diff": self.max_abs_diff,
            "top1_agreement": self.top1_agreement, "parity_samples": self.parity_samples,
            "seconds": round(self.seconds, 3), "simplified": self.simplified, "sidecar": self.sidecar,
        }


def read_labels(path):
    """Class names from a labels file, one per line (blank lines ignored)."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            labels = [line.strip() for line in handle if line.strip()]
    except OSError as exc:
        raise EdgeAlexError(path, f"cannot read the labels file ({exc.strerror or exc})",
                            "pass a text file with one class name per line")
    if len(labels) < 2:
        raise EdgeAlexError(path, f"the labels file lists {len(labels)} class(es)",
                            "list at least 2 class names, one per line")
    if len(set(labels)) != len(labels):
        raise EdgeAlexError(path, "the labels file repeats a class name", "make every line unique")
    return labels


def _resolve_labels(labels, num_classes, checkpoint):
    if labels is None and checkpoint and checkpoint.get("labels"):
        labels = list(checkpoint["labels"])
    if labels is not None:
        if num_classes is not None and num_classes != len(labels):
            raise EdgeAlexError(f"--num-classes {num_classes}",
                                f"the labels list {len(labels)} classes",
                                "drop --num-classes or make it match the labels")
        return list(labels)
    if num_classes is None:
        head = head_classes(checkpoint["state_dict"]) if checkpoint else None
        num_classes = head or 1000
    check_num_classes(num_classes)  # before range() turns -1 into 0 labels
    return [f"class_{i}" for i in range(num_classes)]


def export_onnx(output, arch=None, weights=None, labels=None, num_classes=None, new_head=False,
                input_size=None, resize=None, batch=1, dynamic_batch=False, opset=DEFAULT_OPSET,
                simplify=False, seed=0, lrn=True, parity_samples=PARITY_SAMPLES, preprocess=None,
                model=None, interpolation=None):
    """Export an AlexNet to ONNX, check it, and write it atomically with a provenance sidecar.

    Args:
        output (str): the .onnx path to write.
        arch (str): one of ``edgealex.models.alexnet.ARCHS``. Defaults to the checkpoint's, else "alexnet".
        weights (str): a torchvision state_dict or an edgealex checkpoint. Defaults to None
            (random init with ``seed``).
        labels (list): class names. Defaults to the checkpoint's, else class_0..class_{N-1}.
        num_classes (int): outputs; must agree with ``labels``. Defaults to the checkpoint head or 1000.
        new_head (bool): replace a checkpoint head of another size with a fresh one. Defaults to False.
        input_size (int): input side in pixels. Defaults to the checkpoint's training size, else 224; a
            different size than the checkpoint's is refused (EdgeAlexError).
        resize (int): short side before the centre crop. Defaults to input_size * 256 / 224.
        batch (int): static batch. Defaults to 1 (DLA needs static shapes).
        dynamic_batch (bool): make the batch axis dynamic instead. Defaults to False.
        opset (int): ONNX opset. Defaults to 13 (TensorRT 8.2 parses 7-13).
        simplify (bool): run onnxslim on the graph, then re-check parity. Defaults to False.
        seed (int): seed for random init and parity inputs. Defaults to 0.
        lrn (bool): LRN layers in alexnet-v1. Defaults to True.
        parity_samples (int): random inputs for the ONNX Runtime vs PyTorch check. Defaults to 4.
        preprocess (Preprocess): overrides input_size/resize. Defaults to None.
        model (torch.nn.Module): an already built model (training hands it over). Defaults to None.
        interpolation (str or None): the preprocessing resize (see :class:`Preprocess`). Defaults
            to None: an edgealex checkpoint's own, "pil-bilinear" for a plain state_dict of the
            torchvision layout (``alexnet``: the resize those weights were trained with), else "linear".

    Returns:
        ExportResult
    """
    torch = require("torch", "edgealex export")
    onnx = require("onnx", "edgealex export")
    started = time.time()
    output = str(output)
    if not output.endswith(".onnx"):
        raise EdgeAlexError(output, "the output must be an .onnx file", "pass -o model.onnx")
    if os.path.isdir(output):
        raise EdgeAlexError(output, "the output path is a directory", "pass -o path/to/model.onnx")
    if arch is not None:
        check_arch(arch)
    explicit_size = input_size is not None
    input_size = 224 if input_size is None else input_size
    if preprocess is None:
        check_input_size(input_size)
    if batch < 1:
        raise EdgeAlexError(f"--batch {batch}", "batch must be >= 1", "pass --batch 1 (DLA needs static shapes)")
    if dynamic_batch and batch != 1:
        raise EdgeAlexError(f"--batch {batch}", "a static batch and --dynamic-batch were both given",
                            "pass --batch N for a static batch (DLA) or --dynamic-batch alone (the batch range "
                            "is chosen at build: edgealex build --max-batch N)")
    if not 7 <= opset <= 21:
        raise EdgeAlexError(f"--opset {opset}", "opset out of the supported range 7-21",
                            "use 13 for TensorRT 8.2 (Jetson Nano) and newer, 17 for TensorRT 8.6+")
    spec = preprocess or Preprocess(input_size=input_size,
                                    resize=resize if resize is not None else max(input_size * 256 // 224, input_size))

    checkpoint = load_checkpoint(weights) if weights else None
    if model is not None and arch is None:
        arch = getattr(model, "arch", None)
    if arch is None:
        arch = (checkpoint or {}).get("arch") or "alexnet"
    if checkpoint and checkpoint.get("arch") and checkpoint["arch"] != arch:
        raise EdgeAlexError(str(weights), "the checkpoint is a {} model, not {}".format(checkpoint["arch"], arch),
                            "pass --arch {}".format(checkpoint["arch"]))
    if checkpoint and checkpoint.get("preprocess") and preprocess is None:
        spec = Preprocess.from_dict(checkpoint["preprocess"])
        if explicit_size and input_size != spec.input_size:
            raise EdgeAlexError(f"--input-size {input_size}", f"the checkpoint was trained on {spec.input_size} px "
                                f"inputs (its preprocessing travels into the ONNX), so {input_size} px would feed "
                                "the model images it never saw", f"leave --input-size out (it is {spec.input_size}), "
                                f"or train at {input_size} px")
    elif checkpoint and arch == "alexnet" and preprocess is None and interpolation is None:
        # torchvision-layout weights saw torchvision's Resize + CenterCrop on PIL images
        interpolation = TORCHVISION_INTERPOLATION
    if interpolation is not None:
        if interpolation not in INTERPOLATIONS:
            raise EdgeAlexError("--interpolation", f"unknown value {interpolation!r}",
                                "use auto, {}".format(", ".join(
                                    sorted(INTERPOLATIONS, key=lambda name: name != TORCHVISION_INTERPOLATION))))
        spec = dataclasses.replace(spec, interpolation=interpolation, _cache={})
    check_input_size(spec.input_size)
    from edgealex.build.plan import check_batch_fits

    check_batch_fits("--batch", batch, spec.input_shape)
    labels = _resolve_labels(labels, num_classes, checkpoint)
    handed_over = model is not None  # its weights are the caller's: not a random init
    if model is None:
        # a pruned checkpoint carries its own widths (edgealex prune)
        model = build_model(arch, num_classes=len(labels), lrn=lrn, seed=seed,
                            widths=checkpoint.get("widths") if checkpoint else None)
        if checkpoint:
            load_weights(model, checkpoint["state_dict"], source=str(weights), new_head=new_head)
    model.eval()

    provenance = environment_summary()
    provenance.update({
        "stage": "export",
        "torch_version": torch.__version__.split("+")[0],
        "onnx_version": onnx.__version__,
        "weights": os.path.abspath(str(weights)) if weights else None,
        "weights_sha256": sha256_file(weights) if weights else None,
        "init": None if weights or handed_over else f"random (seed {seed})",
        "lrn": bool(lrn) if arch == "alexnet-v1" else None,
        "widths": getattr(model, "widths", None),
        "parameters": parameter_count(model),
        "parent_checkpoint": (checkpoint or {}).get("parent"),
    })
    info = ModelInfo(arch=arch, labels=labels, preprocess=spec, batch=None if dynamic_batch else batch,
                     opset=opset, provenance=provenance)

    generator = torch.Generator().manual_seed(seed)
    shape = (batch,) + spec.input_shape
    example = torch.randn(*shape, generator=generator)
    with atomic_path(output, "ONNX model") as tmp:
        _torch_export(torch, export_module(model, spec.input_size), example, tmp, opset, dynamic_batch)
        proto = onnx.load(tmp)
        proto.ir_version = min(proto.ir_version, IR_VERSION)
        attach(proto, info)
        try:
            onnx.checker.check_model(proto)
        except Exception as exc:
            raise EdgeAlexError(output, f"the exported graph fails onnx.checker ({str(exc)[:300]})",
                                "report this with the command line; try another --opset")
        simplified = False
        if simplify:
            proto = _simplify(proto)
            simplified = True
        onnx.save(proto, tmp)
        max_diff, agreement = parity_check(model, tmp, spec, batch, parity_samples, seed, info)
        if max_diff > MAX_ABS_DIFF_FP32 or agreement < 1.0:
            raise EdgeAlexError(output, f"ONNX Runtime disagrees with PyTorch (max abs diff {max_diff:.3g}, top-1 agreement "
                                f"{agreement:.1%}); nothing was written",
                                "try another --opset or export without --simplify")
    digest = sha256_file(output)
    sidecar = write_json_atomic(sidecar_path(output), {
        "artifact": "onnx", "path": os.path.abspath(output), "sha256": digest, "model": info.to_dict(),
        "parity": {"max_abs_diff": max_diff, "top1_agreement": agreement, "samples": parity_samples,
                   "threshold_max_abs_diff": MAX_ABS_DIFF_FP32},
        "simplified": simplified,
    })
    result = ExportResult(path=output, info=info, sha256=digest, max_abs_diff=max_diff, top1_agreement=agreement,
                          parity_samples=parity_samples, seconds=time.time() - started, simplified=simplified,
                          sidecar=sidecar)
    logger.info("exported %s (%s, %d classes, opset %d): max abs diff %.2e, top-1 agreement %.0f%% on %d inputs",
                output, arch, len(labels), opset, max_diff, agreement * 100, parity_samples)
    return result


def _torch_export(torch, model, example, path, opset, dynamic_batch):
    kwargs = dict(input_names=["input"], output_names=["logits"], opset_version=opset, do_constant_folding=True)
    if dynamic_batch:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "logits": {0: "batch"}}
    try:
        # The TorchScript-based exporter: emits the plain Conv/Relu/MaxPool/Gemm graph TensorRT 8.x parses.
        torch.onnx.export(model, (example,), path, dynamo=False, **kwargs)
    except TypeError:  # torch < 2.5 has no ``dynamo`` argument
        torch.onnx.export(model, (example,), path, **kwargs)


def _simplify(proto):
    onnxslim = require("onnxslim", "edgealex export --simplify")
    try:
        return onnxslim.slim(proto)
    except Exception as exc:
        raise EdgeAlexError("--simplify", f"onnxslim failed ({str(exc)[:200]})", "export without --simplify")


def parity_check(model, onnx_path, spec, batch, samples, seed, info):
    """Max |ONNX Runtime - PyTorch| over ``samples`` random batches and their top-1 agreement."""
    torch = require("torch")
    np = require("numpy")
    ort = require("onnxruntime", "the export parity check")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed + 1)
    max_diff, agree, total = 0.0, 0, 0
    with torch.no_grad():
        for _ in range(samples):
            x = torch.randn((batch,) + spec.input_shape, generator=generator)
            expected = model(x).numpy()
            got = session.run([info.output_name], {info.input_name: x.numpy()})[0]
            max_diff = max(max_diff, float(np.max(np.abs(got - expected))))
            agree += int(np.sum(np.argmax(got, axis=1) == np.argmax(expected, axis=1)))
            total += batch
    return max_diff, agree / float(total)
