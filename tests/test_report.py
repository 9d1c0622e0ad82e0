"""edgealex report: Markdown + self-contained HTML with every plot embedded, from real bench results."""

import base64
import html
import json
import os
import time
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

pytest.importorskip("matplotlib")
pytest.importorskip("onnxruntime")

from edgealex.cli.main import app  # noqa: E402
from test_bench_harness import tiny_onnx, trtexec_times  # noqa: E402

CAPTIONS = ["Latency CDF", "Throughput vs batch", "Power trace", "Energy per frame"]
PNG = b"\x89PNG\r\n\x1a\n"


def invoke(args):
    from edgealex.log import logger

    logger.handlers[:] = [h for h in logger.handlers if not getattr(h, "_edgealex", False)]
    return CliRunner().invoke(app, args)


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables, self.cells, self.headings, self._h = [], 0, [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        elif tag == "table":
            self.tables += 1
        elif tag in ("h1", "h2"):
            self._h = True

    def handle_endtag(self, tag):
        if tag in ("h1", "h2"):
            self._h = False

    def handle_data(self, data):
        if self._h:
            self.headings.append(data.strip())
        elif data.strip():
            self.cells.append(data.strip())


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """Real results: a batch sweep with a CSV meter and idle baseline, a compare run without power,
    and an imported trtexec trace."""
    tmp = tmp_path_factory.mktemp("report")
    model = tiny_onnx(tmp / "tiny.onnx", batch=None)
    log = tmp / "meter.csv"
    now = time.time()
    log.write_text("timestamp,watts\n" + "".join(
        f"{now + i * 0.05:.3f},{3.0 if i < 0 else 6.0}\n" for i in range(-600, 1200)))
    out = tmp / "res"
    r = invoke(["bench", model, "--batch", "1,2,4", "--duration", "0.2", "--warmup", "0.05", "--idle", "0.2",
                "--power", "csv:" + str(log), "-o", str(out), "--label", "metered"])
    assert r.exit_code == 0, r.output
    r = invoke(["bench", model, "--mode", "compare", "--baselines", "ort", "--iterations", "20",
                "--warmup-iters", "1", "--power", "none", "-o", str(out)])
    assert r.exit_code == 0, r.output
    times = tmp / "times.json"
    trtexec_times(times)
    r = invoke(["bench", "--import-trtexec", str(times), "-o", str(out), "--label", "trtexec-run"])
    assert r.exit_code == 0, r.output
    return out


def test_report_html_is_self_contained_with_every_plot(results_dir, tmp_path):
    out = tmp_path / "report"
    r = invoke(["report", str(results_dir), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "6 run(s)" in r.output
    page = Page()
    html_text = (out / "report.html").read_text()
    page.feed(html_text)
    page.close()
    assert page.tables == 1
    assert [img["alt"] for img in page.images] == CAPTIONS
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1])[:8] == PNG
    assert "src=\"http" not in html_text and "<link" not in html_text  # nothing external
    for caption in CAPTIONS:
        assert caption in page.headings
    # the comparison table: energy where metered, n/a where not, the trtexec import listed
    assert "trtexec" in page.cells and "ort-bare" in page.cells
    assert "n/a" in page.cells


def test_report_markdown_and_png_files(results_dir, tmp_path):
    out = tmp_path / "report"
    r = invoke(["report", str(results_dir / "*.json"), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["runs"] == 6 and len(info["images"]) == 4
    for path in info["images"]:
        with open(path, "rb") as handle:
            assert handle.read(8) == PNG
    md = (out / "report.md").read_text()
    assert "| run | mode | backend | precision | device | batch | fps |" in md
    for caption in CAPTIONS:
        assert f"![{caption}](plots/" in md
    lines = [line for line in md.splitlines() if line.startswith("| tiny b") and "| engine |" in line]
    assert len(lines) == 3  # the batch sweep 1, 2, 4
    assert all("n/a" not in line.split("|")[13] for line in lines)  # mJ/frame measured from the meter log
    # the compare run at batch 1 and the sweep's batch 1 get distinct names
    assert "| tiny b1 (engine) |" in md and "| tiny b1 (compare) |" in md


def test_report_without_power_or_batch_sweep_says_so_in_a_sentence(tmp_path):
    """Issue 17 items 3-4: no sensor -> no empty power/energy axes, one short sentence naming what to
    install or attach, the per-run reasons once in a collapsible detail; one batch size -> a table
    cell, not a one-point plot; accuracy 'not measured' without labelled images."""
    from edgealex.report import render_report
    from edgealex.report.render import POWER_OFF_SENTENCE

    model = tiny_onnx(tmp_path / "tiny.onnx")
    res = tmp_path / "res"
    for _ in range(2):
        r = invoke(["bench", model, "--iterations", "10", "--warmup-iters", "1", "--power", "none", "-o", str(res)])
        assert r.exit_code == 0, r.output
    result = render_report([str(res)], str(tmp_path / "rep"))
    assert [os.path.basename(p) for p in result.images] == ["latency_cdf.png"]
    html_text = open(result.html).read()
    page = Page()
    page.feed(html_text)
    assert [img["alt"] for img in page.images] == ["Latency CDF"]
    # --power none: measurement was switched off, so no advice on what to install (follow-up D)
    assert POWER_OFF_SENTENCE in page.cells and len(POWER_OFF_SENTENCE) < 300 and "install" not in html_text
    assert html_text.count("power measurement disabled") == 1  # the reason once, inside <details>
    assert html_text.index("<details>") < html_text.index("power measurement disabled")
    assert "One batch size per engine, so no curve." in page.cells
    assert any(c.startswith("b1: ") and c.endswith("img/s") for c in page.cells)
    assert page.cells.count("not measured") == 4  # accuracy and agreement of both runs
    # the two identical runs keep apart in the table and the legend
    assert "tiny b1 #1" in page.cells and "tiny b1 #2" in page.cells


def test_report_skips_other_json_and_fails_cleanly_without_results(tmp_path):
    (tmp_path / "other.json").write_text('{"artifact": "engine"}')
    r = invoke(["report", str(tmp_path / "other.json"), "-o", str(tmp_path / "rep")])
    assert r.exit_code == 1 and "no benchmark results found" in r.output and "Traceback" not in r.output
    r = invoke(["report", str(tmp_path / "missing.json"), "-o", str(tmp_path / "rep")])
    assert r.exit_code == 1 and "no such result file" in r.output


def test_report_reads_a_run_that_was_killed_mid_measurement(tmp_path):
    """A 'measuring' record (crash) has no statistics yet: it is listed with its status, not plotted."""
    from edgealex.bench.result import RunRecord
    from edgealex.report import render_report

    rec = RunRecord(str(tmp_path), "crashed-run", {"label": "crashed", "mode": "engine", "batch": 1,
                                                 "engine": {"backend": "ort", "precision": "int8", "device": "cpu"}})
    rec.set_status("started")
    rec.set_status("measuring")
    result = render_report([str(tmp_path)], str(tmp_path / "rep"))
    md = open(result.markdown).read()
    assert "| crashed b1 | engine | ort | int8 | cpu | 1 | n/a |" in md and "measuring" in md


def test_ort_native_int8_row_shows_the_ort_models_holdout_agreement(tmp_path):
    """Issue 17 follow-up A: an ORT-native INT8 engine's row shows calibration.json's
    agreements.int8_ort (not the Q/DQ model's calibration_agreement) beside accuracy.int8_ort."""
    import shutil

    from test_bench_harness import noise_calibration

    model, _ = noise_calibration(tmp_path)
    calib = tmp_path / "calib"
    manifest = json.loads((calib / "calibration.json").read_text())
    manifest["agreements"]["int8_ort"], manifest["accuracy"]["int8_ort"] = 0.9, 0.1
    (calib / "calibration.json").write_text(json.dumps(manifest))
    r = invoke(["build", model, "--target", "cpu", "--precision", "int8", "--calib", str(calib), "-o",
                str(tmp_path / "eng")])
    assert r.exit_code == 0, r.output
    engine = [str(p) for p in (tmp_path / "eng").glob("*int8*.onnx")]
    r = invoke(["bench"] + engine + ["--iterations", "3", "--warmup-iters", "1", "--power", "none", "-o",
                                      str(tmp_path / "res")])
    assert r.exit_code == 0, r.output
    bench_output = r.output
    r = invoke(["report", str(tmp_path / "res"), "-o", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    (row,) = [line for line in (tmp_path / "rep" / "report.md").read_text().splitlines() if "| tiny-int8" in line]
    assert "10.0% of 3 img (holdout)" in row and "90.0% of 3 img vs FP32 (holdout)" in row
    assert "10.0% of 3 img (holdout)" in bench_output  # the bench CLI says what the report says (follow-up D)
    assert "100.0%" not in row  # the Q/DQ model's figure is not shown for the ORT-native engine
    shutil.rmtree(str(calib))  # the engine sidecar carries the per-model agreements: still 90%, never the Q/DQ one
    r = invoke(["report", str(tmp_path / "res"), "-o", str(tmp_path / "rep2")])
    assert r.exit_code == 0, r.output
    (row,) = [line for line in (tmp_path / "rep2" / "report.md").read_text().splitlines() if "| tiny-int8" in line]
    assert "100.0%" not in row and "90.0% of 3 img vs FP32 (holdout)" in row


def test_net_energy_below_idle_reads_the_same_in_the_cli_and_the_report(tmp_path):
    """Issue 17 follow-up D: a net energy below zero is "below idle" (no negative figure) in the bench
    CLI table and the report table, with the reason said once in each; no sensor (not --power none)
    gives the sentence naming what to install or attach."""
    from edgealex.bench.energy import NET_BELOW_IDLE_REASON
    from edgealex.bench.harness import BenchOptions, run_bench, summary_lines
    from edgealex.report import render_report
    from edgealex.report.render import NO_POWER_SENTENCE

    model = tiny_onnx(tmp_path / "tiny.onnx")
    log = tmp_path / "meter.csv"
    now = time.time()
    log.write_text("timestamp,watts\n" + "".join(f"{now + i * 0.05:.3f},3.0\n" for i in range(-400, 1600)))
    res = tmp_path / "res"
    session = run_bench([model], BenchOptions(duration_s=0.2, warmup_s=0.05, idle_s=0.2, power="csv:" + str(log),
                                              progress=False), str(res))
    (d,) = session.results
    pw = d["power"]
    assert pw["available"] and pw["mj_per_frame_net"] is not None
    # the idle baseline taken as 6 W (a drifting sensor, a busy idle window): net recomputed as the
    # harness does (gross - idle W x window / frames) is below zero
    pw["idle"]["power_w"] = 6.0
    pw["mj_per_frame_net"] = pw["mj_per_frame_gross"] - 6.0 * pw["window_s"] * 1e3 / d["throughput"]["frames"]
    assert pw["mj_per_frame_net"] < 0
    with open(session.paths[0], "w") as handle:
        json.dump(d, handle)
    lines = summary_lines(session)
    row = lines[1]
    assert "below idle" in row and "{:.1f}".format(pw["mj_per_frame_net"]) not in row
    assert lines.count(NET_BELOW_IDLE_REASON) == 1
    assert row.split()[6] == "infer"  # the latency kind, never read as an infinite latency
    result = render_report([str(res)], str(tmp_path / "rep"))
    md = open(result.markdown).read()
    table_row = next(line for line in md.splitlines() if line.startswith("| tiny b1"))
    assert "| below idle |" in table_row and "(-" not in table_row
    assert md.count(NET_BELOW_IDLE_REASON) == 1 and "not reported\n" not in md
    html_text = open(result.html).read()
    assert html_text.count("below idle (-") == 0

    # a meter that finds no sensor (RAPL under an empty sysfs): the advice sentence
    empty = tmp_path / "sysfs"
    empty.mkdir()
    res2 = tmp_path / "res2"
    run_bench([model], BenchOptions(iterations=3, warmup_iters=1, power="rapl", sysfs_root=str(empty),
                                    progress=False), str(res2))
    html2 = open(render_report([str(res2)], str(tmp_path / "rep2")).html).read()
    assert html.escape(NO_POWER_SENTENCE) in html2


def test_format_ms_never_prints_inf_or_nan():
    from edgealex.bench.stats import format_ms

    assert [format_ms(v) for v in (float("inf"), float("nan"), None, 1.234)] == ["n/a", "n/a", "n/a", "1.23"]


def test_files_that_are_not_results_are_named_in_a_sentence(tmp_path):
    """Issue 17 follow-up F: `report README.md` says README.md is not JSON (not "1 JSON files are not
    bench results"); several are counted in the plural and named."""
    (tmp_path / "README.md").write_text("# results\n")
    (tmp_path / "other.json").write_text('{"artifact": "engine"}')
    r = invoke(["report", str(tmp_path / "README.md"), "-o", str(tmp_path / "rep")])
    assert r.exit_code == 1 and "no benchmark results found (README.md is not JSON)" in r.output, r.output
    r = invoke(["report", str(tmp_path / "README.md"), str(tmp_path / "other.json"), "-o", str(tmp_path / "rep")])
    assert r.exit_code == 1 and "2 files are not bench results: README.md (not JSON), other.json (" in r.output
    assert "JSON files" not in r.output
