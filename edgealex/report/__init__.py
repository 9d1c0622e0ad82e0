"""Reports from benchmark results: a Markdown file and a self-contained HTML page.

``render_report(paths, out_dir)`` reads ``edgealex bench`` results (and imported trtexec traces)
and writes ``report.md`` (PNG plots next to it) and ``report.html`` (the same plots embedded as
base64 PNG, no external files). matplotlib is imported only when plotting (Agg backend).
"""

from edgealex.report.render import ReportResult, collect_results, render_report

__all__ = ["render_report", "collect_results", "ReportResult"]
