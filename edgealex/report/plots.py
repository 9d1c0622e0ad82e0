"""The report's figures as PNG bytes (matplotlib, Agg backend, imported here only)."""

import io

import numpy as np

from edgealex._optional import require
from edgealex.report.data import latencies, power_series, row

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


def _note(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _name(result):
    return "{} b{}".format(result.get("label") or result.get("run_id"), result.get("batch"))


def latency_cdf(results):
    """Empirical CDF of per-iteration latency, one line per run."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = 0
    for r in results[:MAX_SERIES]:
        lat = np.sort(latencies(r))
        if lat.size == 0:
            continue
        ax.step(lat, np.arange(1, lat.size + 1) / lat.size, where="post", label=_name(r))
        drawn += 1
    if drawn:
        ax.set_xscale("log")
        ax.set_xlabel("latency per iteration (ms, log scale)")
        ax.set_ylabel("fraction of iterations")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    else:
        _note(ax, "no per-iteration traces in these results")
    ax.set_title("Latency CDF")
    return _png(fig)


def throughput_vs_batch(results):
    """fps against batch size, one line per engine/baseline."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    series = {}
    for r in results:
        fps = (r.get("throughput") or {}).get("fps")
        if fps is None or r.get("batch") is None:
            continue
        series.setdefault(r.get("label") or r.get("run_id"), []).append((int(r["batch"]), fps))
    for label, points in list(series.items())[:MAX_SERIES]:
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    if series:
        batches = sorted({p[0] for pts in series.values() for p in pts})
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches)
        ax.set_xticklabels([str(b) for b in batches])
        ax.set_xlabel("batch size")
        ax.set_ylabel("throughput (images/s)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    else:
        _note(ax, "no throughput figures in these results")
    ax.set_title("Throughput vs batch")
    return _png(fig)


def power_trace(results):
    """Power over time per run, measured window shaded, idle window and baseline marked."""
    plt = _plt()
    with_power = [r for r in results if power_series(r) is not None][:MAX_POWER_PANELS]
    if not with_power:
        fig, ax = plt.subplots(figsize=(7, 2.5))
        reasons = sorted({row(r)["power_display"] for r in results})
        _note(ax, "no power samples: " + "; ".join(reasons)[:400])
        ax.set_title("Power trace")
        return _png(fig)
    fig, axes = plt.subplots(len(with_power), 1, figsize=(7, 2.4 * len(with_power)), squeeze=False,
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
        ax.set_title(_name(r), fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, loc="upper right")
    axes[-1, 0].set_xlabel("time relative to the measured window start (s)")
    fig.suptitle("Power trace")
    return _png(fig)


def energy_bars(results):
    """mJ per frame, gross and net of idle, one pair of bars per run."""
    plt = _plt()
    rows = [row(r) for r in results][:MAX_SERIES * 2]
    fig, ax = plt.subplots(figsize=(7, 4))
    have = [x for x in rows if x["mj_gross"] is not None]
    if not have:
        _note(ax, "energy per frame n/a: " + "; ".join(sorted({x["power_display"] for x in rows}))[:400])
        ax.set_title("Energy per frame")
        return _png(fig)
    pos = np.arange(len(have))
    gross = [x["mj_gross"] for x in have]
    net = [x["mj_net"] if x["mj_net"] is not None else 0.0 for x in have]
    ax.bar(pos - 0.2, gross, width=0.4, label="gross")
    ax.bar(pos + 0.2, net, width=0.4, label="net of idle")
    for i, x in enumerate(have):
        if x["mj_net"] is None:
            ax.text(pos[i] + 0.2, 0, "no idle", ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks(pos)
    ax.set_xticklabels(["{} b{}".format(x["label"], x["batch"]) for x in have], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("mJ per frame")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Energy per frame")
    return _png(fig)


PLOTS = (
    ("latency_cdf", "Latency CDF", latency_cdf),
    ("throughput_vs_batch", "Throughput vs batch", throughput_vs_batch),
    ("power_trace", "Power trace", power_trace),
    ("energy_per_frame", "Energy per frame", energy_bars),
)
