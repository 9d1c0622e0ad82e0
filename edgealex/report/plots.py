"""The report's figures as PNG bytes (matplotlib, Agg backend, imported here only).

A plot function returns None when it has nothing to draw (no power samples, a single batch size):
the report then says so in a sentence instead of showing empty axes. Legends sit outside the
axes so they never cover a curve; log axes are labelled 1, 2, 5, 10, 20, ... rather than 2x10^1.
"""

import io

import numpy as np

from edgealex._optional import require
from edgealex.report.data import display_names, latencies, latency_kind, power_series, row

MAX_SERIES = 12
MAX_POWER_PANELS = 6


def _plt():
    matplotlib = require("matplotlib", "edgealex report")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def _readable_log_axis(ax, lo, hi, axis="x"):
    """Ticks printed as plain numbers: 1, 2, 5 x 10^k over up to 2.5 decades (0.5, 1, 2, 5, 10, 20 ms),
    powers of ten over a wider range."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    decades = np.log10(max(hi, 1e-12) / max(lo, 1e-12))
    target.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def _legend_outside(ax):
    """Legend to the right of the axes: never over a curve."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)


def latency_cdf(results):
    """Empirical CDF of per-iteration latency, one line per run (loop runs: end to end per frame,
    the quantity of their p50/p99), or None without traces."""
    plt = _plt()
    names = display_names(results)
    series = []
    for r, name in list(zip(results, names))[:MAX_SERIES]:
        lat = np.sort(latencies(r))
        if lat.size:
            series.append((name + (" (end-to-end)" if latency_kind(r) == "end-to-end" else ""), lat))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, lat in series:
        ax.step(lat, np.arange(1, lat.size + 1) / lat.size, where="post", label=name)
    ax.set_xscale("log")
    _readable_log_axis(ax, min(float(lat[0]) for _, lat in series), max(float(lat[-1]) for _, lat in series))
    ax.set_xlabel("latency (ms, log scale): one inference, or end to end per frame for loop runs")
    ax.set_ylabel("fraction of iterations")
    ax.grid(True, which="both", alpha=0.3)
    _legend_outside(ax)
    ax.set_title("Latency CDF")
    return _png(fig)


def batch_series(results):
    """{label: [(batch, fps), ...]} of engine/compare runs."""
    series = {}
    for r in results:
        fps = (r.get("throughput") or {}).get("fps")
        if fps is None or r.get("batch") is None or r.get("mode") == "loop":
            continue
        series.setdefault(r.get("label") or r.get("run_id"), []).append((int(r["batch"]), fps))
    return series


def throughput_vs_batch(results):
    """fps against batch size, one line per engine/baseline; None when no engine has two batch sizes
    (the table's fps column already says everything)."""
    series = {k: sorted(v) for k, v in batch_series(results).items()}
    if not any(len({b for b, _ in pts}) >= 2 for pts in series.values()):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, points in list(series.items())[:MAX_SERIES]:
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    batches = sorted({p[0] for pts in series.values() for p in pts})
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches)
    ax.set_xticklabels([str(b) for b in batches])
    ax.minorticks_off()
    ax.set_xlabel("batch size")
    ax.set_ylabel("throughput (images/s)")
    ax.grid(True, alpha=0.3)
    _legend_outside(ax)
    ax.set_title("Throughput vs batch")
    return _png(fig)


def power_trace(results):
    """Power over time per run, measured window shaded, idle window and baseline marked; None
    without power samples."""
    with_power = [r for r in results if power_series(r) is not None][:MAX_POWER_PANELS]
    if not with_power:
        return None
    plt = _plt()
    names = dict(zip([id(r) for r in results], display_names(results)))
    fig, axes = plt.subplots(len(with_power), 1, figsize=(8, 2.4 * len(with_power)), squeeze=False,
                             constrained_layout=True)
    for ax, r in zip(axes[:, 0], with_power):
        t, w = power_series(r)
        pw = r.get("power") or {}
        win = pw.get("window") or {}
        ax.plot(t, w, lw=0.8, color="tab:blue", label="power")
        if win:
            ax.axvspan(win.get("start_s", 0.0), win.get("end_s", 0.0), color="tab:green", alpha=0.15,
                       label="measured window")
        idle = pw.get("idle") or {}
        if idle.get("power_w") is not None:
            ax.axvspan(idle["start_s"], idle["end_s"], color="tab:gray", alpha=0.2, label="idle window")
            ax.axhline(idle["power_w"], color="tab:gray", ls="--", lw=1, label="idle {:.2f} W".format(idle["power_w"]))
        if pw.get("avg_power_w") is not None:
            ax.axhline(pw["avg_power_w"], color="tab:green", ls=":", lw=1,
                       label="window avg {:.2f} W".format(pw["avg_power_w"]))
        ax.set_ylabel("W")
        ax.set_title(names[id(r)], fontsize=9)
        ax.grid(True, alpha=0.3)
        _legend_outside(ax)
    axes[-1, 0].set_xlabel("time relative to the measured window start (s)")
    fig.suptitle("Power trace")
    return _png(fig)


def energy_bars(results):
    """mJ per frame, gross and net of idle, one pair of bars per run; None without energy figures.
    A net below zero (idle drew more than the load: a drifting sensor or a busy idle window) is
    not drawn as a negative bar but marked "net below idle"."""
    names = display_names(results)
    rows = [row(r, n) for r, n in zip(results, names)][:MAX_SERIES * 2]
    have = [x for x in rows if x["mj_gross"] is not None]
    if not have:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    pos = np.arange(len(have))
    ax.bar(pos - 0.2, [x["mj_gross"] for x in have], width=0.4, label="gross")
    ax.bar(pos + 0.2, [x["mj_net"] if x["mj_net"] is not None else 0.0 for x in have], width=0.4, label="net of idle")
    for i, x in enumerate(have):
        if x["mj_net"] is None:
            text = "net " + x["mj_net_flag"] if x["mj_net_flag"] else "no idle"
            ax.text(pos[i] + 0.2, 0, text, ha="center", va="bottom", fontsize=6, rotation=90, color="tab:red")
    ax.set_xticks(pos)
    ax.set_xticklabels([x["name"] for x in have], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("mJ per frame")
    ax.grid(True, axis="y", alpha=0.3)
    _legend_outside(ax)
    ax.set_title("Energy per frame")
    return _png(fig)


PLOTS = (
    ("latency_cdf", "Latency CDF", latency_cdf),
    ("throughput_vs_batch", "Throughput vs batch", throughput_vs_batch),
    ("power_trace", "Power trace", power_trace),
    ("energy_per_frame", "Energy per frame", energy_bars),
)
