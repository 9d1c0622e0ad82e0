"""edgealex export: PyTorch -> ONNX with preprocessing metadata and a parity check."""

from pathlib import Path
from typing import Optional

import typer

from edgealex.cli._common import echo, emit_json, user_errors

from typing_extensions import Annotated  # typing.Annotated needs Python 3.9; JetPack 5 has 3.8


@user_errors
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="ONNX file to write.")] = Path("model.onnx"),
    arch: Annotated[Optional[str], typer.Option(help="alexnet (torchvision layout), alexnet-v1 (2012, LRN), alexnet-se, alexnet-dw, alexnet-bn. Default: the checkpoint's, else alexnet.")] = None,
    weights: Annotated[Optional[Path], typer.Option(
        help="torchvision state_dict or edgealex checkpoint (loaded with weights_only=True). "
             "Default: random init.")] = None,
    labels: Annotated[Optional[Path], typer.Option(help="Labels file, one class per line.")] = None,
    num_classes: Annotated[Optional[int], typer.Option(help="Number of classes (default: labels, checkpoint or 1000).")] = None,
    new_head: Annotated[bool, typer.Option(help="Replace a checkpoint head of another size (e.g. ImageNet 1000) with a fresh one.")] = False,
    input_size: Annotated[Optional[int], typer.Option(help="Input side in pixels (63 or more). Default: the "
                                                          "checkpoint's training size, else 224.")] = None,
    interpolation: Annotated[str, typer.Option(help="Resize of the preprocessing: auto (pil-bilinear for torchvision "
                                                    "weights, else linear), pil-bilinear (torchvision's Resize + "
                                                    "CenterCrop), linear, area, nearest or cubic.")] = "auto",
    batch: Annotated[int, typer.Option(help="Static batch size (DLA needs static shapes).")] = 1,
    dynamic_batch: Annotated[bool, typer.Option(help="Dynamic batch axis instead of a static one (not for DLA).")] = False,
    opset: Annotated[int, typer.Option(help="ONNX opset. 13 is the newest TensorRT 8.2 (Jetson Nano) parses.")] = 13,
    simplify: Annotated[bool, typer.Option(help="Simplify the graph with onnxslim, parity re-checked.")] = False,
    no_lrn: Annotated[bool, typer.Option("--no-lrn", help="alexnet-v1 without LRN layers.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for random init and parity inputs.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
):
    """Export an AlexNet to ONNX (default 224x224, opset 13), check it and compare with PyTorch."""
    from edgealex.export.onnx import export_onnx, read_labels

    result = export_onnx(
        str(output), arch=arch, weights=str(weights) if weights else None,
        labels=read_labels(labels) if labels else None, num_classes=num_classes, new_head=new_head,
        input_size=input_size, batch=batch, dynamic_batch=dynamic_batch, opset=opset, simplify=simplify,
        seed=seed, lrn=not no_lrn, interpolation=None if interpolation == "auto" else interpolation,
    )
    if json_out:
        emit_json(result.to_dict())
        return
    echo(f"wrote {result.path} ({result.info.arch}, {result.info.num_classes} classes, input {result.info.input_shape}, opset {result.info.opset})")
    echo(f"parity vs PyTorch on {result.parity_samples} inputs: max abs diff {result.max_abs_diff:.2e} (limit 1e-4), top-1 agreement {result.top1_agreement:.0%}")
    echo(f"sha256 {result.sha256[:16]}  provenance {result.sidecar}")
