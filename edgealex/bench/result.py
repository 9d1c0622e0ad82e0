"""Benchmark result files: one schema-versioned JSON per run, a trace CSV and a power CSV.

The JSON is rewritten atomically at every status change (``started`` -> ``measuring`` ->
``finished`` or ``failed``), so a crash or a kill leaves a readable record saying how far the run
got. Files of one run share a stem::

    <run_id>.json          the record (artifact "bench-result", schema SCHEMA_VERSION)
    <run_id>.trace.csv     one row per iteration (trtexec --exportTimes names where they mean the same)
    <run_id>.power.csv     one row per power sample, time relative to the measured window start

Trace columns: ``iteration, batch, startMs, endMs, latencyMs`` (+ loop stages). ``latencyMs`` is the
host-observed time of one synchronous inference including transfers: what trtexec calls
``latencyMs`` (H2D + compute + D2H). ``startMs``/``endMs`` are relative to the window start.
trtexec traces imported with :func:`import_trtexec_times` keep all their own columns.
"""

import csv
import datetime
import io
import math
import os
import re
import traceback

import numpy as np

from edgealex.artifacts import ensure_dir, now_iso, read_json, read_sidecar, write_json_atomic, write_text_atomic
from edgealex.bench.energy import counter_to_power
from edgealex.errors import EdgeAlexError
from edgealex.validate import check_float

SCHEMA_VERSION = 1
ARTIFACT = "bench-result"
STATUSES = ("started", "measuring", "finished", "failed")
TRACE_FIELDS = ("iteration", "batch", "startMs", "endMs", "latencyMs")
TRTEXEC_FIELDS = ("startEnqMs", "endEnqMs", "startH2dMs", "endH2dMs", "startComputeMs", "endComputeMs",
                  "startD2hMs", "endD2hMs", "h2dMs", "computeMs", "d2hMs", "latencyMs", "endToEndMs")
# TensorRT 7.x wrote in/out instead of h2d/d2h
TRTEXEC_OLD_NAMES = {"startInMs": "startH2dMs", "endInMs": "endH2dMs", "startOutMs": "startD2hMs",
                     "endOutMs": "endD2hMs", "inMs": "h2dMs", "outMs": "d2hMs"}


def session_stamp():
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def safe_name(text):
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", str(text)).strip("_") or "run"


