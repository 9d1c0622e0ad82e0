"""The classification loop: defect decision, JSONL records, drop policy, EOF, failures, Ctrl-C, CLI."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from edgealex.camera import open_sink, open_source
from edgealex.camera.source import FrameSource
from edgealex.errors import EdgeAlexError
from conftest import default_sigint
from test_runtime_models import LABELS, colour_classifier, ort_engine, write_folder, write_video

pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")


@pytest.fixture
def engine(tmp_path):
    return ort_engine(tmp_path)


def _runner(path):
    from edgealex.runtime.registry import load_runner

    return load_runner(path)


def _lines(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


# -- defect decision -------------------------------------------------------------------------------------
class _Spec:
    def __init__(self, batch=1):
        from edgealex.runtime.base import TensorSpec

        self.input_spec = TensorSpec("input", (batch, 3, 32, 32))
        self.batch_size = batch


def _classifier(threshold=0.5, defect_classes=None, labels=None):
    from edgealex.modelinfo import ModelInfo
    from edgealex.pipeline.classify import Classifier

    return Classifier(_Spec(), ModelInfo("m", list(labels or LABELS)), threshold, defect_classes)


def _logits_for(probs):
    return np.log(np.asarray(probs, dtype=np.float64))[None]


@pytest.mark.parametrize("probs, threshold, top, defect, defect_class", [
    ([0.1, 0.6, 0.1, 0.1, 0.1], 0.5, "scratch", True, True),
    ([0.1, 0.6, 0.1, 0.1, 0.1], 0.7, "scratch", False, True),      # defect class below threshold
    ([0.7, 0.1, 0.1, 0.05, 0.05], 0.5, "ok", False, False),        # ok is never a defect
    ([0.7, 0.1, 0.1, 0.05, 0.05], 0.0, "ok", False, False),
    ([0.05, 0.05, 0.05, 0.05, 0.8], 0.8, "hole", True, True),      # confidence == threshold counts
])
def test_defect_decision(probs, threshold, top, defect, defect_class):
    verdict = _classifier(threshold).postprocess(_logits_for(probs))[0]
    assert (verdict.top_class, verdict.defect, verdict.defect_class) == (top, defect, defect_class)
    assert verdict.confidence == pytest.approx(max(probs), rel=1e-5)


def test_custom_defect_classes_and_good_labels():
    clf = _classifier(0.5, "crack,hole")
    assert clf.defect_classes == ["crack", "hole"]
    assert not clf.postprocess(_logits_for([0.1, 0.6, 0.1, 0.1, 0.1]))[0].defect  # scratch not a defect now
    assert clf.postprocess(_logits_for([0.1, 0.1, 0.1, 0.6, 0.1]))[0].defect
    good = _classifier(labels=["good", "dent", "Pass"])
    assert good.defect_classes == ["dent"]


@pytest.mark.parametrize("kwargs, expected", [
    ({"defect_classes": "scratch,rust"}, "not among the model's labels: rust"),
    ({"defect_classes": ""}, "empty list"),
    ({"threshold": 1.5}, "between 0 and 1"),
])
def test_classifier_rejects_bad_settings(kwargs, expected):
    with pytest.raises(EdgeAlexError, match=expected):
        _classifier(**kwargs)


def test_postprocess_refuses_class_count_mismatch():
    with pytest.raises(EdgeAlexError, match="does not match the 5 labels"):
        _classifier().postprocess(np.zeros((1, 3), np.float32))


def test_softmax_is_stable():
    from edgealex.pipeline.classify import softmax

    probs = softmax(np.array([[1000.0, 0.0, -1000.0]]))
    assert np.isfinite(probs).all() and probs[0, 0] == pytest.approx(1.0)


# -- loop on files and folders ------------------------------------------------------------------------------
def test_folder_run_writes_complete_jsonl_and_reports_accuracy(tmp_path, engine):
    from edgealex.pipeline.loop import run_loop

    write_folder(tmp_path / "imgs", 2, sizes=((64, 48), (300, 90)))
    log = tmp_path / "verdicts.jsonl"
    source = open_source(str(tmp_path / "imgs"))
    runner = _runner(engine)
    summary = run_loop(runner, source, [open_sink(str(log))])
    assert not runner.is_active and not source.is_open  # released by the loop that opened them
    assert summary.frames == 10 and summary.dropped == 0 and summary.errors == 0
    assert summary.stopped_by == "end of stream" and summary.drop_policy == "none"
    assert summary.defects == 8  # two ok images, eight defects (all confident)
    assert summary.accuracy["top1"] == 1.0 and summary.accuracy["defect_detection"]["accuracy"] == 1.0
    assert summary.pipeline_fps > 0 and summary.engine_fps > 0
    assert set(summary.latency_ms) == {"capture", "preprocess", "queue", "infer", "postprocess", "sink"}
    records = _lines(log)
    assert [r["frame"] for r in records] == list(range(10))
    for record in records:
        assert record["top_class"] == record["truth"] == os.path.basename(os.path.dirname(record["source"]))
        assert record["defect"] == (record["truth"] != "ok")
        assert 0.5 < record["confidence"] <= 1.0
        # stages, plus the cumulative capture start -> verdict (the station's latency, issue 14)
        assert set(record["latency_ms"]) == {"capture", "preprocess", "queue", "infer", "postprocess", "sink",
                                             "verdict"}
        assert record["latency_ms"]["verdict"] >= record["latency_ms"]["infer"]
        assert isinstance(record["timestamp"], float)
    assert {(r["width"], r["height"]) for r in records} == {(64, 48), (300, 90)}
    side = json.loads((tmp_path / "verdicts.jsonl.json").read_text())
    assert side["summary"]["frames"] == 10 and side["labels"] == LABELS and side["engine"]["backend"] == "ort"


def test_video_file_run_to_eof_with_annotated_video(tmp_path, engine):
    from edgealex.pipeline.loop import run_loop

    labels = ["ok", "scratch", "stain", "crack", "hole"] * 2
    clip = write_video(tmp_path / "clip.mp4", labels)
    out = tmp_path / "annotated.avi"
    summary = run_loop(_runner(engine), open_source(clip), [open_sink(str(out))])
    assert summary.frames == 10 and summary.stopped_by == "end of stream"
    assert summary.class_counts == {label: 2 for label in LABELS}
    import cv2

    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
    cap.release()


def test_changing_frame_sizes_run_through_video_sink(tmp_path, engine):
    from edgealex.pipeline.loop import run_loop

    write_folder(tmp_path / "imgs", 1, sizes=((64, 48), (48, 64), (500, 30)))
    summary = run_loop(_runner(engine), open_source(str(tmp_path / "imgs")), [open_sink(str(tmp_path / "o.mp4"))])
    assert summary.frames == 5 and (tmp_path / "o.mp4").is_file()


def test_max_frames_duration_and_on_frame_stop(engine):
    from edgealex.pipeline.loop import run_loop

    summary = run_loop(_runner(engine), open_source("synthetic://?width=96&height=64&fps=0&pool=1"), max_frames=7)
    assert summary.frames == 7 and summary.stopped_by == "max_frames"
    assert summary.accuracy["frames_with_truth"] == 7
    summary = run_loop(_runner(engine), open_source("synthetic://?width=96&height=64&fps=40&pool=1"), duration_s=0.5)
    assert summary.stopped_by == "duration" and 0 < summary.frames <= 40
    seen = []
    summary = run_loop(_runner(engine), open_source("synthetic://?width=96&height=64&fps=0&pool=1"),
                       on_frame=lambda r: seen.append(r.index) or len(seen) < 3)
    assert summary.stopped_by == "on_frame" and seen[:3] == [0, 1, 2]


def test_live_source_drops_oldest_file_source_drops_nothing(tmp_path, engine):
    """A consumer slower than the source: a live source loses its oldest frames (counted); a file
    is read at the consumer's pace and loses nothing."""
    from edgealex.pipeline.loop import run_loop

    def slow(result):
        time.sleep(0.02)

    seen = []
    live = open_source("synthetic://?width=64&height=64&fps=400&count=60&pool=1")
    summary = run_loop(_runner(engine), live, on_frame=lambda r: seen.append(r.index) or slow(r), queue_size=2)
    assert summary.drop_policy == "oldest" and summary.dropped > 0
    assert summary.frames + summary.dropped == 60  # every frame was either processed or dropped
    assert seen == sorted(seen) and len(seen) < 60 and seen[-1] == 59  # newest frames survive

    clip = write_video(tmp_path / "clip.avi", ["ok", "hole"] * 10, fourcc="MJPG")
    seen.clear()
    summary = run_loop(_runner(engine), open_source(clip), on_frame=lambda r: seen.append(r.index) or slow(r),
                       queue_size=2)
    assert summary.drop_policy == "none" and summary.dropped == 0 and seen == list(range(20))


