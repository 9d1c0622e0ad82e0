"""edgealex selftest: prove a board works - doctor, build, run, bench, report into one bundle."""

from pathlib import Path
from typing import List, Optional

import typer

from edgealex.cli._common import echo, emit_json, user_errors

from typing_extensions import Annotated  # typing.Annotated needs Python 3.9; the Nano has 3.6


@user_errors
def selftest(
    model: Annotated[Path, typer.Argument(help="FP32 ONNX from `edgealex export` (labels and preprocessing inside).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for selftest-<board>-<date>/ and its .tar.gz.")] = Path("."),
    source: Annotated[str, typer.Option("--source", "-s", help="Frame source for the run step (see `edgealex run --help`).")] = "synthetic://",
    seconds: Annotated[float, typer.Option(help="Length of the run step, seconds.")] = 10.0,
    calib: Annotated[Optional[Path], typer.Option(help="INT8 calibration (folder from `edgealex calibrate`, a TensorRT cache or images); without it INT8 is skipped.")] = None,
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Target profile. Default: this machine, detected.")] = None,
    bench_seconds: Annotated[float, typer.Option(help="Measured seconds per engine in the bench step.")] = 5.0,
    idle: Annotated[float, typer.Option(help="Idle power window before the bench, seconds (0 = none).")] = 5.0,
    sink: Annotated[Optional[List[str]], typer.Option("--sink", help="Extra sink for the run step (repeatable), e.g. an MQTT broker.")] = None,
    power: Annotated[str, typer.Option(help="Power reader for the bench step: auto picks the best one found.")] = "auto",
    archive: Annotated[bool, typer.Option("--archive/--no-archive", help="Also write <bundle>.tar.gz.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
):
    """Exercise every device path this board supports and write one bundle to attach to bug reports."""
    from edgealex.selftest import run_selftest

    result = run_selftest(str(model), out_dir=str(out), source=source, seconds=seconds,
                          calib=str(calib) if calib else None, target=target, bench_seconds=bench_seconds,
                          idle_s=idle, sinks=list(sink or []), power=power, archive=archive)
    if json_out:
        emit_json(result.to_dict())
    else:
        echo(result.format())
    if result.bundle_error is not None:  # the steps ran and are shown above; the bundle could not be finished
        raise result.bundle_error
    if not result.ok:
        raise typer.Exit(code=1)
