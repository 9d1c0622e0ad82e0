"""What every command shares: the user-error boundary and JSON/human output."""

import functools
import json
import signal
import sys
import threading

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


def _sigterm_handler(signum, frame):
    raise KeyboardInterrupt()


def sigterm_as_interrupt():
    """Make SIGTERM (systemd stop, ``docker stop``, ``kill``) raise KeyboardInterrupt, like Ctrl-C.

    Installed once at the CLI's entry, so every long command (run, bench, calibrate, train, demo,
    data synth) gets the clean-up it already does for Ctrl-C: status files finished, staging and
    temporary folders removed, logs closed. Returns the previous handler (None when it could not
    be installed: not the main thread, or SIGTERM ignored on purpose by the parent).
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
            return None
        return signal.signal(signal.SIGTERM, _sigterm_handler)
    except (ValueError, OSError):
        return None
