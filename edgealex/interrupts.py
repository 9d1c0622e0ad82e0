"""SIGTERM handled like Ctrl-C: the one handler every long command uses.

systemd's ``stop``, ``docker stop`` and ``kill`` send SIGTERM; Python's default is to die on the
spot, skipping every ``finally`` (status files stay at "measuring", staging and temporary folders
stay behind, logs are not closed). :func:`sigterm_as_interrupt` makes SIGTERM raise
KeyboardInterrupt instead, so the clean-up each command does for Ctrl-C runs for it too. The CLI
installs it once at its entry (:func:`edgealex.cli.main.main`); library entry points that run long
outside the CLI (the self-test) may install it too.
"""

import signal
import threading


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt()


def sigterm_as_interrupt():
    """Make SIGTERM raise KeyboardInterrupt in the main thread.

    Returns:
        The previous handler (restore it with ``signal.signal(signal.SIGTERM, previous)``), or None
        when nothing was installed: not the main thread, or SIGTERM ignored on purpose by the parent.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
            return None
        return signal.signal(signal.SIGTERM, _raise_interrupt)
    except (ValueError, OSError):
        return None
