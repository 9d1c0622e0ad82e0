"""edgealex dla-check: predict which layers run on the DLA before building."""

from pathlib import Path
from typing import Optional

import typer

from edgealex.cli._common import echo, emit_json, user_errors

from typing_extensions import Annotated  # typing.Annotated needs Python 3.9; JetPack 5 has 3.8

_COLORS = {"dla": typer.colors.GREEN, "gpu": typer.colors.RED, "unknown": typer.colors.YELLOW, "none": None}


@user_errors
def dla_check(
    model: Annotated[Path, typer.Argument(help="ONNX model (e.g. from edgealex export).")],
    target: Annotated[Optional[str], typer.Option(
        "--target", "-t", help="Target with DLA (agx-xavier, xavier-nx, orin-nx-8gb, orin-nx-16gb, agx-orin) "
                               "or a .toml profile. Default: this machine.")] = None,
    precision: Annotated[Optional[str], typer.Option(help="fp16 or int8 (default: the target's).")] = None,
    dla_core: Annotated[int, typer.Option(help="DLA core for the TensorRT cross-check.")] = 0,
    strict: Annotated[bool, typer.Option(
        help="Exit 1 unless every layer is predicted on DLA (GPU fallbacks AND unknowns fail).")] = False,
    tensorrt: Annotated[bool, typer.Option(
        "--tensorrt/--no-tensorrt", help="Also ask TensorRT (can_run_on_DLA) where it imports.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
):
    """PREDICT per ONNX node whether TensorRT places it on the DLA or falls back to the GPU, and why."""
    from edgealex.dla import dla_check as run_check
    from edgealex.target import resolve_target

    report = run_check(str(model), resolve_target(target), precision, dla_core=dla_core, use_tensorrt=tensorrt)
    if json_out:
        emit_json(report.to_dict())
    else:
        echo(f"DLA placement PREDICTION for {report.model} on {report.title} ({report.target}, {report.dla_cores} "
             f"DLA cores), {report.precision}, TensorRT {report.tensorrt} rules [{report.rules_source}]")
        echo("This is not a build: it applies the documented DLA layer limits; 'unknown' means NVIDIA's documentation does not say.")
        width = max([len(n.name) for n in report.nodes] + [4])
        echo(f"{'#':>3}  {'NODE'.ljust(width)}  {'OP'.ljust(18)}  {'DEVICE':7}  REASON")
        for node in report.nodes:
            device = typer.style(node.device.ljust(7), fg=_COLORS[node.device])
            echo(f"{node.index:>3}  {node.name.ljust(width)}  {node.op_type.ljust(18)}  {device}  "
                 + "; ".join(node.reasons))
        counts = report.counts
        echo(f"layers: {counts['dla']} dla, {counts['gpu']} gpu, {counts['unknown']} unknown ({counts['none']} "
             "without a layer)")
        echo(f"DLA subgraphs: {report.dla_subgraphs} (with unknown on DLA: {report.dla_subgraphs_if_unknown_on_dla}); "
             f"GPU<->DLA transitions: {report.transitions} (with unknown on DLA: "
             f"{report.transitions_if_unknown_on_dla}); limit {report.loadables_per_core} loadables per DLA core")
        for warning in report.warnings:
            typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW)
        for caveat in report.caveats:
            echo(f"caveat: {caveat}")
        check = report.tensorrt_check or {}
        if "skipped" in check:
            echo(f"TensorRT cross-check skipped: {check['skipped']}")
        elif check:
            echo(f"TensorRT {check['tensorrt']} can_run_on_DLA: agrees on {check['agree']} node(s), disagrees on "
                 f"{len(check['disagree'])}, decides {len(check['resolved'])} unknown(s)")
            for entry in check["disagree"]:
                typer.secho(f"  DISAGREE {entry['node']} ({entry['op_type']}): predicted {entry['predicted']}, "
                            f"TensorRT {entry['tensorrt']} [{', '.join(entry['layers'])}]", fg=typer.colors.RED)
            for entry in check["resolved"]:
                echo(f"  resolved {entry['node']} ({entry['op_type']}): TensorRT says {entry['tensorrt']}")
        echo(report.verdict)
    if strict and not report.fully_on_dla:
        typer.secho("--strict: not every layer is predicted to run on DLA", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)
