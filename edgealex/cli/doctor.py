"""edgealex doctor: check this machine before anything else."""

from typing import Optional

import typer

from edgealex.cli._common import echo, emit_json, user_errors

from typing_extensions import Annotated  # typing.Annotated needs Python 3.9; JetPack 5 has 3.8

_COLORS = {"ok": typer.colors.GREEN, "warn": typer.colors.YELLOW, "fail": typer.colors.RED, "skip": None}


@user_errors
def doctor(
    target: Annotated[Optional[str], typer.Option(
        "--target", "-t", help="Check against this profile instead of the detected one.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
):
    """Check Python, TensorRT, CUDA, ONNX Runtime, OpenCV, cameras, power sensors, clocks and disk; exit 1 on a failure."""
    from edgealex.doctor import doctor as run_doctor

    report = run_doctor(target=target)
    if json_out:
        emit_json(report.to_dict())
    else:
        width = max(len(c.name) for c in report.checks)
        echo(f"target: {report.target or 'none'}")
        for check in report.checks:
            tag = typer.style(f"[{check.status:^4}]", fg=_COLORS[check.status])
            echo(f"{tag} {check.name.ljust(width)}  {check.detail}")
            if check.fix and check.status in ("warn", "fail"):
                echo(f"       {''.ljust(width)}  fix: {check.fix}")
        failed = len(report.failed)
        warned = sum(1 for c in report.checks if c.status == "warn")
        echo(f"{failed} failed, {warned} warnings, {len(report.checks)} checks")
    if not report.ok:
        raise typer.Exit(code=1)
