"""Energy over an exact time window, from power samples or from an energy counter.

Power samples are treated as a piecewise-linear P(t) through the sampled points: the energy in
``[start, end]`` is the trapezoid integral of that curve clipped exactly to the window, with P at
the window edges interpolated between the neighbouring samples (not the nearest sample, and not
the whole samples that overlap the window). Where the window reaches beyond the first or last
sample, P is held at that sample's value and the uncovered time is reported as
``extrapolated_s``.

Energy counters (RAPL ``energy_uj``, NVML total energy) are unwrapped into a cumulative series
(a decrease means the counter wrapped at its range), then read at the window edges by linear
interpolation between readings: E(end) - E(start).

Idle subtraction: ``net = gross - idle_power_w * window_s``; reported per frame next to the gross
figure, never instead of it (MLPerf reports gross, many papers report net; say which).
"""

from typing import Optional

import numpy as np


def _as_arrays(t_s, values):
    t = np.asarray(t_s, dtype=np.float64).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    if t.shape != v.shape:
        raise ValueError(f"timestamps and values differ in length ({t.size} vs {v.size})")
    if t.size > 1 and np.any(np.diff(t) < 0):
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
    return t, v


def _trapezoid(t, p):
    if t.size < 2:
        return 0.0
    return float(np.sum((p[1:] + p[:-1]) * 0.5 * np.diff(t)))


def _uncovered(t, start_s, end_s):
    before = max(0.0, min(end_s, t[0]) - start_s)
    after = max(0.0, end_s - max(start_s, t[-1]))
    return before + after


def integrate_power(t_s, power_w, start_s, end_s):
    """Energy of sampled power over exactly ``[start_s, end_s]``.

    Args:
        t_s (Sequence[float]): sample times in seconds (any common clock).
        power_w (Sequence[float]): power at those times in watts.
        start_s (float): window start, same clock.
        end_s (float): window end, same clock; must not precede ``start_s``.

    Returns:
        dict: ``energy_j``, ``avg_power_w``, ``window_s``, ``samples_in_window`` (samples strictly
        inside the window), ``extrapolated_s`` (window time not bracketed by samples), or None when
        there are no samples at all.

    Raises:
        ValueError: when the window is reversed or the arrays differ in length.
    """
    if end_s < start_s:
        raise ValueError(f"window end {end_s} precedes its start {start_s}")
    t, p = _as_arrays(t_s, power_w)
    if t.size == 0:
        return None
    window = float(end_s - start_s)
    inside = (t > start_s) & (t < end_s)
    edge_p = np.interp([start_s, end_s], t, p)  # holds the end values outside the sampled range
    tt = np.concatenate(([start_s], t[inside], [end_s]))
    pp = np.concatenate(([edge_p[0]], p[inside], [edge_p[1]]))
    energy = _trapezoid(tt, pp)
    if window == 0.0:
        avg = float(edge_p[0])
    else:
        avg = energy / window
    return {
        "energy_j": energy,
        "avg_power_w": avg,
        "window_s": window,
        "samples_in_window": int(inside.sum()),
        "extrapolated_s": _uncovered(t, start_s, end_s),
    }


def unwrap_counter(values, max_range=None):
    """A cumulative series from readings of a counter that wraps at ``max_range``.

    Args:
        values (Sequence[float]): counter readings in time order.
        max_range (float): the counter's range (it wraps from ``max_range`` back to 0), in the
            same unit. None: the counter never wraps, a decrease is an error.

    Returns:
        np.ndarray: readings made monotonic (first reading unchanged).

    Raises:
        ValueError: a decrease without a known range (the counter was reset).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size < 2:
        return v.copy()
    steps = np.diff(v)
    wrapped = steps < 0
    if wrapped.any():
        if not max_range:
            raise ValueError("the energy counter decreased (reset?) and its range is unknown")
        steps = np.where(wrapped, steps + float(max_range), steps)
    return np.concatenate(([v[0]], v[0] + np.cumsum(steps)))


def counter_delta(start, end, max_range=None):
    """Energy between two readings of a wrapping counter (at most one wrap in between)."""
    delta = float(end) - float(start)
    if delta < 0:
        if not max_range:
            raise ValueError("the energy counter decreased (reset?) and its range is unknown")
        delta += float(max_range)
    return delta


def _interp_extrapolate(t, e, x):
    """Linear interpolation of a cumulative series, extrapolating with the end segments' slopes."""
    if t.size == 1:
        return float(e[0])
    if x < t[0]:
        slope = (e[1] - e[0]) / (t[1] - t[0]) if t[1] > t[0] else 0.0
        return float(e[0] + slope * (x - t[0]))
    if x > t[-1]:
        slope = (e[-1] - e[-2]) / (t[-1] - t[-2]) if t[-1] > t[-2] else 0.0
        return float(e[-1] + slope * (x - t[-1]))
    return float(np.interp(x, t, e))


