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


def load_results(paths, runs=None):
    """Bench results from ``paths``; JSON files that are not bench results are skipped with a note.

    Args:
        paths (list): result files or folders.
        runs (list or None): when a list, saved ``edgealex run`` summaries (the live inspection loop)
            found among ``paths`` are appended to it instead of being skipped.

    Returns:
        (list, list): results (dicts with ``_path``) and (path, reason) of skipped files.
    """
    from edgealex.artifacts import read_json
    from edgealex.pipeline.loop import RUN_SUMMARY_ARTIFACT

    results, skipped = [], []
    for path in expand_paths(paths):
        try:
            results.append(load_result(path))
        except EdgeAlexError as exc:
            if runs is not None:
                try:
                    data = read_json(path, "run summary")
                except EdgeAlexError:
                    data = None
                if isinstance(data, dict) and data.get("artifact") == RUN_SUMMARY_ARTIFACT:
                    data["_path"] = os.path.abspath(path)
                    runs.append(data)
                    continue
            skipped.append((path, exc.what))
    if not results:
        raise EdgeAlexError(", ".join(str(p) for p in paths) or "(none)", "no benchmark results found" + (
            f" ({skipped_text(skipped)})" if skipped else ""),
            "pass the <run>.json files written by `edgealex bench -o results/`")
    results.sort(key=lambda d: (d.get("created_at") or "", (d.get("session") or {}).get("index", 0)))
    return results, skipped


def skipped_text(skipped, show=3):
    """Why the given files are not bench results, grammatical for one or many:
    "README.md is not JSON" / "2 files are not bench results: a.json (artifact ...), README.md (not JSON)"."""
    def why(reason):
        return "not JSON" if "not valid JSON" in str(reason) else str(reason)

    if len(skipped) == 1:
        path, reason = skipped[0]
        name = os.path.basename(str(path))
        return f"{name} is not JSON" if why(reason) == "not JSON" else f"{name} is not a bench result ({reason})"
    names = [f"{os.path.basename(str(p))} ({why(r)})" for p, r in skipped[:show]]
    more = ", ..." if len(skipped) > show else ""
    return "{} files are not bench results: {}{}".format(len(skipped), ", ".join(names), more)


def _file(result, kind):
    name = (result.get("files") or {}).get(kind)
    if not name:
        return None
    path = os.path.join(os.path.dirname(result["_path"]), name)
    return path if os.path.isfile(path) else None


def latencies(result):
    """Per-iteration latencies (ms) from the trace CSV, or an empty array.

    The same quantity as the result's p50/p99: one synchronous inference, except for loop-mode
    runs, whose headline latency is end to end per frame (capture start to sinks done).
    """
    path = _file(result, "trace")
    if not path:
        return np.zeros(0)
    if result.get("mode") == "loop":
        from edgealex.bench.result import read_trace_column

        column = read_trace_column(path, "endToEndMs")
        if column.size:
            return column
    return read_trace_csv(path)


def latency_kind(result):
    """Short name of what a result's latency measures: "inference" or "end-to-end"."""
    return "end-to-end" if result.get("mode") == "loop" else "inference"


def display_names(results):
    """A unique legend / table name per result: label and batch, then the mode, then #n."""
    base = ["{} b{}".format(r.get("label") or r.get("run_id"), r.get("batch")) for r in results]
    names = []
    for name, r in zip(base, results):
        modes = {x.get("mode") for b, x in zip(base, results) if b == name}
        if len(modes) > 1:  # the mode tells them apart
            name = "{} ({})".format(name, r.get("mode") or "?")
        names.append(name)
    seen = {}
    out = []
    for name in names:
        if names.count(name) > 1:
            seen[name] = seen.get(name, 0) + 1
            name = f"{name} #{seen[name]}"
        out.append(name)
    return out


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


def accuracy(result):
    """(accuracy text, agreement text, source) of one result; "not measured" without labelled images.

    Sources, in order: the run's own measurement (``bench --eval-images`` or, in loop mode, the
    frame source's ground truth) and the calibration holdout recorded in the engine sidecar
    (INT8 engines built from an ``edgealex calibrate`` folder). A figure always carries its count.
    """
    acc = result.get("accuracy") or {}
    if acc.get("measured") and acc.get("top1_accuracy") is not None:
        if acc.get("frames") is not None:  # loop mode: frames vs distinct images
            distinct = acc.get("images")
            text = "{:.1%} of {} frames ({} distinct images)".format(
                acc["top1_accuracy"], acc["frames"], "?" if distinct is None else distinct)
            return text, "n/a (loop)", "frame source ground truth"
        agree = acc.get("agreement_vs_first")
        agree_text = "reference" if acc.get("reference_run") is None and agree == 1.0 else (
            "n/a" if agree is None else "{:.1%} of {} img".format(agree, acc["images"]))
        return "{:.1%} of {} img".format(acc["top1_accuracy"], acc["images"]), agree_text, "--eval-images"
    cal = _get(result, "engine", "sidecar", "calibration") or {}
    count = cal.get("calibration_holdout_images")
    key = INT8_KINDS.get(cal.get("method"), "int8_qdq")  # cache builds share the Q/DQ model's scales
    agree = holdout_agreement(cal, key)
    if count and isinstance(agree, (int, float)):
        acc_value = (cal.get("calibration_accuracy") or {}).get(key)
        acc_text = "not measured" if acc_value is None else f"{acc_value:.1%} of {count} img (holdout)"
        return acc_text, f"{agree:.1%} of {count} img vs FP32 (holdout)", "calibration holdout"
    return "not measured", "not measured", None


