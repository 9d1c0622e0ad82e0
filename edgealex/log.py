"""One logger for the package. ``--verbose``/``--quiet`` on the CLI set its level."""

import logging
import sys

logger = logging.getLogger("edgealex")


def configure(verbose=False, quiet=False):
    """Send edgealex log records to stderr with [I]/[W]/[E] prefixes."""
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    logger.setLevel(level)
    if not any(getattr(h, "_edgealex", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Formatter())
        handler._edgealex = True
        logger.addHandler(handler)
    logger.propagate = False


def is_quiet():
    return logger.getEffectiveLevel() > logging.INFO


class _Formatter(logging.Formatter):
    _PREFIX = {logging.DEBUG: "[V]", logging.INFO: "[I]", logging.WARNING: "[W]", logging.ERROR: "[E]"}

    def format(self, record):
        return "{} {}".format(self._PREFIX.get(record.levelno, "[?]"), record.getMessage())
