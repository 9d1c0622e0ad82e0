"""Latency statistics and throughput.

Percentiles use linear interpolation between order statistics (numpy's default method), so they
match ``numpy.percentile``; trtexec reports a nearest-rank percentile instead, which differs by at
most one sample. The standard deviation is the population one (ddof=0); the coefficient of
variation is std / mean.
"""

import math

import numpy as np

PERCENTILES = (50, 90, 95, 99)


def percentile_sorted(sorted_values, q):
    """Linear-interpolation percentile of an ascending array.

    Args:
        sorted_values (np.ndarray): ascending values, at least one.
        q (float): percentile in [0, 100].

    Returns:
        float: the same value ``numpy.percentile(values, q)`` gives.
    """
    n = len(sorted_values)
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    pos = (n - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


def latency_stats(latencies_ms, percentiles=PERCENTILES):
    """min/mean/pXX/max/std/CV of per-iteration latencies.

    Args:
        latencies_ms (Sequence[float]): one latency per iteration, in milliseconds.
        percentiles (Sequence[int]): which percentiles to report. Defaults to 50, 90, 95, 99.

    Returns:
        dict: ``count, min_ms, mean_ms, p50_ms, ..., max_ms, std_ms, cv`` (empty input gives
        ``count`` 0 and None for the rest).
    """
    values = np.asarray(latencies_ms, dtype=np.float64).ravel()
    out = {"count": int(values.size)}  # type: Dict[str, Optional[float]]
    keys = ["min_ms", "mean_ms"] + [f"p{p}_ms" for p in percentiles] + ["max_ms", "std_ms", "cv"]
    if values.size == 0:
        out.update({k: None for k in keys})
        return out
    ordered = np.sort(values)
    mean = float(ordered.mean())
    std = float(ordered.std())
    out["min_ms"] = float(ordered[0])
    out["mean_ms"] = mean
    for p in percentiles:
        out[f"p{p}_ms"] = percentile_sorted(ordered, p)
    out["max_ms"] = float(ordered[-1])
    out["std_ms"] = std
    out["cv"] = std / mean if mean > 0 else None
    return out


def throughput(frames, seconds):
    """Frames per second over a wall-clock window (None for an empty window)."""
    if seconds is None or seconds <= 0:
        return None
    return float(frames) / float(seconds)


def summarize(latencies_ms, frames, window_s, batch=1):
    """Statistics plus throughput of one measured window.

    Args:
        latencies_ms (Sequence[float]): per-iteration latencies.
        frames (int): images processed in the window (iterations x batch).
        window_s (float): wall time of the window, from the first start to the last end.
        batch (int): images per iteration.

    Returns:
        dict: ``latency_ms`` (see :func:`latency_stats`) and ``throughput`` (fps, iterations per
        second, frames, iterations, window_s, batch).
    """
    stats = latency_stats(latencies_ms)
    iterations = stats["count"]
    return {
        "latency_ms": stats,
        "throughput": {
            "fps": throughput(frames, window_s),
            "iterations_per_s": throughput(iterations, window_s),
            "frames": int(frames),
            "iterations": int(iterations),
            "window_s": float(window_s),
            "batch": int(batch),
        },
    }


def format_ms(value, digits=2):
    """'12.34', or 'n/a' for None and for a value that is not finite (no "inf" or "nan" in a table)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return "{:.{}f}".format(value, digits)


__all__ = ["latency_stats", "percentile_sorted", "throughput", "summarize", "format_ms", "PERCENTILES"]