# the engine sidecar's calibration "method" (the artifact the build took) -> calibration.json's key
INT8_KINDS = {"qdq": "int8_qdq", "ort-native": "int8_ort"}


def holdout_agreement(cal, key):
    """Held-out top-1 agreement with FP32 of the INT8 model ``key`` ("int8_qdq" / "int8_ort") an
    engine was built from, or None when it was not recorded.

    Args:
        cal (dict): the engine sidecar's ``calibration`` section.
        key (str): a key of calibration.json's ``agreements``.

    ``calibration_agreement`` is the Q/DQ model's figure only; the per-model figures are the sidecar's
    ``calibration_agreements`` or, for sidecars written before it was recorded, the ``agreements`` of
    the calibration.json the build read, when that file is still there and is the same calibration
    (same ``created_at`` and images manifest sha256).
    """
    agreements = cal.get("calibration_agreements")
    if not isinstance(agreements, dict):
        agreements = _manifest_agreements(cal)
    if isinstance(agreements, dict) and isinstance(agreements.get(key), (int, float)):
        return agreements[key]
    if key == "int8_qdq":
        return cal.get("calibration_agreement")
    return None


def _manifest_agreements(cal):
    from edgealex.artifacts import read_json

    source = cal.get("source")
    if not source:
        return None
    path = os.path.join(source, "calibration.json") if os.path.isdir(source) else source
    if not (os.path.basename(path) == "calibration.json" and os.path.isfile(path)):
        return None
    try:
        data = read_json(path, "calibration manifest")
    except EdgeAlexError:
        return None
    if not isinstance(data, dict) or cal.get("calibration_created_at") is None or any(
            data.get(k) != cal.get("calibration_" + k) for k in ("created_at", "images_manifest_sha256")):
        return None
    return data.get("agreements")


def net_energy(pw):
    """(value, flag) for net mJ/frame: a net below zero (idle drew more than the load) is flagged
    with :data:`edgealex.bench.energy.NET_BELOW_IDLE`, without a value."""
    from edgealex.bench.energy import NET_BELOW_IDLE, net_below_idle

    value = pw.get("mj_per_frame_net")
    if net_below_idle(value):
        return None, NET_BELOW_IDLE
    return value, None


def row(result, name=None):
    """One line of the comparison table."""
    eng = result.get("engine") or {}
    thr = result.get("throughput") or {}
    lat = result.get("latency_ms") or {}
    pw = result.get("power") or {}
    acc_text, agree_text, acc_src = accuracy(result)
    loop = result.get("mode") == "loop"
    net, net_flag = net_energy(pw)
    return {
        "run": result.get("run_id"), "label": result.get("label"), "name": name or "{} b{}".format(
            result.get("label") or result.get("run_id"), result.get("batch")), "mode": result.get("mode"),
        "status": result.get("status"), "backend": eng.get("backend"), "precision": eng.get("precision"),
        "device": eng.get("device"), "batch": result.get("batch"), "fps": thr.get("fps"),
        "pipeline_fps": thr.get("pipeline_fps"), "engine_fps": thr.get("engine_fps") if loop else thr.get("fps"),
        "p50_ms": lat.get("p50_ms"), "p99_ms": lat.get("p99_ms"), "latency_kind": latency_kind(result),
        "power_w": pw.get("avg_power_w"), "mj_gross": pw.get("mj_per_frame_gross"), "mj_net": net,
        "mj_net_flag": net_flag, "mj_net_raw": pw.get("mj_per_frame_net"),
        "fps_ratio": _get(result, "compare", "fps_ratio"), "accuracy": acc_text, "agreement": agree_text,
        "accuracy_source": acc_src,
        "power_display": pw.get("display") or ("n/a ({})".format(pw.get("reason")) if pw.get("reason") else "n/a"),
        "power_available": bool(pw.get("available")),
    }
