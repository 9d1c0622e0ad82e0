"""PowerMeter: a background sampling thread around a ``read()`` that subclasses implement."""

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np


class MeterUnavailable(Exception):
    """The meter cannot measure on this machine; ``reason`` says why (and how to fix, if known)."""

    def __init__(self, reason):
        self.reason = str(reason)
        super().__init__(self.reason)


@dataclass(frozen=True)
class RailChoice:
    """Which INA3221 rail is the board total, taken from the target profile.

    Args:
        total_rail (str): a single rail that measures the module input (Nano ``POM_5V_IN``, Orin
            NX/Nano ``VDD_IN``), or None.
        rails (tuple): rails to add up when there is no input rail (AGX Xavier).
        is_sum (bool): the total is a sum of ``rails`` (stated as such in the result).
        note (str): the target's power note, copied into the result.
        source (str): where the choice came from (target name or "default").
    """

    total_rail: Optional[str] = None
    rails: Tuple[str, ...] = ()
    is_sum: bool = False
    note: str = ""
    source: str = "default"

    @classmethod
    def from_target(cls, target):
        """Read ``power_total_rail``, ``power_rails``, ``power_total_is_sum``, ``power_note``."""
        if target is None:
            return cls()
        return cls(
            total_rail=getattr(target, "power_total_rail", None) or None,
            rails=tuple(getattr(target, "power_rails", None) or ()),
            is_sum=bool(getattr(target, "power_total_is_sum", False)),
            note=str(getattr(target, "power_note", "") or ""),
            source="target " + str(getattr(target, "name", "?")),
        )


# Rails that measure the whole module input on the boards that have one (facts §6.2).
INPUT_RAILS = ("POM_5V_IN", "VDD_IN")


def choose_total(available, choice):
    """Pick the rails whose sum is the reported total.

    Args:
        available (List[str]): rail labels found on the board.
        choice (RailChoice): the target's preference.

    Returns:
        (List[str], str): rails to add and a sentence saying what the total is.
    """
    found = list(available)
    if choice.total_rail:
        if choice.total_rail in found:
            return [choice.total_rail], f"rail {choice.total_rail} (module input, {choice.source})"
        fallback, text = choose_total(found, RailChoice())
        return fallback, "{} not found on this board (found {}); {}".format(
            choice.total_rail, ", ".join(found) or "none", text)
    if choice.is_sum:
        wanted = [r for r in choice.rails if r in found] if choice.rails else found
        missing = [r for r in choice.rails if r not in found]
        text = "SUM of rails {} ({}: no input rail on this board, so regulator losses are not included)".format(
            "+".join(wanted), choice.source)
        if missing:
            text += "; rails missing here: " + ", ".join(missing)
        if not wanted:
            wanted = found
            text = "SUM of all rails {} (none of the target's rails were found)".format("+".join(found))
        return wanted, text
    for rail in INPUT_RAILS:
        if rail in found:
            return [rail], f"rail {rail} (module input)"
    return found, "SUM of all rails {} (no input rail found)".format("+".join(found))


@dataclass
class Trace:
    """Samples collected by a meter: times on the ``time.perf_counter`` clock."""

    kind: str  # "power" (value in W) or "energy" (cumulative counter in J, may wrap)
    t_s: np.ndarray
    value: np.ndarray
    rails: Dict[str, np.ndarray] = field(default_factory=dict)
    max_range_j: Optional[float] = None


