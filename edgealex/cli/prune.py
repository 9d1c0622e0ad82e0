"""edgealex prune: structured pruning (L1-ranked filters and FC neurons removed), optional fine-tuning."""

from pathlib import Path
from typing import Optional

import typer

from edgealex.cli._common import echo, emit_json, user_errors
from edgealex.log import is_quiet

from typing_extensions import Annotated  # typing.Annotated needs Python 3.9; JetPack 5 has 3.8


@user_errors
def prune(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint to prune (alexnet, alexnet-v1 or alexnet-bn).")],
    keep: Annotated[float, typer.Option(help="Fraction of conv filters and hidden FC neurons kept per layer, (0, 1].")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Pruned checkpoint to write.")] = Path("pruned.pt"),
    multiple_of: Annotated[int, typer.Option(help="Round kept channel counts to this multiple.")] = 8,
    fine_tune_epochs: Annotated[int, typer.Option(help="Fine-tune this many epochs after pruning (needs --data; at the checkpoint's input size).")] = 0,
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Dataset for fine-tuning.")] = None,
    distill: Annotated[bool, typer.Option(help="Fine-tune distilling from the unpruned checkpoint (Hinton loss).")] = False,
    temperature: Annotated[Optional[float], typer.Option(help="With --distill: softmax temperature T of the soft targets (default 4).")] = None,
    alpha: Annotated[Optional[float], typer.Option(help="With --distill: weight of the soft-target loss (default 0.9).")] = None,
    preset: Annotated[str, typer.Option(help="Training recipe for fine-tuning (see `edgealex train`).")] = "demo",
    lr: Annotated[Optional[float], typer.Option(help="Fine-tuning learning rate (default: the preset's).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for fine-tuning.")] = None,
    reuse: Annotated[bool, typer.Option(help="Skip fine-tuning when OUTPUT was fine-tuned identically.")] = False,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
):
    """Remove the lowest-L1 conv filters and FC neurons; the checkpoint records its widths and parent."""
    from edgealex.models.prune import prune as run_prune

    options = {"preset": preset, "lr": lr, "seed": seed, "reuse": reuse, "threads": threads}
    if not (json_out or is_quiet()):
        from edgealex.train.progress import BarProgress

        options["progress"] = BarProgress()
    result = run_prune(str(checkpoint), str(output), keep, multiple_of=multiple_of, fine_tune_epochs=fine_tune_epochs,
                       data=str(data) if data else None, distill=distill, temperature=temperature,
                       alpha=alpha, **options)
    if json_out:
        emit_json(result.to_dict())
        return
    echo(f"pruned {checkpoint} -> {result.path} ({result.arch}, keep {result.keep:g})")
    echo(f"parameters {result.parameters_before:,} -> {result.parameters_after:,} "
         f"({result.parameters_after / result.parameters_before:.1%}); widths conv {result.widths['conv']} fc {result.widths['fc']}")
    if result.fine_tune:
        hold = result.fine_tune.get("holdout_acc")
        echo(f"fine-tuned {fine_tune_epochs} epoch(s): best val accuracy {result.fine_tune['best_val_acc']:.1%}"
             + (f", holdout {hold:.1%}" if hold is not None else "")
             + (f" (reused: {result.path} was fine-tuned identically before)"
                if result.fine_tune.get("reused") else ""))
