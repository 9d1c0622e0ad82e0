"""The ``edgealex`` command: a Typer app assembled from one module per command.

Command modules import only typer and edgealex's light modules at import time, so ``edgealex
--help`` and every ``edgealex <command> --help`` work with only the core installed.
"""

import importlib

import typer

from edgealex import __version__
from edgealex._sides import WORKSTATION_COMMANDS
from edgealex.cli._common import workstation_only
from edgealex.interrupts import sigterm_as_interrupt
from edgealex.log import configure

# (name, module, attribute, kind): kind "command" is a function, "group" a typer.Typer sub-app.
COMMANDS = (
    ("export", "edgealex.cli.export", "export", "command"),
    ("calibrate", "edgealex.cli.calibrate", "calibrate", "command"),
    ("build", "edgealex.cli.build", "build", "command"),
    ("run", "edgealex.cli.run", "run", "command"),
    ("bench", "edgealex.cli.bench", "bench", "command"),
    ("report", "edgealex.cli.report", "report", "command"),
    ("targets", "edgealex.cli.targets", "app", "group"),
    ("doctor", "edgealex.cli.doctor", "doctor", "command"),
    ("dla-check", "edgealex.cli.dla_check", "dla_check", "command"),
    ("selftest", "edgealex.cli.selftest", "selftest", "command"),
    ("data", "edgealex.cli.data", "app", "group"),
    ("train", "edgealex.cli.train", "train", "command"),
    ("prune", "edgealex.cli.prune", "prune", "command"),
    ("distill", "edgealex.cli.distill", "distill", "command"),
    ("demo", "edgealex.cli.demo", "demo", "command"),
    ("deploy", "edgealex.cli.deploy", "app", "group"),
)

app = typer.Typer(
    name="edgealex",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="AlexNet-class classifiers from PyTorch to measured deployments on Jetson, desktop GPUs and CPUs.\n\n"
         "Pipeline: export -> calibrate -> build -> run -> bench -> report.",
)


def _version(value):
    if value:
        typer.echo(f"edgealex {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug messages."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    configure(verbose=verbose, quiet=quiet)


def _register():
    for name, module_name, attribute, kind in COMMANDS:
        target = getattr(importlib.import_module(module_name), attribute)
        if name in WORKSTATION_COMMANDS:  # refuse an old Python in one line (edgealex._sides)
            target = workstation_only(name, target)
        if kind == "group":
            app.add_typer(target, name=name)
        else:
            app.command(name=name, help=(target.__doc__ or "").strip() or None)(target)


_register()


def main():
    configure()
    sigterm_as_interrupt()  # every long command treats SIGTERM as Ctrl-C
    app(prog_name="edgealex")


if __name__ == "__main__":
    main()
