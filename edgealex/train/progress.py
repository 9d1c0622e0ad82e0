"""Training progress on the terminal: one bar per epoch with the running loss, then the epoch's
validation accuracy. Without a terminal (logs, CI) only the per-epoch lines are printed."""

import sys
import time

from edgealex.train.trainer import LogProgress

BAR_WIDTH = 28


class BarProgress(LogProgress):
    """A per-epoch progress bar on stderr (redrawn at most 10 times a second)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._epoch = self._epochs = self._steps = 0
        self._start = self._drawn = 0.0

    def epoch_start(self, epoch, epochs, steps):
        self._epoch, self._epochs, self._steps = epoch, epochs, steps
        self._start = time.perf_counter()
        self._drawn = 0.0

    def step(self, done, loss):
        now = time.perf_counter()
        if not self.tty or (now - self._drawn < 0.1 and done < self._steps):
            return
        self._drawn = now
        filled = int(BAR_WIDTH * done / max(1, self._steps))
        self.stream.write("\repoch {}/{} [{}{}] {}/{}  loss {:.3f}  {:.0f} s ".format(
            self._epoch, self._epochs, "#" * filled, "." * (BAR_WIDTH - filled), done, self._steps, loss,
            now - self._start))
        self.stream.flush()

    def epoch_end(self, stats):
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write("epoch {}/{}  loss {:.3f}  train acc {:.1%}  val acc {:.1%}  lr {:.2g}  {:.0f} s{}\n".format(
            stats["epoch"], stats["epochs"], stats["train_loss"], stats["train_acc"], stats["val_acc"], stats["lr"],
            stats["seconds"], "  (best)" if stats.get("best") else ""))
        self.stream.flush()
