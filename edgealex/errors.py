"""The one user-facing error type.

Anything a user can fix (bad path, wrong flag, missing extra, unsupported board feature) is raised
as :class:`EdgeAlexError`. The CLI prints it as::

    <subject> | <what happened>.
    Note: <how to fix>

in red on stderr and exits with code 1, without a traceback. Every other exception is a bug and
keeps its traceback.
"""


class EdgeAlexError(Exception):
    """A problem the user can fix.

    Args:
        subject (str): what the problem is about (a file, an option, a component).
        what (str): what happened, one sentence.
        note (str): how to fix it. Defaults to "".
    """

    def __init__(self, subject, what, note=""):
        self.subject = str(subject)
        self.what = str(what).rstrip(".")
        self.note = str(note)
        super().__init__(self.format())

    def format(self):
        text = f"{self.subject} | {self.what}."
        if self.note:
            text += "\nNote: " + self.note
        return text


class GateFailed(EdgeAlexError):
    """A measured quality gate (e.g. INT8 agreement) was not met; the artifacts are kept for inspection."""


class WriteFailed(EdgeAlexError):
    """The storage refused a write (disk full, quota, read-only, I/O error); ``os_error`` is the
    OSError. Made by :func:`edgealex.artifacts.disk_error`, the one place that words it."""

    def __init__(self, subject, what, note="", os_error=None):
        self.os_error = os_error
        super().__init__(subject, what, note)