def test_batching_queued_frames(tmp_path):
    from edgealex.pipeline.loop import run_loop

    dynamic = ort_engine(tmp_path, "dyn.onnx", batch=None)
    write_folder(tmp_path / "imgs", 3)
    log = tmp_path / "b.jsonl"
    runner = _runner(dynamic)
    real_infer = runner.infer_impl
    calls = []

    def slow_infer(batch):
        # The real ORT session, held up on each call so that the capture thread has queued frames
        # by the time the next batch is taken (without this the test depends on timing).
        time.sleep(0.2)
        calls.append(len(batch))
        return real_infer(batch)

    runner.infer_impl = slow_infer
    summary = run_loop(runner, open_source(str(tmp_path / "imgs")), [open_sink(str(log))], batch=4, warmup=0)
    assert summary.frames == 15 and summary.batch == 4
    records = _lines(log)
    assert [r["frame"] for r in records] == list(range(15))
    assert all(r["top_class"] == r["truth"] for r in records)
    assert calls[1:3] == [4, 4] and sum(calls) == 15
    assert max(r.get("batch", 1) for r in records) == 4
    with pytest.raises(EdgeAlexError, match="batches of 1"):
        run_loop(_runner(ort_engine(tmp_path, "static.onnx")), open_source(str(tmp_path / "imgs")), batch=4)


