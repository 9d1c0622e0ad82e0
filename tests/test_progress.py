"""The one progress bar (edgealex/progress.py, tqdm): drawn on a terminal, silent under --quiet and
off a terminal; used by calibration, training and the benchmark harness (issue 13, "One progress bar")."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

pytest.importorskip("tqdm")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import sys, time
from edgealex.log import configure
configure(quiet=QUIET)
from edgealex.progress import ProgressBar
from edgealex.train.progress import BarProgress
with ProgressBar(5, "calibrating") as bar:
    for _ in range(5):
        bar.update(1)
        time.sleep(0.12)
train = BarProgress()
train.epoch_start(1, 2, 3)
for step in range(3):
    train.step(step + 1, 0.5)
    time.sleep(0.12)
train.epoch_end({"epoch": 1, "epochs": 2, "train_loss": 0.5, "train_acc": 0.9, "val_acc": 0.8, "lr": 0.01,
                 "seconds": 1.0, "best": True})
train.close()
from edgealex.build.trt import Spinner
with Spinner("building the engine"):
    time.sleep(1.2)
"""


def _run(quiet, tty):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = SCRIPT.replace("QUIET", str(quiet))
    if not tty:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stderr.decode()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode(errors="replace")


def test_bar_drawn_on_a_terminal():
    out = _run(quiet=False, tty=True)
    assert "calibrating:" in out and "/5 [" in out and "\r" in out  # tqdm redraws in place
    assert "epoch 1/2:" in out and "/3 [" in out and "loss 0.500" in out
    assert "val acc 80.0%" in out  # the epoch's log line follows its bar
    assert "[I] building the engine 00:01" in out  # the TensorRT build's elapsed time, on the same bar


def test_no_bar_off_a_terminal_and_none_under_quiet():
    logged = _run(quiet=False, tty=False)
    assert "\r" not in logged and "calibrating" not in logged and "|" not in logged
    assert "val acc 80.0%" in logged  # log lines still come
    assert "building the engine ..." in logged and "00:0" not in logged
    quiet = _run(quiet=True, tty=True)
    assert "calibrating" not in quiet and "epoch 1/2" not in quiet


def test_hand_written_bars_are_gone():
    """One module draws progress: the three former hand-written bars no longer exist."""
    assert not os.path.exists(os.path.join(ROOT, "edgealex", "calib", "progress.py"))
    for rel in ("edgealex/train/progress.py", "edgealex/bench/harness.py", "edgealex/build/trt.py"):
        with open(os.path.join(ROOT, rel), encoding="utf-8") as handle:
            text = handle.read()
        assert "from edgealex.progress import ProgressBar" in text
        assert "\\r" not in text and "isatty" not in text
