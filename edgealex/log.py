"""One logger for the package. ``--verbose``/``--quiet`` on the CLI set its level."""

import logging
import sys

logger = logging.getLogger("edgealex")


def configure(verbose=False, quiet=False):
    """Send edgealex log records to stderr with [I]/[W]/[E] prefixes."""
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    logger.setLevel(level)
    if not any(getattr(h, "_edgealex", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_Formatter())
        handler._edgealex = True
        logger.addHandler(handler)
    logger.propagate = False


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test runners and redirections swap it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the property always follows sys.stderr
        pass


def is_quiet():
    return logger.getEffectiveLevel() > logging.INFO


class _Formatter(logging.Formatter):
    _PREFIX = {logging.DEBUG: "[V]", logging.INFO: "[I]", logging.WARNING: "[W]", logging.ERROR: "[E]"}

    def format(self, record):
        return "{} {}".format(self._PREFIX.get(record.levelno, "[?]"), record.getMessage())