class _FailingSource(FrameSource):
    """A camera that delivers three frames and then fails hard (not a disconnect)."""

    kind = "failing"

    def open_impl(self):
        self.n = 0
        self.closed = False

    def close_impl(self):
        self.closed = True

    def read_impl(self, timeout_ms):
        from test_runtime_models import solid

        self.n += 1
        if self.n > 3:
            raise EdgeAlexError(self.uri, "the capture device reported an I/O error", "check the camera")
        return solid("hole"), "hole", None


def test_source_failing_mid_stream_raises_after_writing_what_it_processed(tmp_path, engine):
    from edgealex.pipeline.loop import run_loop

    source = _FailingSource("failing://0")
    runner = _runner(engine)
    log = tmp_path / "f.jsonl"
    with pytest.raises(EdgeAlexError, match="I/O error"):
        run_loop(runner, source, [open_sink(str(log))])
    assert [r["frame"] for r in _lines(log)] == [0, 1, 2]
    assert source.closed and not runner.is_active


def test_reconnecting_stream_in_the_loop(tmp_path, engine):
    from edgealex.camera.gst import CameraSource
    from edgealex.pipeline.loop import run_loop

    clip = write_video(tmp_path / "s.avi", ["stain"] * 3, fourcc="MJPG")
    source = CameraSource("rtsp://cam/stream", "rtsp", clip, api="ffmpeg", backoff_s=0.02, max_backoff_s=0.05)
    summary = run_loop(_runner(engine), source, max_frames=8)
    assert summary.frames == 8 and summary.reconnects >= 2 and summary.drop_policy == "oldest"
    assert any("reconnected" in e["event"] for e in summary.events)


def test_summary_format_labels_both_rates(engine):
    from edgealex.pipeline.loop import run_loop

    summary = run_loop(_runner(engine), open_source("synthetic://?width=64&height=64&fps=0&pool=1&count=5"))
    text = summary.format()
    assert "pipeline fps" in text and "engine fps" in text and "engine-only" in text and "wall-clock" in text
    data = summary.to_dict()
    assert data["frames"] == 5 and data["latency_ms"]["infer"]["p99"] >= data["latency_ms"]["infer"]["p50"]
    assert data["end_to_end_ms"]["p50"] > 0 and data["engine"]["backend"] == "ort"
    json.dumps(data)


# -- Ctrl-C and the CLI ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly_with_complete_jsonl(tmp_path, engine, sig):
    """Ctrl-C, and SIGTERM as systemd or `docker stop` send it, end a run the same way: exit 0,
    summary 'interrupted', a complete log, sidecar and video."""
    log = tmp_path / "live.jsonl"
    video = tmp_path / "live.avi"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgealex", "run", engine, "--source", "synthetic://?width=160&height=96&fps=40&pool=1",
         "--sink", str(log), "--sink", str(video), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=default_sigint)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if log.exists() and len(log.read_text().splitlines()) >= 5:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["stopped_by"] == "interrupted" and summary["interrupted"]
    text = log.read_text()
    assert text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) == summary["frames"] >= 5
    assert [r["frame"] for r in records] == sorted(r["frame"] for r in records)
    assert json.loads((tmp_path / "live.jsonl.json").read_text())["summary"]["frames"] == summary["frames"]
    assert video.is_file() and "Traceback" not in err


