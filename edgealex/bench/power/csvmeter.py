"""An external power meter's log (``--power csv:FILE``), aligned to the run by timestamps.

The file is a CSV with a header naming a time column and a power column:

- time: ``timestamp``/``time``/``epoch``/``unix_s`` as Unix seconds, or ISO 8601
  (``2026-11-02T10:15:00.250+01:00``; a trailing ``Z`` means UTC; no zone means local time);
- power: ``watts``/``power_w``/``w``/``power`` in watts, or ``milliwatts``/``power_mw``/``mw``.

The file is read when the run ends (the meter's logger may still be appending during the run).
Timestamps are mapped onto the run's clock through the wall clock, so the meter's clock must be
synchronised with this machine (NTP), as MLPerf Power requires; ``offset_s`` corrects a known
difference (meter clock + offset = this machine's clock).
"""

import csv
import math
import datetime
import os
import re
import time

import numpy as np

from edgealex.bench.power.base import MeterUnavailable, PowerMeter, Trace

TIME_COLUMNS = ("timestamp", "time", "epoch", "unix_s", "time_s", "t")
WATT_COLUMNS = ("watts", "power_w", "w", "power", "watt")
MILLIWATT_COLUMNS = ("milliwatts", "power_mw", "mw")
MARGIN_S = 10.0  # samples kept around the run, so plots show the context


_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6})\d*)?)?)?"
                  r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?$")


def parse_time(text):
    """Unix seconds from a number or an ISO 8601 string (``YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|±HH[:MM]]``;
    parsed here because ``datetime.fromisoformat`` needs Python 3.7 and the device side runs on 3.6).

    Raises:
        ValueError: neither a number nor such a timestamp.
    """
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    m = _ISO.match(text)
    if m is None:
        raise ValueError(f"not a Unix time or an ISO 8601 timestamp: {text!r}")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    micro = int((frac or "0").ljust(6, "0"))
    stamp = datetime.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                              int(second or 0), micro)
    if zone is None:  # local time
        return time.mktime(stamp.timetuple()) + stamp.microsecond / 1e6
    if zone == "Z":
        offset = datetime.timedelta(0)
    else:
        digits = zone[1:].replace(":", "")
        offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        if zone[0] == "-":
            offset = -offset
    return stamp.replace(tzinfo=datetime.timezone(offset)).timestamp()


def read_meter_csv(path):
    """(unix seconds, watts) arrays from a meter log, sorted by time.

    Raises:
        MeterUnavailable: the file is missing or has no recognisable columns or rows.
    """
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise MeterUnavailable(f"cannot read the meter log {path} ({exc.strerror or exc})")
    try:
        with handle:
            return _read_rows(path, csv.reader(handle))
    except UnicodeDecodeError as exc:
        raise MeterUnavailable(f"the meter log {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); "
                               "save it as UTF-8 CSV")


def _read_rows(path, reader):
    header = next(reader, None)
    if not header:
        raise MeterUnavailable(f"the meter log {path} is empty")
    names = [h.strip().lower() for h in header]
    t_col = next((names.index(c) for c in TIME_COLUMNS if c in names), None)
    w_col = next((names.index(c) for c in WATT_COLUMNS if c in names), None)
    scale = 1.0
    if w_col is None:
        w_col = next((names.index(c) for c in MILLIWATT_COLUMNS if c in names), None)
        scale = 1e-3
    if t_col is None or w_col is None:
        raise MeterUnavailable("the meter log {} needs a header with a time column ({}) and a power column ({}); "
                               "found {}".format(path, "/".join(TIME_COLUMNS[:4]), "/".join(WATT_COLUMNS[:3]), header))
    t, w = [], []
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        try:
            stamp, watts = parse_time(row[t_col]), float(row[w_col]) * scale
        except (ValueError, IndexError) as exc:
            raise MeterUnavailable(f"the meter log {path} line {line_no} is not 'time, watts' ({exc})")
        if not (math.isfinite(stamp) and math.isfinite(watts)) or watts < 0:
            raise MeterUnavailable(f"the meter log {path} line {line_no} has power {row[w_col].strip()!r} at "
                                   f"time {row[t_col].strip()!r}: power must be a finite number >= 0")
        t.append(stamp)
        w.append(watts)
    if not t:
        raise MeterUnavailable(f"the meter log {path} has no samples")
    t_arr, w_arr = np.asarray(t), np.asarray(w)
    order = np.argsort(t_arr, kind="stable")
    return t_arr[order], w_arr[order]


class CsvMeter(PowerMeter):
    """Power from an external meter's CSV log, read after the run.

    Args:
        path (str): the log file.
        offset_s (float): added to the log's timestamps to match this machine's clock.
    """

    name = "csv"
    live = False

    def __init__(self, path, offset_s=0.0):
        super().__init__(None)
        self.path = str(path)
        self.offset_s = float(offset_s)
        self._trace = None
        self._session = None

    def open_impl(self):
        if not os.path.isfile(self.path):
            raise MeterUnavailable(f"the meter log {self.path} does not exist")
        read_meter_csv(self.path)  # validate the header and rows now, not after a long run
        self.total = f"external meter log {os.path.basename(self.path)}"
        self.source = f"CSV {self.path} (timestamps aligned through the wall clock, offset {self.offset_s:+g} s)"

    def start(self):
        self._session = [time.perf_counter(), None]

    def sample_now(self):
        pass  # the meter logs on its own

    def stop(self):
        if self._session is None:
            self._session = [time.perf_counter(), None]
        self._session[1] = time.perf_counter()
        try:
            unix, watts = read_meter_csv(self.path)
        except MeterUnavailable as exc:  # the log vanished or broke during the run: no samples, say why
            self.notes.append(exc.reason)
            self._trace = Trace("power", np.zeros(0), np.zeros(0))
            return
        # perf_counter = unix - (time.time() - perf_counter()), both read back to back
        clock = time.time() - time.perf_counter()
        t = unix + self.offset_s - clock
        keep = (t >= self._session[0] - MARGIN_S) & (t <= self._session[1] + MARGIN_S)
        self._trace = Trace("power", t[keep], watts[keep])
        if not keep.any():
            self.notes.append(f"the log has {len(t)} samples but none within {MARGIN_S:g} s of the run; check the meter's clock "
                              "(NTP) or pass an offset")
        if len(t[keep]) >= 2:
            dt = np.diff(t[keep])
            self.interval_s = float(np.median(dt))

    def trace(self):
        if self._trace is None:
            return Trace("power", np.zeros(0), np.zeros(0))
        return self._trace

    def achieved_rate_hz(self):
        tr = self.trace()
        if tr.t_s.size < 2 or tr.t_s[-1] <= tr.t_s[0]:
            return None
        return (tr.t_s.size - 1) / (tr.t_s[-1] - tr.t_s[0])

    def describe(self):
        out = super().describe()
        out["samples"] = int(self.trace().t_s.size)
        out["offset_s"] = self.offset_s
        return out


__all__ = ["CsvMeter", "read_meter_csv", "parse_time"]