class PowerMeter:
    """Base class: a ``read()`` polled in a background thread, every ``interval_s``.

    Subclasses set ``name``, ``kind`` and implement :meth:`open_impl` (probe, raise
    :class:`MeterUnavailable` with the reason), :meth:`read` (-> (value, rails dict)) and
    optionally :meth:`close_impl`.
    """

    name = "meter"
    kind = "power"
    available = True
    live = True  # samples arrive during the run (False: a log read after it, e.g. csv:)

    def __init__(self, interval_s=None):
        self.interval_s = interval_s
        self.max_range_j = None  # type: Optional[float]
        self.total = ""  # what the value measures, one sentence
        self.source = ""  # files / API used
        self.notes = []  # type: List[str]
        self._t = []  # type: List[float]
        self._v = []  # type: List[float]
        self._rails = []  # type: List[Dict[str, float]]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._errors = 0
        self._last_error = None
        self._started_at = None

    # -- subclass API -------------------------------------------------------------------------
    def open_impl(self):
        """Check that the meter can read; raise MeterUnavailable(reason) otherwise."""

    def read(self):
        """One reading: (watts or cumulative joules, {rail: watts})."""
        raise NotImplementedError

    def close_impl(self):
        """Release files/handles."""

    # -- lifecycle ----------------------------------------------------------------------------
    def open(self):
        self.open_impl()
        return self

    def start(self):
        """Start sampling in a daemon thread (times from ``time.perf_counter``)."""
        self._stop.clear()
        self._started_at = time.perf_counter()
        self.sample_now()
        self._thread = threading.Thread(target=self._run, name="edgealex-power-" + self.name, daemon=True)
        self._thread.start()

    def stop(self):
        """Stop the thread, take a last reading, release the sensor."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self.sample_now()
        self.close_impl()

    def _run(self):
        interval = self.interval_s or 0.01
        while not self._stop.is_set():
            self.sample_now()
            self._stop.wait(interval)

    def sample_now(self):
        """Take one reading now (also called by the harness at the window edges)."""
        try:
            before = time.perf_counter()
            value, rails = self.read()
            after = time.perf_counter()
        except Exception as exc:  # a sensor read can fail transiently; counted and reported
            self._errors += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
            return
        if value is None:
            return
        with self._lock:
            self._t.append(0.5 * (before + after))
            self._v.append(float(value))
            self._rails.append(dict(rails or {}))

    # -- results ------------------------------------------------------------------------------
    def trace(self):
        """The samples collected so far as a :class:`Trace`."""
        with self._lock:
            t = np.asarray(self._t, dtype=np.float64)
            v = np.asarray(self._v, dtype=np.float64)
            names = sorted({k for r in self._rails for k in r})
            rails = {n: np.asarray([r.get(n, np.nan) for r in self._rails], dtype=np.float64) for n in names}
        return Trace(self.kind, t, v, rails, self.max_range_j)

    def achieved_rate_hz(self):
        with self._lock:
            if len(self._t) < 2 or self._t[-1] <= self._t[0]:
                return None
            return (len(self._t) - 1) / (self._t[-1] - self._t[0])

    def describe(self):
        """What this meter measures, for the result JSON."""
        return {
            "meter": self.name,
            "available": self.available,
            "kind": self.kind,
            "total": self.total,
            "source": self.source,
            "interval_s": self.interval_s,
            "achieved_rate_hz": self.achieved_rate_hz(),
            "samples": len(self._t),
            "read_errors": self._errors,
            "last_error": self._last_error,
            "notes": list(self.notes),
        }


class NullMeter(PowerMeter):
    """No measurement; carries the reason so results say "n/a (reason)"."""

    name = "none"
    available = False

    def __init__(self, reason):
        super().__init__()
        self.reason = str(reason)
        self.total = "n/a"

    def start(self):
        pass

    def stop(self):
        pass

    def sample_now(self):
        pass

    def describe(self):
        out = super().describe()
        out["reason"] = self.reason
        return out


def read_number(path):
    """The number in a small sysfs file (int or float)."""
    with open(path) as handle:
        text = handle.read().strip()
    try:
        return int(text)
    except ValueError:
        return float(text)


class SysfsReader:
    """Keeps a sysfs attribute open and re-reads it with ``pread`` (no reopen per sample)."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)

    def read(self):
        text = os.pread(self.fd, 64, 0).decode("ascii", "replace").strip()
        try:
            return int(text)
        except ValueError:
            return float(text)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
