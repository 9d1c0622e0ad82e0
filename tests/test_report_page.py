"""The report as a browser shows it (issue 17 items 1-5): headless Chromium loads the generated page,
and the DOM it builds is checked: labelled accuracy with counts, loop rows saying what they measure,
negative net energy flagged, the live loop's accuracy with its distinct images."""

import json
import os
import shutil
import subprocess
import time

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")


def chromium(args, timeout=120):
    """Run headless Chromium (its own profile folder under the test's tmp) and return stdout."""
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars"] + args, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stdout.decode("utf-8", errors="replace")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from test_bench_harness import invoke
    from test_runtime_models import ort_engine, write_folder

    from edgealex.camera import open_source
    from edgealex.pipeline.loop import run_loop
    from edgealex.report import render_report
    from edgealex.runtime.registry import load_runner

    tmp = tmp_path_factory.mktemp("page")
    engine = ort_engine(tmp)
    write_folder(tmp / "eval", 3)  # 15 labelled images the colour classifier gets right
    res = tmp / "res"
    r = invoke(["bench", engine, "--mode", "compare", "--baselines", "ort", "--iterations", "20",
                "--warmup-iters", "1", "--power", "none", "--eval-images", str(tmp / "eval"), "-o", str(res)])
    assert r.exit_code == 0, r.output
    r = invoke(["bench", engine, "--mode", "loop", "--source", "synthetic://?width=96&height=64&fps=0",
                "--iterations", "12", "--warmup-iters", "1", "--power", "none", "-o", str(res)])
    assert r.exit_code == 0, r.output
    # a metered run (an external meter's log at a steady 3 W) ...
    log = tmp / "meter.csv"
    now = time.time()
    log.write_text("timestamp,watts\n" + "".join(f"{now + i * 0.05:.3f},3.0\n" for i in range(-400, 1600)))
    r = invoke(["bench", engine, "--duration", "0.3", "--warmup", "0.05", "--idle", "0.3", "--power", "csv:" + str(log),
                "--label", "metered", "-o", str(res)])
    assert r.exit_code == 0, r.output
    # ... whose idle baseline is then taken as 6 W (a drifting sensor, a busy idle window): the net
    # energy, recomputed as the harness does (gross - idle W x window / frames), is below zero
    path = next(p for p in res.glob("metered-*.json"))
    data = json.loads(path.read_text())
    pw = data["power"]
    pw["idle"]["power_w"] = 6.0
    pw["mj_per_frame_net"] = pw["mj_per_frame_gross"] - 6.0 * pw["window_s"] * 1e3 / data["throughput"]["frames"]
    assert pw["mj_per_frame_net"] < 0
    path.write_text(json.dumps(data))
    # the live loop, as `edgealex run --json` / the demo saves it, with the live page as a station sink
    from station_helpers import free_port

    from edgealex.camera.sink import open_sink
    with load_runner(engine) as runner:
        summary = run_loop(runner, open_source("synthetic://?width=96&height=64&fps=0&seed=5"),
                           [open_sink("http://127.0.0.1:{}".format(free_port()))], max_frames=30)
    (res / "run-summary.json").write_text(json.dumps(summary.to_dict()))
    return render_report([str(res)], str(tmp / "rep"), title="page test"), res


def test_report_rows_tell_what_they_measure(report):
    from edgealex.report.data import load_results

    result, res = report
    md = open(result.markdown).read()
    runs = {}
    for d in load_results([str(res)])[0]:
        runs.setdefault(d["mode"], []).append(d)
    # compare rows: accuracy and agreement from the 15 labelled images, with the count
    assert md.count("100.0% of 15 img") >= 2 and "reference" in md
    # the loop row: end-to-end latency, pipeline fps and engine fps side by side
    loop_line = next(line for line in md.splitlines() if "| loop |" in line)
    assert "| end-to-end |" in loop_line
    loop = runs["loop"][0]["throughput"]
    assert "{:.1f}".format(loop["fps"]) in loop_line and "{:.1f}".format(loop["engine_fps"]) in loop_line
    assert "of 12 frames (12 distinct images)" in loop_line
    # negative net energy is flagged, never printed as a plain negative figure
    metered = next(line for line in md.splitlines() if line.startswith("| colour b1 (engine) |"))
    assert "| below idle |" in metered and "(-" not in metered
    from edgealex.bench.energy import NET_BELOW_IDLE_REASON

    assert md.count(NET_BELOW_IDLE_REASON) == 1  # the reason once, in the power section
    # the live loop section: accuracy against the conveyor's truth with the distinct images
    assert "## Live inspection loop" in md and "of 30 frames, 30 distinct images" in md
    # the verdict's delivery latency (issue 14) from the run summary, as measured
    delivery = json.loads((res / "run-summary.json").read_text())["delivery_ms"]
    assert "- delivery to verdict (capture start to verdict): p50 {:.2f} ms, p99 {:.2f} ms over 30 frames".format(
        delivery["verdict"]["p50"], delivery["verdict"]["p99"]) in md
    http = delivery["http"]  # no viewer was connected: nothing was sent
    assert http["count"] == 0 and "- delivery to http (capture start to frame sent to the viewers): " \
        "nothing was delivered (e.g. no viewer connected)" in md


def test_loop_cdf_plots_the_latency_its_p50_reports(report):
    """The CDF of a loop row is end-to-end per frame: its median is the row's p50."""
    import numpy as np

    from edgealex.report.data import latencies, load_results

    _, res = report
    loop = next(d for d in load_results([str(res)])[0] if d["mode"] == "loop")
    lat = latencies(loop)
    assert lat.size == 12
    assert float(np.percentile(lat, 50)) == pytest.approx(loop["latency_ms"]["p50_ms"], rel=1e-3, abs=1e-3)
    assert loop["latency_ms"]["p50_ms"] > loop["engine_latency_ms"]["p50_ms"]  # not the engine's latency


@needs_chromium
def test_chromium_renders_the_report(report, tmp_path):
    result, _ = report
    url = "file://" + os.path.abspath(result.html)
    dom = chromium(["--user-data-dir=" + str(tmp_path / "profile"), "--dump-dom", url])
    assert "<table id=\"comparison\">" in dom and "Live inspection loop" in dom
    assert "100.0% of 15 img" in dom and "below idle" in dom and "end-to-end" in dom
    assert dom.count("data:image/png;base64,") >= 3  # CDF, power trace, energy bars (one batch size: no curve)
    shot = tmp_path / "report.png"
    chromium(["--user-data-dir=" + str(tmp_path / "profile2"), "--window-size=1280,1800",
              "--screenshot=" + str(shot), url])
    with open(str(shot), "rb") as handle:
        head = handle.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert (width, height) == (1280, 1800)