def test_cli_run_folder_json(tmp_path, engine):
    from typer.testing import CliRunner

    from edgealex.cli.main import app

    write_folder(tmp_path / "imgs", 1)
    result = CliRunner().invoke(app, ["run", engine, "--source", str(tmp_path / "imgs"), "--max-frames", "4",
                                      "--sink", str(tmp_path / "v.jsonl"), "--defect-classes", "hole", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["frames"] == 4 and summary["defect_classes"] == ["hole"] and summary["stopped_by"] == "max_frames"
    assert len(_lines(tmp_path / "v.jsonl")) == 4


def test_cli_run_human_summary(tmp_path, engine):
    from typer.testing import CliRunner

    from edgealex.cli.main import app

    result = CliRunner().invoke(app, ["run", engine, "--source", "synthetic://?width=64&height=64&fps=0&pool=1",
                                      "--max-frames", "3", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "pipeline fps" in result.stdout and "engine fps" in result.stdout and "vs ground truth" in result.stdout


@pytest.mark.parametrize("args, expected", [
    (["--threshold", "2"], "between 0 and 1"),
    (["--defect-classes", "rust"], "not among the model's labels"),
    (["--sink", "out.gif"], "unsupported sink"),
    (["--source", "http://cam"], "unsupported source scheme"),
    (["--providers", "cuda"], "not available here"),
    (["--batch", "0"], "must be >= 1"),
])
def test_cli_run_user_errors(engine, args, expected):
    from typer.testing import CliRunner

    from edgealex.cli.main import app

    if args[0] == "--providers":
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            pytest.skip("CUDA provider present")
    result = CliRunner().invoke(app, ["run", engine, "--source", "synthetic://?fps=0&count=2&width=64&height=64",
                                      *args])
    assert result.exit_code == 1
    assert expected in result.output and "Traceback" not in result.output


def test_cli_run_plain_exported_onnx(tmp_path):
    from conftest import cli_runner

    from edgealex.cli.main import app

    model = colour_classifier(tmp_path / "plain.onnx")
    # the "no --sink" warning goes to stderr: stdout must stay pure JSON on every click (cli_runner)
    result = cli_runner().invoke(app, ["run", model, "--source", "synthetic://?fps=0&count=3&width=64&height=64",
                                       "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["frames"] == 3


def test_frame_queue_drop_oldest_and_blocking_policies():
    import threading

    from edgealex.pipeline.loop import FrameQueue, _EndMarker, _Item

    items = [_Item(i, None, 0.0, 0.0) for i in range(5)]
    live = FrameQueue(2, drop_oldest=True)
    stop = threading.Event()
    for item in items:
        assert live.put(item, stop)
    assert live.dropped == 3 and [i.frame for i in live.get_batch(8, 0)] == [3, 4]
    files = FrameQueue(2, drop_oldest=False)
    assert files.put(items[0], stop) and files.put(items[1], stop)
    stop.set()
    assert not files.put(items[2], stop)  # full: waits instead of dropping, gives up on stop
    assert files.dropped == 0
    files.put_final(_EndMarker())
    assert [i.frame for i in files.get_batch(8, 0)] == [0, 1]  # a marker never joins a batch
    assert isinstance(files.get_batch(8, 0)[0], _EndMarker)
    assert files.get_batch(8, 0.01) == []


def test_opencv_runs_single_threaded_during_the_loop_and_is_restored(engine):
    import cv2

    from edgealex.pipeline.loop import run_loop

    cv2.setNumThreads(2)
    during = []
    try:
        summary = run_loop(_runner(engine), open_source("synthetic://?width=96&height=64&fps=0&pool=1&count=3"),
                           on_frame=lambda r: during.append(cv2.getNumThreads()))
        assert summary.frames == 3 and during == [1, 1, 1]
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(-1)  # OpenCV's default


def test_default_conveyor_judges_as_many_distinct_images_as_frames(engine):
    """Issue 17 item 7: the default synthetic conveyor renders every frame afresh, and the summary
    says how many distinct images the accuracy figure rests on; a pool of 1 frame per label judges
    at most 5 distinct images however many frames pass."""
    from edgealex.pipeline.loop import run_loop

    fresh = run_loop(_runner(engine), open_source("synthetic://?width=96&height=64&fps=0&seed=3"), max_frames=40)
    assert fresh.accuracy["frames_with_truth"] == 40
    assert fresh.accuracy["distinct_images"] == 40
    assert "40 distinct images among 40 frames" in fresh.format()
    pooled = run_loop(_runner(engine), open_source("synthetic://?width=96&height=64&fps=0&seed=3&pool=1"),
                      max_frames=40)
    assert pooled.accuracy["frames_with_truth"] == 40
    assert 1 <= pooled.accuracy["distinct_images"] <= 5


def test_cli_run_without_a_sink_says_nothing_is_written(tmp_path, engine):
    """Issue 17: `run` with no --sink writes nothing, and now says so."""
    from test_bench_harness import invoke

    from edgealex.pipeline.loop import NO_SINK_WARNING

    result = invoke(["run", engine, "--source", "synthetic://?width=64&height=64&fps=0&pool=1", "--max-frames", "2"])
    assert result.exit_code == 0, result.output
    assert NO_SINK_WARNING in result.output
    result = invoke(["run", engine, "--source", "synthetic://?width=64&height=64&fps=0&pool=1", "--max-frames", "2",
                     "--sink", str(tmp_path / "v.jsonl")])
    assert result.exit_code == 0 and NO_SINK_WARNING not in result.output
