"""Read results and their CSVs into the rows and series the report shows."""

import glob
import os

import numpy as np

from edgealex.bench.result import load_result, read_power_csv, read_trace_csv
from edgealex.errors import EdgeAlexError


def expand_paths(paths):
    """Result JSON files from files and folders (a folder contributes its ``*.json``)."""
    out = []
    for p in paths:
        p = str(p)
        if os.path.isdir(p):
            out += sorted(glob.glob(os.path.join(p, "*.json")))
        elif os.path.isfile(p):
            out.append(p)
        else:
            matches = sorted(glob.glob(p))
            if not matches:
                raise EdgeAlexError(p, "no such result file", "pass results/*.json written by `edgealex bench`")
            out += matches
    return out


def load_results(paths):
    """Bench results from ``paths``; JSON files that are not bench results are skipped with a note.

    Returns:
        (list, list): results (dicts with ``_path``) and (path, reason) of skipped files.
    """
    results, skipped = [], []
    for path in expand_paths(paths):
        try:
            results.append(load_result(path))
        except EdgeAlexError as exc:
            skipped.append((path, exc.what))
    if not results:
        raise EdgeAlexError(", ".join(str(p) for p in paths) or "(none)", "no benchmark results found" + (
            f" ({len(skipped)} JSON files are not bench results)" if skipped else ""),
            "pass the <run>.json files written by `edgealex bench -o results/`")
    results.sort(key=lambda d: (d.get("created_at") or "", (d.get("session") or {}).get("index", 0)))
    return results, skipped


def _file(result, kind):
    name = (result.get("files") or {}).get(kind)
    if not name:
        return None
    path = os.path.join(os.path.dirname(result["_path"]), name)
    return path if os.path.isfile(path) else None


def latencies(result):
    """Per-iteration latencies (ms) from the trace CSV, or an empty array."""
    path = _file(result, "trace")
    return read_trace_csv(path) if path else np.zeros(0)


def power_series(result):
    """(t_s, watts) relative to the window start, or None when the run has no power CSV."""
    path = _file(result, "power")
    if not path:
        return None
    t, w = read_power_csv(path)
    return (t, w) if t.size else None


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def agreement(result):
    """Top-1 agreement with the compare reference, else an accuracy figure from the sidecar."""
    value = _get(result, "accuracy", "agreement_vs_first")
    if value is not None:
        return value, "top-1 vs first (synthetic)"
    cal = _get(result, "engine", "sidecar", "calibration") or {}
    for key in ("top1_agreement", "agreement", "accuracy"):
        if isinstance(cal.get(key), (int, float)):
            return float(cal[key]), "calibration " + key
    return None, None


def row(result):
    """One line of the comparison table."""
    eng = result.get("engine") or {}
    thr = result.get("throughput") or {}
    lat = result.get("latency_ms") or {}
    pw = result.get("power") or {}
    agree, agree_src = agreement(result)
    return {
        "run": result.get("run_id"), "label": result.get("label"), "mode": result.get("mode"),
        "status": result.get("status"), "backend": eng.get("backend"), "precision": eng.get("precision"),
        "device": eng.get("device"), "batch": result.get("batch"), "fps": thr.get("fps"),
        "pipeline_fps": thr.get("pipeline_fps"), "p50_ms": lat.get("p50_ms"), "p99_ms": lat.get("p99_ms"),
        "power_w": pw.get("avg_power_w"), "mj_gross": pw.get("mj_per_frame_gross"), "mj_net": pw.get("mj_per_frame_net"),
        "fps_ratio": _get(result, "compare", "fps_ratio"), "agreement": agree, "agreement_source": agree_src,
        "power_display": pw.get("display") or ("n/a ({})".format(pw.get("reason")) if pw.get("reason") else "n/a"),
        "power_available": bool(pw.get("available")),
    }
