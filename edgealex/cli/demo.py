"""edgealex demo: the whole pipeline end to end on this machine (the README's main job)."""

from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from edgealex.cli._common import echo, emit_json, user_errors


@user_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for everything the demo makes (reused as a cache).")]
    = Path("edgealex-demo"),
    fast: Annotated[bool, typer.Option(help="Small, quick configuration (tests, CI): tiny data, short training, "
                                            "relaxed INT8 gate.")] = False,
    target: Annotated[Optional[str], typer.Option(help="Target profile (default: detected).")] = None,
    seed: Annotated[int, typer.Option(help="Dataset seed.")] = 0,
    keep_resume: Annotated[bool, typer.Option(help="Keep the training's resume state (model/*.last.pt, ~0.5 GB) "
                                                   "to continue training later.")] = False,
    keep_checkpoint: Annotated[bool, typer.Option(help="Keep the trained PyTorch checkpoint "
                                                       "(model/alexnet-defects.pt, as large as the FP32 ONNX) after "
                                                       "export; without it the ONNX holds the weights.")] = False,
    compact: Annotated[bool, typer.Option(help="Run the pipeline with a compressed model: the trained AlexNet "
                                               "pruned (L1, structured) and fine-tuned by distillation from it; bench "
                                               "its INT8 engine against PyTorch eager FP32 AlexNet (issue 15's target). "
                                               "The AlexNet (the teacher) is read from its exported ONNX unless --keep-checkpoint.")]
    = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
):
    """Synthesize data, train, export, calibrate INT8, build, run the inspection loop, bench and report."""
    from edgealex.demo import run_demo
    from edgealex.log import is_quiet

    if compact:
        from edgealex.demo_compact import run_compact_demo

        result = run_compact_demo(str(out), fast=fast, target=target, seed=seed, progress=not (json_out or is_quiet()),
                                  keep_resume=keep_resume, keep_checkpoint=keep_checkpoint)
    else:
        result = run_demo(str(out), fast=fast, target=target, seed=seed, progress=not (json_out or is_quiet()),
                          keep_resume=keep_resume, keep_checkpoint=keep_checkpoint)
    if json_out:
        emit_json(result.to_dict())
    else:
        echo(result.format())
