"""Markdown and self-contained HTML from benchmark results."""

import base64
import html
import os
from dataclasses import dataclass, field
from typing import List

from edgealex.artifacts import now_iso, staging_dir, write_bytes_atomic, write_text_atomic
from edgealex.report.data import display_names, load_results, row

# fps is what the subject delivered (a loop row: frames through the whole pipeline); engine fps is
# inference alone. "latency" names what p50/p99 measure on that row.
COLUMNS = (("name", "run"), ("mode", "mode"), ("backend", "backend"), ("precision", "precision"),
           ("device", "device"), ("batch", "batch"), ("fps", "fps"), ("engine_fps", "engine fps"),
           ("latency_kind", "latency"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
           ("power_w", "W"), ("mj_gross", "mJ/frame"), ("mj_net", "net mJ/frame"), ("fps_ratio", "fps x first"),
           ("accuracy", "accuracy"), ("agreement", "agreement"), ("status", "status"))
TEXT_COLUMNS = ("name", "mode", "backend", "precision", "device", "latency_kind", "accuracy", "agreement", "status")
LATENCY_NOTE = ("p50/p99 of the \"latency\" column's quantity: \"inference\" is the host-observed time of one "
                "synchronous inference (trtexec's latencyMs); \"end-to-end\" (loop rows) runs from the start of a "
                "frame's capture to the end of its sinks. Loop rows: fps is the pipeline's, engine fps is inference "
                "alone. Accuracy and agreement come only from labelled images (bench --eval-images, the calibration "
                "holdout, or the frame source's ground truth) and carry their count.")


@dataclass
class ReportResult:
    markdown: str
    html: str
    images: List[str] = field(default_factory=list)
    runs: int = 0
    skipped: list = field(default_factory=list)

    def to_dict(self):
        return {"markdown": self.markdown, "html": self.html, "images": self.images, "runs": self.runs,
                "skipped": [list(s) for s in self.skipped]}


def _fmt(key, value, x=None):
    if key == "mj_net" and x is not None and x.get("mj_net_flag"):
        return x["mj_net_flag"]
    if value is None:
        return "n/a"
    if key in ("fps", "engine_fps"):
        return f"{value:.1f}"
    if key in ("mj_gross", "mj_net"):
        return f"{value:.2f}"
    if key == "fps_ratio":
        return f"{value:.2f}x"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def collect_results(paths):
    """(results, skipped) — see :func:`edgealex.report.data.load_results`."""
    return load_results(paths)


def _machines(results):
    seen = []
    for r in results:
        env = r.get("environment") or {}
        cpu = ", ".join(str(v) for v in (env.get("cpu_model") or env.get("machine"), env.get("cpu_isa")) if v)
        text = "{} ({}, {} CPUs, Python {}, target {})".format(
            env.get("hostname"), cpu or None, env.get("cpu_count"), env.get("python"), env.get("target"))
        if text not in seen:
            seen.append(text)
    return seen


NO_POWER_SENTENCE = ("No power was measured on this machine: on a Jetson use the on-board INA3221 sensors "
                     "(--power ina3221) or install jetson-stats (pip install 'edgealex[jetson]'); on a desktop GPU "
                     "install nvidia-ml-py (pip install 'edgealex[nvml]'); or log an external meter and pass "
                     "--power csv:FILE.")


POWER_OFF_SENTENCE = "Power was not measured: these runs were benchmarked with --power none."


def _power(results):
    """(sentence or None, detail lines): one short sentence when no run has power, else one line per run."""
    from edgealex.bench.energy import NET_BELOW_IDLE, NET_BELOW_IDLE_REASON, net_below_idle

    notes, unmeasured, below_idle = [], {}, False
    for r in results:
        pw = r.get("power") or {}
        meter = pw.get("meter") or {}
        if pw.get("available"):
            text = "{}: {} — {} ({} samples, {} Hz)".format(
                r.get("label"), meter.get("meter"), meter.get("total"), meter.get("samples"),
                "{:.1f}".format(meter["achieved_rate_hz"]) if meter.get("achieved_rate_hz") else "?")
            if net_below_idle(pw.get("mj_per_frame_net")):
                text += " — net mJ/frame " + NET_BELOW_IDLE
                below_idle = True
            if text not in notes:
                notes.append(text)
        else:
            unmeasured.setdefault(pw.get("display") or "n/a", []).append(str(r.get("label")))
    details = []
    for display, labels in unmeasured.items():
        who = "all runs" if len(labels) == len(results) else ", ".join(sorted(set(labels), key=labels.index))
        details.append(f"{who}: power {display}")
    if not notes:
        off = all(((r.get("config") or {}).get("power") or "").lower() == "none" for r in results)
        return (POWER_OFF_SENTENCE if off else NO_POWER_SENTENCE), details
    return None, notes + details + ([NET_BELOW_IDLE_REASON] if below_idle else [])


def render_report(paths, out_dir, title="edgealex benchmark report"):
    """Write ``report.md`` (+ PNGs in ``plots/``) and a self-contained ``report.html``.

    Args:
        paths (List[str]): result JSON files or folders holding them; saved ``edgealex run``
            summaries among them (``run --json`` output, the demo's ``run/summary.json``) fill the
            "Live inspection loop" section.
        out_dir (str): report folder.
        title (str): page title.

    Returns:
        ReportResult: paths written and the number of runs.

    Raises:
        EdgeAlexError: no results among ``paths``, matplotlib missing.
    """
    from edgealex.report.plots import PLOTS, batch_series

    loops = []
    results, skipped = load_results(paths, runs=loops)
    out_dir = os.path.abspath(str(out_dir))
    images = []
    # Built in a staging folder and swapped in at the end: a failure (a full disk) leaves the
    # previous report, and no empty plots/ folder.
    with staging_dir(out_dir, "report folder", owned=_report_files) as stage:
        os.mkdir(os.path.join(stage, "plots"))
        for key, caption, fn in PLOTS:
            png = fn(results)
            if png is None:  # nothing to draw: the report says so in a sentence or a table instead
                continue
            write_bytes_atomic(os.path.join(stage, "plots", key + ".png"), png)
            images.append((key, caption, os.path.join(out_dir, "plots", key + ".png"), png))
        rows = [row(r, n) for r, n in zip(results, display_names(results))]
        ctx = {"power": _power(results), "batches": batch_series(results), "loops": loops,
               "plotted": {i[0] for i in images}}
        md = _markdown(title, results, rows, images, skipped, ctx)
        write_text_atomic(os.path.join(stage, "report.md"), md)
        page = _html(title, results, rows, images, skipped, ctx)
        write_text_atomic(os.path.join(stage, "report.html"), page)
    return ReportResult(os.path.join(out_dir, "report.md"), os.path.join(out_dir, "report.html"),
                        [i[2] for i in images], len(results), skipped)


REPORT_FILES = ("report.md", "report.html", "plots")


def _report_files(out_dir):
    """The previous report's entries in ``out_dir`` (other files there are left alone)."""
    return [name for name in REPORT_FILES if os.path.lexists(os.path.join(out_dir, name))]


def _batch_table(rows):
    """[(run name, "b1: 61.5 img/s")] for the throughput cells (engine and compare runs)."""
    return [(x["name"], "b{}: {} img/s".format(x["batch"], _fmt("fps", x["fps"]))) for x in rows
            if x["mode"] != "loop" and x["fps"] is not None]


# What each delivery latency of a run summary ends at (the station sinks, issue 14).
DELIVERY_EVENTS = {"verdict": "verdict", "http": "frame sent to the viewers", "mqtt": "publish acknowledged",
                   "gpio": "reject pin set"}


def _loop_lines(loop):
    """Headline lines of a live inspection loop summary."""
    src = (loop.get("source") or {}).get("uri", "?")
    acc = loop.get("accuracy") or {}
    lines = ["source {}: {} frames in {:.1f} s, {} dropped".format(src, loop.get("frames"), loop.get("duration_s") or 0,
                                                                 loop.get("dropped")),
             "pipeline fps {} (frames through the whole loop), engine fps {} (inference alone)".format(
                 _fmt("fps", loop.get("pipeline_fps")), _fmt("fps", loop.get("engine_fps")))]
    e2e = loop.get("end_to_end_ms") or {}
    if e2e:
        lines.append("end-to-end latency per frame (capture start to sinks done): p50 {} ms, p99 {} ms".format(
            _fmt("p", e2e.get("p50")), _fmt("p", e2e.get("p99"))))
    for name, figures in (loop.get("delivery_ms") or {}).items():
        what = "delivery to {} (capture start to {})".format(name, DELIVERY_EVENTS.get(name, "delivered"))
        if not figures.get("count"):
            lines.append(what + ": nothing was delivered (e.g. no viewer connected)")
            continue
        lines.append("{}: p50 {} ms, p99 {} ms over {} frames".format(
            what, _fmt("p", figures.get("p50")), _fmt("p", figures.get("p99")), figures["count"]))
    if acc.get("top1") is not None:
        distinct = acc.get("distinct_images")
        lines.append("top-1 accuracy against the source's ground truth: {:.1%} of {} frames, {} distinct images".format(
            acc["top1"], acc.get("top1_frames"), "?" if distinct is None else distinct))
        det = acc.get("defect_detection") or {}
        if det.get("accuracy") is not None:
            lines.append("defect decision accuracy {:.1%} (tp {}, fp {}, tn {}, fn {})".format(
                det["accuracy"], det.get("tp"), det.get("fp"), det.get("tn"), det.get("fn")))
    else:
        lines.append("accuracy: not measured (the source has no ground truth)")
    return lines


def _markdown(title, results, rows, images, skipped, ctx):
    lines = ["# " + title, "", f"Generated {now_iso()} from {len(results)} run(s).", ""]
    lines += ["Machine(s): " + "; ".join(_machines(results)), ""]
    lines.append("| " + " | ".join(c[1] for c in COLUMNS) + " |")
    lines.append("|" + "|".join("---" for _ in COLUMNS) + "|")
    for x in rows:
        lines.append("| " + " | ".join(_fmt(k, x[k], x).replace("|", "/") for k, _ in COLUMNS) + " |")
    lines += ["", LATENCY_NOTE, "Energy is integrated over exactly the measured window; net subtracts the idle "
              "baseline x window.", ""]
    sentence, details = ctx["power"]
    lines += ["## Power", ""] + ([sentence, ""] if sentence else []) + ["- " + n for n in details] + [""]
    for loop in ctx["loops"]:
        lines += ["## Live inspection loop", ""] + ["- " + t for t in _loop_lines(loop)] + [""]
    if "throughput_vs_batch" not in ctx["plotted"] and ctx["batches"]:
        lines += ["## Throughput vs batch", "", "One batch size per engine, so no curve:", ""]
        lines += [f"- {label}: {cell}" for label, cell in _batch_table(rows)] + [""]
    for key, caption, path, _ in images:
        lines += ["## " + caption, "", f"![{caption}](plots/{os.path.basename(path)})", ""]
    if skipped:
        lines += ["## Skipped files", ""] + [f"- {p}: {why}" for p, why in skipped] + [""]
    return "\n".join(lines)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:12px;max-width:100%}
