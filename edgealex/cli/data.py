"""edgealex data: datasets for training and calibration (``edgealex data synth``)."""

from pathlib import Path
from typing import Optional

import typer

from edgealex.cli._common import echo, emit_json, user_errors

from typing_extensions import Annotated  # typing.Annotated needs Python 3.9; JetPack 5 has 3.8

app = typer.Typer(help="Datasets: synthetic defect images for the demo and tests.", no_args_is_help=True)


@app.command()
@user_errors
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to create.")] = Path("data/defects"),
    per_class: Annotated[int, typer.Option(help="Images per class over all splits.")] = 400,
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = 256,
    seed: Annotated[int, typer.Option(help="Dataset seed (same seed, same images).")] = 0,
    splits: Annotated[str, typer.Option(help="Fractions train,val,calib,holdout.")] = "0.7,0.1,0.1,0.1",
    force: Annotated[bool, typer.Option(help="Replace a non-empty folder that holds something else.")] = False,
    workers: Annotated[Optional[int], typer.Option(help="Rendering processes (default: up to 2).")] = None,
    difficulty: Annotated[str, typer.Option(help="normal, or hard: smaller, fainter, more confusable defects (for comparing models).")] = "normal",
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
):
    """Render procedural surface-defect images (ok, scratch, stain, crack, hole) in ImageFolder splits.

    An identical existing dataset (same seed, sizes and generator version) is reused as is.
    """
    from edgealex.synth.dataset import parse_splits, synthesize

    result = synthesize(str(out), per_class=per_class, size=size, seed=seed, splits=parse_splits(splits),
                        force=force, workers=workers, difficulty=difficulty)
    if json_out:
        emit_json(result.to_dict())
        return
    verb = "reused" if result.reused else f"wrote in {result.seconds:.1f} s"
    echo(f"{verb}: {result.total} images ({size}x{size}) in {result.out_dir}")
    for split, counts in result.counts.items():
        echo("  {:<8} {:>5}  ({})".format(split, sum(counts.values()),
                                          ", ".join(f"{k} {v}" for k, v in counts.items())))
    echo(f"labels {', '.join(result.labels)}   data_hash {result.data_hash[:16]}")
