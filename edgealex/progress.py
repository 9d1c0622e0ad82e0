"""The one progress bar of edgealex (calibration, training, benchmarks, the demo), drawn by tqdm.

A bar is drawn only on an interactive terminal: nothing at all under ``--quiet``, when the
stream is not a TTY (logs, CI, pipes: the per-epoch / per-stage log lines say enough there) or
when tqdm is not installed. tqdm is a core dependency (``tqdm>=4.64.1``; 4.64.1 is its last
release for Python 3.6, JetPack 4.6's Python, see https://pypi.org/project/tqdm/4.64.1/), imported
only when a bar is actually drawn.
"""

import sys

from edgealex.log import is_quiet


def _interactive(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class ProgressBar:
    """Count work items on a tqdm bar: ``label  37%|####      | 74/200 [00:03<00:05, 21.3 img/s]``.

    Args:
        total (float or None): expected amount (items, or seconds with ``unit="s"``); None = unknown.
        label (str): what is being done.
        enabled (bool): False shows nothing. Also off under ``--quiet`` and off a terminal.
        unit (str): unit of the count and the rate. Defaults to "img".
        stream: where to draw. Defaults to sys.stderr.
        leave (bool): keep the finished bar on screen. Defaults to False.
        elapsed_only (bool): show only the label and the elapsed time (work of unknown length,
            e.g. a TensorRT build; call :meth:`refresh` to tick). Defaults to False.

    ``done`` counts updates even when nothing is drawn. Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, total, label, enabled=True, unit="img", stream=None, leave=False, elapsed_only=False):
        self.total = total
        self.label = label
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = bool(enabled) and not is_quiet() and _interactive(self.stream)
        self._bar = None
        if self.enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # a core dependency, but a bar is never worth failing for
                self.enabled = False
            else:
                extra = {"bar_format": "{desc} {elapsed}"} if elapsed_only else {}
                self._bar = tqdm(total=total, desc=label, unit=unit, file=self.stream, leave=leave,
                                 dynamic_ncols=True, mininterval=0.1, smoothing=0.3, **extra)

    def update(self, count=1):
        """Add ``count`` to the done amount."""
        self.done += count
        if self._bar is not None:
            self._bar.update(count)

    def set(self, done):
        """Set the done amount (for a display refreshed from a counter it does not own)."""
        self.done = done
        if self._bar is not None:
            self._bar.n = done
            self._bar.refresh()

    def refresh(self):
        """Redraw now (e.g. to advance the elapsed time)."""
        if self._bar is not None:
            self._bar.refresh()

    def note(self, text):
        """Show ``text`` after the counts (e.g. ``loss 0.412``)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def describe(self, label):
        """Change the label (e.g. warm-up -> measuring)."""
        self.label = label
        if self._bar is not None:
            self._bar.set_description_str(label, refresh=False)

    def reset(self, total=None):
        """Start again from 0 (optionally with a new total), e.g. after a warm-up."""
        self.done = 0
        if total is not None:
            self.total = total
        if self._bar is not None:
            self._bar.reset(total=self.total)

    def write(self, line):
        """Print a line above the bar (or plainly when there is no bar)."""
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.enabled = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
