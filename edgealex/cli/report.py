"""edgealex report: Markdown + self-contained HTML from benchmark results."""

from pathlib import Path
from typing import List

import typer

from edgealex.cli._common import echo, emit_json, user_errors

from typing_extensions import Annotated  # typing.Annotated needs Python 3.9; JetPack 5 has 3.8


@user_errors
def report(
    results: Annotated[List[Path], typer.Argument(help="Result JSON files (or folders) from `edgealex bench`, and "
                                                   "saved `edgealex run --json` summaries (live loop section).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path("report"),
    title: Annotated[str, typer.Option(help="Page title.")] = "edgealex benchmark report",
    json_out: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
):
    """Render benchmark results as report.md and a self-contained report.html with plots."""
    from edgealex.report import render_report

    result = render_report([str(p) for p in results], str(out), title=title)
    if json_out:
        emit_json(result.to_dict())
        return
    echo(f"{result.runs} run(s) -> {result.html} and {result.markdown}")
    for path, why in result.skipped:
        echo(f"skipped {path}: {why}")