th,td{border:1px solid #ccc;padding:3px 5px;text-align:right}td{white-space:nowrap}
td.l{white-space:normal}td.name{white-space:normal;overflow-wrap:anywhere;min-width:12em}
th{background:#f0f0f0}td.l{text-align:left}img{max-width:100%;border:1px solid #eee}
.note{color:#555;font-size:13px}td.flag{color:#b00}details{font-size:13px;color:#555}"""


def _html(title, results, rows, images, skipped, ctx):
    e = html.escape
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">", f"<title>{e(title)}</title>",
           f"<style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>",
           "<p class=\"note\">Generated {} from {} run(s). Machine(s): {}</p>".format(
               e(now_iso()), len(results), e("; ".join(_machines(results)))),
           "<h2>Comparison</h2>", "<table id=\"comparison\"><thead><tr>"]
    out += [f"<th>{e(c[1])}</th>" for c in COLUMNS]
    out.append("</tr></thead><tbody>")
    for x in rows:
        cells = []
        for k, _ in COLUMNS:
            cls = " class=\"l name\"" if k == "name" else (" class=\"l\"" if k in TEXT_COLUMNS else "")
            if k == "mj_net" and x.get("mj_net_flag"):
                cls = " class=\"flag\""
            cells.append(f"<td{cls}>{e(_fmt(k, x[k], x))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    out.append(f"<p class=\"note\">{e(LATENCY_NOTE)} Energy: integrated over exactly the measured window; net "
               "subtracts idle power x window.</p>")
    sentence, details = ctx["power"]
    out.append("<h2 id=\"power\">Power</h2>")
    if sentence:
        out.append(f"<p id=\"no-power\">{e(sentence)}</p>")
        out.append("<details><summary>why, per run</summary><ul>" + "".join(
            f"<li>{e(n)}</li>" for n in details) + "</ul></details>")
    else:
        out.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in details) + "</ul>")
    for loop in ctx["loops"]:
        out.append("<h2 id=\"loop\">Live inspection loop</h2><ul>" + "".join(
            f"<li>{e(t)}</li>" for t in _loop_lines(loop)) + "</ul>")
    if "throughput_vs_batch" not in ctx["plotted"] and ctx["batches"]:
        out.append("<h2 id=\"throughput_vs_batch\">Throughput vs batch</h2>"
                   "<p class=\"note\">One batch size per engine, so no curve.</p><table id=\"batches\"><thead><tr>"
                   "<th>run</th><th>throughput per batch size</th></tr></thead><tbody>" + "".join(
                       f"<tr><td class=\"l\">{e(label)}</td><td class=\"l\">{e(cell)}</td></tr>"
                       for label, cell in _batch_table(rows)) + "</tbody></table>")
    for key, caption, _, png in images:
        data = base64.b64encode(png).decode("ascii")
        out.append(f"<h2 id=\"{e(key)}\">{e(caption)}</h2>")
        out.append(f"<img alt=\"{e(caption)}\" src=\"data:image/png;base64,{data}\">")
    if skipped:
        out.append("<h2>Skipped files</h2><ul>" + "".join(
            f"<li>{e(p)}: {e(w)}</li>" for p, w in skipped) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
