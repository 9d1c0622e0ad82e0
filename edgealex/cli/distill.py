"""edgealex distill: train a student from a teacher's softened logits (Hinton loss) through the trainer."""

from pathlib import Path
from typing import Optional

import typer

from edgealex.cli._common import echo, emit_json, user_errors
from edgealex.log import is_quiet

from typing_extensions import Annotated  # typing.Annotated needs Python 3.9; JetPack 5 has 3.8


@user_errors
def distill(
    teacher: Annotated[Path, typer.Option(help="Teacher checkpoint (trained on the same classes).")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset: DIR/train/<class>/ (+ val/, holdout/) or DIR/<class>/.")],
    arch: Annotated[str, typer.Option(help="Student arch: alexnet, alexnet-v1, alexnet-se, alexnet-dw, alexnet-bn.")] = "alexnet",
    width_mult: Annotated[Optional[float], typer.Option(help="Slim student: every conv and hidden FC width times this (0-1].")] = None,
    temperature: Annotated[float, typer.Option(help="Softmax temperature T of the soft targets.")] = 4.0,
    alpha: Annotated[float, typer.Option(help="Weight of the soft-target loss (the label loss gets 1 - alpha).")] = 0.9,
    output: Annotated[Path, typer.Option("--output", "-o", help="Student checkpoint to write.")] = Path("student.pt"),
    preset: Annotated[str, typer.Option(help="Recipe (see `edgealex train`).")] = "demo",
    epochs: Annotated[Optional[int], typer.Option(help="Epochs (default: the preset's).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for init, shuffling and augmentation.")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue from a resume state (<output>.last.pt).")] = None,
    reuse: Annotated[bool, typer.Option(help="Skip when OUTPUT was distilled on the same data, teacher and settings.")] = False,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
):
    """Distil a teacher into a (smaller) student: alpha*T^2*KL(soft targets) + (1-alpha)*cross-entropy."""
    from edgealex.train.distill import distill as run_distill

    progress = None
    if not (json_out or is_quiet()):
        from edgealex.train.progress import BarProgress

        progress = BarProgress()
    result = run_distill(str(teacher), str(data), str(output), arch=arch, width_mult=width_mult,
                         temperature=temperature, alpha=alpha, preset=preset, epochs=epochs, lr=lr, seed=seed,
                         resume=str(resume) if resume else None, reuse=reuse, threads=threads, progress=progress)
    if json_out:
        emit_json(result.to_dict())
        return
    if result.reused:
        echo(f"reused {result.path} (same data, teacher and settings)")
    echo(f"student best val accuracy {result.best_val_acc:.1%} at epoch {result.best_epoch} -> {result.path}")
    if result.holdout_acc is not None:
        echo(f"holdout accuracy {result.holdout_acc:.1%} ({result.counts.get('holdout', 0)} images)")
