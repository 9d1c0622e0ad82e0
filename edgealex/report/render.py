"""Markdown and self-contained HTML from benchmark results."""

import base64
import html
import os
from dataclasses import dataclass, field
from typing import List

from edgealex.artifacts import now_iso, staging_dir, write_bytes_atomic, write_text_atomic
from edgealex.report.data import load_results, row

COLUMNS = (("label", "run"), ("mode", "mode"), ("backend", "backend"), ("precision", "precision"),
           ("device", "device"), ("batch", "batch"), ("fps", "fps"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
           ("power_w", "W"), ("mj_gross", "mJ/frame"), ("mj_net", "net mJ/frame"), ("fps_ratio", "fps x first"),
           ("agreement", "agreement"), ("status", "status"))


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


def _fmt(key, value):
    if value is None:
        return "n/a"
    if key == "agreement":
        return f"{value:.1%}"
    if key in ("fps",):
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
        text = "{} ({}, {} CPUs, Python {}, target {})".format(
            env.get("hostname"), env.get("cpu_model") or env.get("machine"), env.get("cpu_count"), env.get("python"),
            env.get("target"))
        if text not in seen:
            seen.append(text)
    return seen


def _notes(results):
    """One line per measured run; runs without power that share a reason are listed on one line."""
    notes, unmeasured = [], {}
    for r in results:
        pw = r.get("power") or {}
        meter = pw.get("meter") or {}
        if pw.get("available"):
            text = "{}: {} — {} ({} samples, {} Hz)".format(
                r.get("label"), meter.get("meter"), meter.get("total"), meter.get("samples"),
                "{:.1f}".format(meter["achieved_rate_hz"]) if meter.get("achieved_rate_hz") else "?")
            if text not in notes:
                notes.append(text)
        else:
            unmeasured.setdefault(pw.get("display") or "n/a", []).append(str(r.get("label")))
    for display, labels in unmeasured.items():
        who = "all runs" if len(labels) == len(results) else ", ".join(sorted(set(labels), key=labels.index))
        notes.append(f"{who}: power {display}")
    return notes


def render_report(paths, out_dir, title="edgealex benchmark report"):
    """Write ``report.md`` (+ PNGs in ``plots/``) and a self-contained ``report.html``.

    Args:
        paths (List[str]): result JSON files or folders holding them.
        out_dir (str): report folder.
        title (str): page title.

    Returns:
        ReportResult: paths written and the number of runs.

    Raises:
        EdgeAlexError: no results among ``paths``, matplotlib missing.
    """
    from edgealex.report.plots import PLOTS

    results, skipped = load_results(paths)
    out_dir = os.path.abspath(str(out_dir))
    images = []
    # Built in a staging folder and swapped in at the end: a failure (a full disk) leaves the
    # previous report, and no empty plots/ folder.
    with staging_dir(out_dir, "report folder", owned=_report_files) as stage:
        os.mkdir(os.path.join(stage, "plots"))
        for key, caption, fn in PLOTS:
            png = fn(results)
            write_bytes_atomic(os.path.join(stage, "plots", key + ".png"), png)
            images.append((key, caption, os.path.join(out_dir, "plots", key + ".png"), png))
        rows = [row(r) for r in results]
        md = _markdown(title, results, rows, images, skipped)
        write_text_atomic(os.path.join(stage, "report.md"), md)
        page = _html(title, results, rows, images, skipped)
        write_text_atomic(os.path.join(stage, "report.html"), page)
    return ReportResult(os.path.join(out_dir, "report.md"), os.path.join(out_dir, "report.html"),
                        [i[2] for i in images], len(results), skipped)


REPORT_FILES = ("report.md", "report.html", "plots")


def _report_files(out_dir):
    """The previous report's entries in ``out_dir`` (other files there are left alone)."""
    return [name for name in REPORT_FILES if os.path.lexists(os.path.join(out_dir, name))]


def _markdown(title, results, rows, images, skipped):
    lines = ["# " + title, "", f"Generated {now_iso()} from {len(results)} run(s).", ""]
    lines += ["Machine(s): " + "; ".join(_machines(results)), ""]
    lines.append("| " + " | ".join(c[1] for c in COLUMNS) + " |")
    lines.append("|" + "|".join("---" for _ in COLUMNS) + "|")
    for x in rows:
        lines.append("| " + " | ".join(_fmt(k, x[k]).replace("|", "/") for k, _ in COLUMNS) + " |")
    lines += ["", "Latency is the host-observed time of one synchronous inference (trtexec's `latencyMs`); "
              "p50/p99 interpolate linearly between samples. Energy is integrated over exactly the measured "
              "window; net subtracts the idle baseline x window.", ""]
    lines += ["## Power", ""] + ["- " + n for n in _notes(results)] + [""]
    for key, caption, path, _ in images:
        lines += ["## " + caption, "", f"![{caption}](plots/{os.path.basename(path)})", ""]
    if skipped:
        lines += ["## Skipped files", ""] + [f"- {p}: {why}" for p, why in skipped] + [""]
    return "\n".join(lines)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f0f0f0}td.l{text-align:left}img{max-width:100%;border:1px solid #eee}
.note{color:#555;font-size:13px}"""


def _html(title, results, rows, images, skipped):
    e = html.escape
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">", f"<title>{e(title)}</title>",
           f"<style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>",
           "<p class=\"note\">Generated {} from {} run(s). Machine(s): {}</p>".format(
               e(now_iso()), len(results), e("; ".join(_machines(results)))),
           "<h2>Comparison</h2>", "<table><thead><tr>"]
    out += [f"<th>{e(c[1])}</th>" for c in COLUMNS]
    out.append("</tr></thead><tbody>")
    for x in rows:
        cells = []
        for k, _ in COLUMNS:
            cls = " class=\"l\"" if k in ("label", "mode", "backend", "precision", "device", "status") else ""
            cells.append(f"<td{cls}>{e(_fmt(k, x[k]))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    out.append("<p class=\"note\">Latency: host-observed time of one synchronous inference (trtexec's latencyMs). "
               "Energy: integrated over exactly the measured window; net subtracts idle power x window.</p>")
    out.append("<h2>Power</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in _notes(results)) + "</ul>")
    for key, caption, _, png in images:
        data = base64.b64encode(png).decode("ascii")
        out.append(f"<h2 id=\"{e(key)}\">{e(caption)}</h2>")
        out.append(f"<img alt=\"{e(caption)}\" src=\"data:image/png;base64,{data}\">")
    if skipped:
        out.append("<h2>Skipped files</h2><ul>" + "".join(
            f"<li>{e(p)}: {e(w)}</li>" for p, w in skipped) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
