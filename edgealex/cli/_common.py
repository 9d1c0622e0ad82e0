"""What every command shares: the user-error boundary and JSON/human output."""

import functools
import json
import sys

import typer

from edgealex.errors import EdgeAlexError


def report_user_error(err):
    typer.secho(err.format(), fg=typer.colors.RED, err=True)


def user_errors(func):
    """Turn an EdgeAlexError into a red 'subject | what.\\nNote: fix' on stderr and exit code 1.

    Any other exception is a bug and keeps its traceback.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except EdgeAlexError as err:
            report_user_error(err)
            raise typer.Exit(code=1)

    return wrapper


def workstation_only(command, func):
    """Wrap a workstation command so that an older Python is refused in one line before it runs
    (the check is :func:`edgealex._sides.check_workstation_python`)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from edgealex._sides import check_workstation_python

        try:
            check_workstation_python(command)
        except EdgeAlexError as err:
            report_user_error(err)
            raise typer.Exit(code=1)
        return func(*args, **kwargs)

    return wrapper


def emit_json(obj):
    """Machine-readable output on stdout (one JSON document)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=_default) + "\n")


def _default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def echo(text=""):
    typer.echo(text)
