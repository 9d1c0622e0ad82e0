"""edgealex train: an AlexNet on an ImageFolder dataset, best checkpoint by validation accuracy."""

from pathlib import Path
from typing import Optional

import typer

from edgealex.cli._common import echo, emit_json, user_errors
from edgealex.log import is_quiet

from typing_extensions import Annotated  # typing.Annotated needs Python 3.9; JetPack 5 has 3.8


@user_errors
def train(
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset: DIR/train/<class>/ (+ val/, holdout/) or DIR/<class>/.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Best checkpoint to write.")] = Path("model.pt"),
    preset: Annotated[str, typer.Option(help="Recipe: demo (2-core CPU, minutes), fast (smoke test), recipe2012 (the paper; GPU).")] = "demo",
    arch: Annotated[Optional[str], typer.Option(help="alexnet (torchvision layout), alexnet-v1 (2012, LRN), alexnet-se, alexnet-dw or alexnet-bn.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs (default: the preset's).")] = None,
    batch: Annotated[Optional[int], typer.Option(help="Images per step.")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="sgd (momentum 0.9) or adam.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate after warm-up.")] = None,
    init: Annotated[Optional[str], typer.Option(help="Weight init: default (PyTorch), normal (N(0, 0.01), 2012) or he (Kaiming; quickest start with SGD).")] = None,
    precision: Annotated[Optional[str], typer.Option(help="auto (bf16 on CPUs with native bf16), fp32 or bf16.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for init, shuffling and augmentation.")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue from a resume state (<output>.last.pt).")] = None,
    reuse: Annotated[bool, typer.Option(help="Skip training when OUTPUT was trained on the same data with the same settings.")] = False,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all).")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu or cuda (default: cuda when available).")] = None,
    warmup_epochs: Annotated[Optional[float], typer.Option(help="Linear LR warm-up over this many epochs (e.g. 5).")] = None,
    dropout: Annotated[Optional[float], typer.Option(help="Classifier dropout probability (e.g. 0.7).")] = None,
    accum_steps: Annotated[Optional[int], typer.Option(help="Gradient accumulation: one optimizer step per N batches.")] = None,
    width_mult: Annotated[Optional[float], typer.Option(help="Slim model: every conv and hidden FC width times this (0-1].")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
):
    """Train an AlexNet classifier on an image folder (such as `edgealex data synth` output) and keep the best checkpoint."""
    from edgealex.train.progress import BarProgress
    from edgealex.train.trainer import train as run_training

    progress = None if (json_out or is_quiet()) else BarProgress()
    result = run_training(
        str(data), str(output), arch=arch, epochs=epochs, batch=batch, optimizer=optimizer, lr=lr, preset=preset,
        resume=str(resume) if resume else None, reuse=reuse, threads=threads, device=device, progress=progress,
        init=init, precision=precision, seed=seed, warmup_epochs=warmup_epochs, dropout=dropout,
        accum_steps=accum_steps, width_mult=width_mult)
    if json_out:
        emit_json(result.to_dict())
        return
    if result.reused:
        echo(f"reused {result.path} (same data hash {result.data_hash[:12]} and settings)")
    echo(f"best val accuracy {result.best_val_acc:.1%} at epoch {result.best_epoch} -> {result.path}")
    if result.holdout_acc is not None:
        echo(f"holdout accuracy {result.holdout_acc:.1%} ({result.counts.get('holdout', 0)} images)")
    if not result.reused:
        echo(f"{result.seconds:.0f} s, {result.train_images_per_s:.0f} img/s ({result.device}, {result.precision}, "
             f"{result.threads} threads); resume state {result.last_path}")
