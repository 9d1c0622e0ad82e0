"""A minimal progress bar on stderr (no dependency): redrawn in place on a terminal, a few log
lines otherwise, nothing when disabled or when the log is quiet."""

import sys
import time

from edgealex.log import is_quiet


class Progress:
    """Count work items and show ``label  n/total [====    ] rate/s``.

    Args:
        total (int): expected number of items.
        label (str): what is being counted.
        enabled (bool): False shows nothing. Also off when ``--quiet``.
        unit (str): unit name for the rate. Defaults to "img".
        stream: where to draw. Defaults to sys.stderr.
    """

    WIDTH = 28

    def __init__(self, total, label, enabled=True, unit="img", stream=None):
        self.total = max(int(total), 0)
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = bool(enabled) and not is_quiet() and self.total > 0
        self.done = 0
        self.started = time.perf_counter()
        self._last_draw = 0.0
        self._next_line_pct = 25
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, count=1):
        self.done += count
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._tty:
            if now - self._last_draw >= 0.1 or self.done >= self.total:
                self._last_draw = now
                self.stream.write("\r" + self._line(now))
                self.stream.flush()
        else:
            pct = 100 * self.done // self.total
            if pct >= self._next_line_pct:
                self.stream.write("[I] " + self._line(now) + "\n")
                while self._next_line_pct <= pct:
                    self._next_line_pct += 25

    def close(self):
        if self.enabled and self._tty:
            self.stream.write("\r" + self._line(time.perf_counter()) + "\n")
            self.stream.flush()
        self.enabled = False

    def _line(self, now):
        frac = min(self.done / float(self.total), 1.0)
        filled = int(round(frac * self.WIDTH))
        elapsed = max(now - self.started, 1e-9)
        return "{} {:>{w}}/{} [{}{}] {:.1f} {}/s".format(
            self.label, self.done, self.total, "=" * filled, " " * (self.WIDTH - filled),
            self.done / elapsed, self.unit, w=len(str(self.total)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
