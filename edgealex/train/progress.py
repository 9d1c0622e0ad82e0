"""Training progress on the terminal: the trainer's callbacks drawn on the one progress bar
(:class:`edgealex.progress.ProgressBar`): a bar per epoch with the running loss, then the epoch's
log line. Off a terminal (logs, CI) or under ``--quiet`` only the log lines remain."""

from edgealex.progress import ProgressBar
from edgealex.train.trainer import LogProgress


class BarProgress(LogProgress):
    """A per-epoch bar (steps, running loss, rate) over the per-epoch log lines.

    Args:
        stream: where the bar is drawn. Defaults to sys.stderr.
    """

    def __init__(self, stream=None):
        self.stream = stream
        self._bar = None

    def epoch_start(self, epoch, epochs, steps):
        self.close()
        self._bar = ProgressBar(steps, f"epoch {epoch}/{epochs}", unit="step", stream=self.stream)

    def step(self, done, loss):
        if self._bar is not None:
            self._bar.note(f"loss {loss:.3f}")
            self._bar.update(done - self._bar.done)

    def epoch_end(self, stats):
        self.close()
        super().epoch_end(stats)

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
