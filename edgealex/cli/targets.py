"""edgealex targets: list the device profiles, or show one."""

import typer

from edgealex.cli._common import echo, emit_json, user_errors

from typing_extensions import Annotated  # typing.Annotated needs Python 3.9; JetPack 5 has 3.8

app = typer.Typer(
    help="Device profiles (targets/*.toml): what each board ships and can do.",
    invoke_without_command=True,
    no_args_is_help=False,
)

_COLUMNS = (("name", "NAME"), ("soc", "SOC"), ("arch", "ARCH"), ("dla", "DLA"), ("int8", "INT8"),
            ("jetpack", "JETPACK"), ("tensorrt", "TENSORRT"), ("python", "PY"), ("default", "DEFAULT"),
            ("backend", "BACKEND"), ("title", "TITLE"))


@app.callback(invoke_without_command=True)
@user_errors
def targets(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print the profiles as JSON.")] = False,
):
    """List the target profiles as a table (edgealex targets show NAME for one)."""
    if ctx.invoked_subcommand is not None:
        return
    from edgealex.target import list_targets, summary_row

    targets_list = list_targets()
    if json_out:
        emit_json([t.to_dict() for t in targets_list])
        return
    rows = [summary_row(t) for t in targets_list]
    widths = {key: max(len(title), *(len(str(r[key])) for r in rows)) for key, title in _COLUMNS}
    echo("  ".join(title.ljust(widths[key]) for key, title in _COLUMNS).rstrip())
    for row in rows:
        echo("  ".join(str(row[key]).ljust(widths[key]) for key, _ in _COLUMNS).rstrip())


@app.command("show")
@user_errors
def show(
    name: Annotated[str, typer.Argument(help="Profile name (see `edgealex targets`) or path to a .toml file.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
):
    """Show one target profile with its notes."""
    from edgealex.target import describe, load_target

    target = load_target(name)
    if json_out:
        emit_json(target.to_dict())
        return
    rows = describe(target)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        echo(f"{label.ljust(width)}  {value}")
    if target.notes:
        echo()
        echo("notes:")
        for note in target.notes:
            echo(f"  - {note}")