def unique_run_id(out_dir, stem):
    """A run id whose ``<run_id>.json`` did not exist, reserved by creating that file (empty until
    :class:`RunRecord` writes it), so two ``bench`` processes started in the same second on the
    same engine get different names (``stem``, ``stem-2``, ...) instead of overwriting each other."""
    run_id = safe_name(stem)
    n = 1
    while True:
        try:
            os.close(os.open(os.path.join(str(out_dir), run_id + ".json"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return run_id
        except FileExistsError:
            n += 1
            run_id = f"{safe_name(stem)}-{n}"


class RunRecord:
    """The JSON record of one run, rewritten atomically at every status change.

    Args:
        out_dir (str): results folder.
        run_id (str): file stem of this run (see :func:`unique_run_id`).
        data (dict): initial content (engine, config, environment...).
    """

    def __init__(self, out_dir, run_id, data):
        self.out_dir = str(out_dir)
        self.run_id = run_id
        self.path = os.path.join(self.out_dir, run_id + ".json")
        self.data = {"artifact": ARTIFACT, "schema": SCHEMA_VERSION, "run_id": run_id, "status": None,
                     "created_at": now_iso(), "updated_at": None, "status_history": [], "files": {}}
        self.data.update(data)

    def set_status(self, status, **updates):
        """Record ``status`` (and any updated sections) and write the JSON atomically."""
        if status not in STATUSES:
            raise ValueError("unknown status " + str(status))
        self.data.update(updates)
        self.data["status"] = status
        self.data["updated_at"] = now_iso()
        self.data["status_history"].append({"status": status, "at": self.data["updated_at"]})
        self.write()

    def update(self, **updates):
        self.data.update(updates)
        self.write()

    def write(self):
        write_json_atomic(self.path, self.data)

    def fail(self, exc):
        """Mark the run failed with the error (user errors keep their message; bugs their traceback)."""
        error = {"type": type(exc).__name__, "message": str(exc)}
        if not isinstance(exc, EdgeAlexError) and not isinstance(exc, KeyboardInterrupt):
            error["traceback"] = traceback.format_exc(limit=20)
        self.set_status("failed", error=error)

    def file_path(self, kind, suffix):
        name = f"{self.run_id}.{suffix}"
        self.data["files"][kind] = name
        return os.path.join(self.out_dir, name)


def write_trace_csv(path, starts_s, ends_s, batch, origin_s, extra=None, latency_ms=None, latency_name=None):
    """Per-iteration (or per-frame) trace.

    Args:
        path (str): CSV to write.
        starts_s (array): perf_counter time each iteration started.
        ends_s (array): perf_counter time each iteration ended.
        batch (int): images per iteration.
        origin_s (float): the window start (time 0 of ``startMs``/``endMs``).
        extra (dict): more columns (loop stages), name -> per-row values.
        latency_ms (array): the ``latencyMs`` column when it is not end - start (loop mode: the
            inference time, trtexec's meaning); end - start then goes to ``latency_name``.
        latency_name (str): column name for end - start in that case (e.g. ``endToEndMs``).
    """
    starts = (np.asarray(starts_s, dtype=np.float64) - origin_s) * 1e3
    ends = (np.asarray(ends_s, dtype=np.float64) - origin_s) * 1e3
    extra = {k: v for k, v in (extra or {}).items() if k != "inferMs" or latency_ms is None}
    columns = {}
    if latency_ms is not None:
        columns[latency_name or "spanMs"] = ends - starts
    columns.update(extra)
    lat = np.asarray(latency_ms, dtype=np.float64) if latency_ms is not None else ends - starts
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(TRACE_FIELDS) + list(columns))
    values = [np.asarray(v, dtype=np.float64) for v in columns.values()]
    for i in range(starts.size):
        row = [i, batch, f"{starts[i]:.4f}", f"{ends[i]:.4f}", f"{lat[i]:.4f}"]
        row += [f"{c[i]:.4f}" if i < c.size and np.isfinite(c[i]) else "" for c in values]
        writer.writerow(row)
    write_text_atomic(path, buf.getvalue())
    return path


def write_power_csv(path, trace, origin_s, clock_offset_s):
    """Power samples with times relative to the window start (``t_s``) and as Unix time.

    For counter meters the cumulative ``energy_j`` is written next to the power derived from
    consecutive readings (assigned to the later reading).
    """
    t = np.asarray(trace.t_s, dtype=np.float64)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    rails = sorted(trace.rails)
    if trace.kind == "energy":
        writer.writerow(["t_s", "unix_s", "energy_j", "power_w"] + [r + "_j" for r in rails])
        _, watts = counter_to_power(t, trace.value, trace.max_range_j)
        dt_ok = np.concatenate(([False], np.diff(t) > 0))
        w_full = np.full(t.size, np.nan)
        w_full[dt_ok] = watts
        for i in range(t.size):
            row = [f"{t[i] - origin_s:.6f}", f"{t[i] + clock_offset_s:.6f}",
                   f"{trace.value[i]:.6f}", "" if np.isnan(w_full[i]) else f"{w_full[i]:.4f}"]
            row += [f"{trace.rails[r][i]:.6f}" for r in rails]
            writer.writerow(row)
    else:
        writer.writerow(["t_s", "unix_s", "power_w"] + [r + "_w" for r in rails])
        for i in range(t.size):
            row = [f"{t[i] - origin_s:.6f}", f"{t[i] + clock_offset_s:.6f}",
                   f"{trace.value[i]:.4f}"]
            row += ["" if np.isnan(trace.rails[r][i]) else f"{trace.rails[r][i]:.4f}" for r in rails]
            writer.writerow(row)
    write_text_atomic(path, buf.getvalue())
    return path


def read_power_csv(path):
    """(t_s, power_w) arrays of a power CSV written by :func:`write_power_csv` (NaN rows dropped)."""
    t, w = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get("power_w") in (None, ""):
                continue
            t.append(float(row["t_s"]))
            w.append(float(row["power_w"]))
    return np.asarray(t), np.asarray(w)


def read_trace_csv(path):
    """Per-iteration latencies (ms) of a trace CSV (ours or an imported trtexec one)."""
    out = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get("latencyMs"):
                out.append(float(row["latencyMs"]))
    return np.asarray(out)


def read_trace_column(path, name):
    """One numeric column of a trace CSV (ms), e.g. ``endToEndMs`` of a loop run; empty when absent."""
    out = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get(name):
                out.append(float(row[name]))
    return np.asarray(out)


_NUMERIC_SECTIONS = ("throughput", "latency_ms", "compare")
_NUMERIC_POWER = ("_w", "_mj", "mj_", "_j", "_s", "_hz", "samples", "fraction")


def load_result(path):
    """A bench result JSON, checked at the boundary before anything formats a figure of it.

    The envelope goes through :func:`edgealex.artifacts.validate_sidecar` (an object, artifact
    "bench-result", an integer schema this edgealex reads); every figure of ``throughput``,
    ``latency_ms``, ``compare`` and the numeric ``power`` fields must be a finite number or null,
    and ``batch`` a positive integer or null.

    Raises:
        EdgeAlexError: not a bench result, written by a newer edgealex, or a figure that is a
            string, a boolean or not finite (the report then lists the file as skipped).
    """
    fix = "pass the <run>.json files written by `edgealex bench` (re-run it if the file was edited)"
    data = read_sidecar(path, "benchmark result", artifact=ARTIFACT, schema_max=SCHEMA_VERSION,
                        require_sha256=False, fix=fix)

    def figure(where, value):
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise EdgeAlexError(path, f"{where} is {value!r}, not a number", fix)

    for section in _NUMERIC_SECTIONS:
        block = data.get(section)
        if block is None:
            continue
        if not isinstance(block, dict):
            raise EdgeAlexError(path, f"{section} is {block!r}, not an object", fix)
        for key, value in block.items():
            if not isinstance(value, (dict, list)) and not (section == "compare" and key == "baseline_run"):
                figure(f"{section}.{key}", value)
    power = data.get("power")
    if power is not None and not isinstance(power, dict):
        raise EdgeAlexError(path, f"power is {power!r}, not an object", fix)
    for key, value in (power or {}).items():
        if any(part in key for part in _NUMERIC_POWER) and not isinstance(value, (dict, list)):
            figure(f"power.{key}", value)
    batch = data.get("batch")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise EdgeAlexError(path, f"batch is {batch!r}, not a positive integer", fix)
    data["_path"] = os.path.abspath(path)
    return data


def trtexec_rows(path):
    """The entries of a trtexec ``--exportTimes`` JSON, with TensorRT 7 names mapped to 8+ names."""
    data = read_json(path, "trtexec --exportTimes file", expect=None)
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise EdgeAlexError(path, "not a trtexec --exportTimes trace (expected a JSON list of timing objects)",
                            "run trtexec with --exportTimes=times.json and pass that file")
    rows = []
    for entry in data:
        row = {TRTEXEC_OLD_NAMES.get(k, k): float(v) for k, v in entry.items() if isinstance(v, (int, float))}
        if "latencyMs" not in row or "startComputeMs" not in row:
            raise EdgeAlexError(path, f"a trace entry lacks latencyMs/startComputeMs ({sorted(entry)})",
                                "pass the file written by trtexec --exportTimes")
        rows.append(row)
    return rows


__all__ = ["RunRecord", "load_result", "import_trtexec_times", "write_trace_csv", "write_power_csv", "read_power_csv", "read_trace_csv",
           "trtexec_rows", "unique_run_id", "session_stamp", "SCHEMA_VERSION", "STATUSES", "TRACE_FIELDS",
           "TRTEXEC_FIELDS"]


def import_trtexec_times(times_json, out_dir, engine=None, warmup_ms=200.0, batch=1, label=None):
    """Turn a trtexec ``--exportTimes`` trace into an edgealex result, so it appears in reports.

    trtexec's trace includes the warm-up; like trtexec, entries whose ``startComputeMs`` is before
    ``warmup_ms`` are dropped, the window runs from the first kept ``startH2dMs`` to the last
    ``endD2hMs`` and throughput is ``batch x queries / window``.

    Args:
        times_json (str): the file written by ``trtexec --exportTimes=FILE``.
        out_dir (str): results folder.
        engine (str): the engine trtexec ran (its sidecar goes into the result), optional.
        warmup_ms (float): trtexec's ``--warmUp`` (default 200 ms).
        batch (int): images per query (explicit-batch engines: the engine's batch dimension).
        label (str): run name. Defaults to the file's stem.

    Returns:
        str: path of the result JSON.

    Raises:
        EdgeAlexError: ``warmup_ms`` is not a finite number >= 0, or the trace is unreadable.
    """
    from edgealex.bench.environment import collect
    from edgealex.bench.stats import summarize

    warmup_ms = check_float("--trtexec-warmup-ms", warmup_ms, low=0, example="200")
    rows = trtexec_rows(times_json)
    kept = [r for r in rows if r["startComputeMs"] >= warmup_ms] or rows
    start_key = "startH2dMs" if "startH2dMs" in kept[0] else "startComputeMs"
    end_key = "endD2hMs" if "endD2hMs" in kept[0] else "endComputeMs"
    t0, t1 = kept[0][start_key], kept[-1][end_key]
    window_s = max(t1 - t0, 1e-9) / 1e3
    stats = summarize([r["latencyMs"] for r in kept], len(kept) * batch, window_s, batch)
    stats["throughput"]["warmup_iterations"] = len(rows) - len(kept)
    stats["throughput"]["warmup_s"] = warmup_ms / 1e3
    if "computeMs" in kept[0]:
        from edgealex.bench.stats import latency_stats

        stats["gpu_compute_ms"] = latency_stats([r["computeMs"] for r in kept])
    name = label or os.path.splitext(os.path.basename(str(times_json)))[0]
    out_dir = ensure_dir(out_dir, "results folder")
    run_id = unique_run_id(out_dir, f"{name}-trtexec-b{batch}-{session_stamp()}")
    if engine:
        from edgealex.bench.harness import engine_info

        info = engine_info(engine)
    else:
        info = {"path": None, "name": name, "backend": "tensorrt", "precision": None, "device": None, "target": None,
                "sidecar": None, "sidecar_error": "no --engine given with the trtexec trace"}
    info["builder"] = "trtexec"
    rec = RunRecord(out_dir, run_id, {
        "label": name, "mode": "trtexec", "kind": "engine", "batch": int(batch),
        "engine": info, "config": {"imported_from": os.path.abspath(str(times_json)), "warmup_ms": warmup_ms},
        "environment": collect(), "source": "trtexec --exportTimes",
    })
    rec.set_status("started")
    reason = "imported trtexec trace: trtexec records no power"
    rec.data.update(stats)
    rec.data["power"] = {"available": False, "reason": reason, "display": f"n/a ({reason})"}
    fields = ["iteration", "batch", "startMs", "endMs"] + [f for f in TRTEXEC_FIELDS if f in kept[0]]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(fields)
    for i, r in enumerate(kept):
        row = [i, batch, f"{r[start_key] - t0:.4f}", f"{r[end_key] - t0:.4f}"]
        row += [f"{r[f]:.4f}" for f in fields[4:]]
        writer.writerow(row)
    write_text_atomic(rec.file_path("trace", "trace.csv"), buf.getvalue())
    rec.set_status("finished")
    return rec.path