def integrate_counter(t_s, energy_j, start_s, end_s, max_range_j=None):
    """Energy over exactly ``[start_s, end_s]`` from cumulative energy-counter readings.

    Args:
        t_s (Sequence[float]): reading times in seconds.
        energy_j (Sequence[float]): raw counter readings converted to joules (may wrap).
        start_s (float): window start.
        end_s (float): window end.
        max_range_j (float): counter range in joules (RAPL ``max_energy_range_uj`` / 1e6).

    Returns:
        dict: as :func:`integrate_power`, or None when there are fewer than two readings.
    """
    if end_s < start_s:
        raise ValueError(f"window end {end_s} precedes its start {start_s}")
    t, raw = _as_arrays(t_s, energy_j)
    if t.size < 2:
        return None
    cum = unwrap_counter(raw, max_range_j)
    energy = _interp_extrapolate(t, cum, end_s) - _interp_extrapolate(t, cum, start_s)
    window = float(end_s - start_s)
    return {
        "energy_j": energy,
        "avg_power_w": energy / window if window > 0 else None,
        "window_s": window,
        "samples_in_window": int(((t > start_s) & (t < end_s)).sum()),
        "extrapolated_s": _uncovered(t, start_s, end_s),
    }


def counter_to_power(t_s, energy_j, max_range_j=None):
    """Power samples (midpoint times, watts) from counter readings, for plots and CSVs."""
    t, raw = _as_arrays(t_s, energy_j)
    if t.size < 2:
        return np.zeros(0), np.zeros(0)
    cum = unwrap_counter(raw, max_range_j)
    dt = np.diff(t)
    keep = dt > 0
    mid = (t[1:] + t[:-1])[keep] * 0.5
    return mid, np.diff(cum)[keep] / dt[keep]


def per_frame(window, frames, idle_power_w=None):
    """Energy-per-frame figures for one measured window.

    Args:
        window (dict): result of :func:`integrate_power` / :func:`integrate_counter`.
        frames (int): images processed in the window.
        idle_power_w (float): idle baseline power, or None when not measured.

    Returns:
        dict: ``energy_j``, ``avg_power_w``, ``window_s``, ``frames``, ``mj_per_frame_gross``,
        ``frames_per_joule``, and when the idle baseline is known ``idle_power_w``,
        ``idle_energy_j`` (baseline x window), ``net_energy_j``, ``net_power_w``,
        ``mj_per_frame_net``.
    """
    energy = float(window["energy_j"])
    duration = float(window["window_s"])
    out = dict(window)
    out["frames"] = int(frames)
    out["mj_per_frame_gross"] = energy * 1e3 / frames if frames > 0 else None
    out["frames_per_joule"] = frames / energy if energy > 0 else None
    out["idle_power_w"] = idle_power_w
    if idle_power_w is None:
        out.update(idle_energy_j=None, net_energy_j=None, net_power_w=None, mj_per_frame_net=None)
        return out
    idle_energy = float(idle_power_w) * duration
    net = energy - idle_energy
    out["idle_energy_j"] = idle_energy
    out["net_energy_j"] = net
    out["net_power_w"] = net / duration if duration > 0 else None
    out["mj_per_frame_net"] = net * 1e3 / frames if frames > 0 else None
    return out


def idle_power(window):
    """Average power of an idle window (dict from the integrators) or None."""
    if window is None:
        return None
    return window.get("avg_power_w")


def format_w(value: Optional[float], digits=2):
    return "n/a" if value is None else "{:.{}f}".format(value, digits)


# A net energy below zero means the idle baseline drew more than the load: not a figure to print.
NET_BELOW_IDLE = "below idle"
NET_BELOW_IDLE_REASON = ("net mJ/frame \"below idle\": the idle baseline drew more than the load (sensor drift or "
                         "a busy idle window), so no net figure is reported; the gross figure stands")


def net_below_idle(mj_per_frame_net):
    """True when a net energy per frame is below zero (idle drew more than the load)."""
    return mj_per_frame_net is not None and mj_per_frame_net < 0


def format_net_mj(mj_per_frame_net, digits=2):
    """Net mJ/frame for tables (the bench CLI and the report): "n/a" when not measured,
    :data:`NET_BELOW_IDLE` (no negative number) below zero, else the figure; the reason once
    beside the table is :data:`NET_BELOW_IDLE_REASON`."""
    if mj_per_frame_net is None:
        return "n/a"
    if net_below_idle(mj_per_frame_net):
        return NET_BELOW_IDLE
    return "{:.{}f}".format(mj_per_frame_net, digits)
