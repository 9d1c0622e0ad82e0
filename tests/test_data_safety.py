"""Nothing lost: full disks (a real tmpfs), failures before the first frame, concurrent and
conflicting writers of `edgealex run`'s outputs."""

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from edgealex.errors import EdgeAlexError
from conftest import default_sigint
from test_runtime_models import ort_engine, write_video

pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNTH = "synthetic://?width=320&height=240&fps=0&pool=2"


@pytest.fixture
def engine(tmp_path):
    return ort_engine(tmp_path)


@contextlib.contextmanager
def tmpfs(path, size):
    """A real tmpfs of ``size`` (e.g. "2m") mounted on ``path`` (root only; skipped otherwise)."""
    os.makedirs(str(path), exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + result.stderr.strip())
    try:
        yield str(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _cli(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "edgealex"] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=timeout)


def _sha(path):
    with open(str(path), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _records(path):
    with open(str(path), encoding="utf-8") as handle:
        text = handle.read()
    assert text == "" or text.endswith("\n"), "the log ends in a partial line"
    return [json.loads(line) for line in text.splitlines()]


def _leftovers(folder):
    return [name for name in os.listdir(str(folder)) if name.startswith(".tmp-") or name.endswith(".lock")]


# -- 1. full disk during run -------------------------------------------------------------------------------
def test_full_disk_run_keeps_the_previous_video_and_says_so(tmp_path, engine):
    """A 2 MiB tmpfs as the sink folder with a good video already there: one user error, exit 1, no
    'wrote', the previous video byte-identical, no temporary file left (was: exit 0, 'wrote', the
    good video replaced by a truncated one without its moov atom)."""
    with tmpfs(tmp_path / "disk", "2m") as disk:
        video = os.path.join(disk, "v.mp4")
        write_video(video, ["ok", "scratch", "stain"])
        before = _sha(video)
        result = _cli("run", engine, "--source", SYNTH + "&count=3000", "--sink", video,
                      "--sink", os.path.join(disk, "v.jsonl"))
        assert result.returncode == 1, result.stderr
        assert "v.mp4 | stopped after" in result.stderr and "MiB free" in result.stderr
        assert "Traceback" not in result.stderr and "wrote" not in result.stdout
        assert _sha(video) == before
        assert not _leftovers(disk)
        for record in _records(os.path.join(disk, "v.jsonl")) if os.path.exists(os.path.join(disk, "v.jsonl")) else []:
            assert "frame" in record or "event" in record


def test_video_writer_that_fills_the_disk_is_discarded_at_close(tmp_path, engine):
    """With no free-space margin the disk really fills while OpenCV encodes (its writer does not
    report it): the finished file is checked, found incomplete and discarded; the previous video
    stays; the JSONL log on the same disk holds complete lines only."""
    from edgealex.camera.sink import JsonlSink, VideoSink
    from edgealex.camera.source import open_source
    from edgealex.pipeline.loop import run_loop
    from edgealex.runtime.registry import load_runner

    with tmpfs(tmp_path / "disk", "1m") as disk:
        video = os.path.join(disk, "v.avi")
        write_video(video, ["ok", "hole"], fourcc="MJPG")
        before = _sha(video)
        log = os.path.join(disk, "v.jsonl")
        with pytest.raises(EdgeAlexError) as err:
            run_loop(load_runner(engine), open_source("synthetic://?width=640&height=480&fps=0&pool=1&count=400"),
                     [VideoSink(video, min_free_bytes=0), JsonlSink(log)])
        assert "the disk is full" in str(err.value) or "does not hold the" in str(err.value)
        assert _sha(video) == before
        records = _records(log)
        frames = [r["frame"] for r in records if "frame" in r]
        assert frames == list(range(len(frames)))
        assert all("frame" in r or r["event"] == "stopped" for r in records)
        assert not _leftovers(disk)


def test_full_disk_jsonl_ends_at_its_last_complete_line(tmp_path, engine):
    """JSONL alone on a full tmpfs: no partial line, no traceback, one user error naming the disk
    (was: a half-written last line, no sidecar, an ENOSPC traceback)."""
    with tmpfs(tmp_path / "disk", "64k") as disk:
        log = os.path.join(disk, "v.jsonl")
        result = _cli("run", engine, "--source", SYNTH + "&count=3000", "--sink", log)
        assert result.returncode == 1, result.stderr
        assert "v.jsonl | could not write the JSONL log: the disk is full (ENOSPC)" in result.stderr
        assert "Traceback" not in result.stderr
        records = _records(log)
        assert f"the log ends after its last complete line ({len(records)} lines)" in result.stderr
        frames = [r["frame"] for r in records if "frame" in r]
        assert len(frames) > 10 and frames == list(range(len(frames)))
        assert all("frame" in r for r in records[:-1])
        assert "frame" in records[-1] or records[-1]["event"] == "stopped"


# -- 5. a run that fails before its first frame ----------------------------------------------------------------
def test_run_without_a_single_frame_leaves_the_previous_log_alone(tmp_path, engine):
    """A folder of unreadable images gives no frame: the existing log and its sidecar stay as they
    were (was: log truncated to 0 bytes, sidecar summary rewritten)."""
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    keep = tmp_path / "keep"
    keep.mkdir()
    good = keep / "good.jsonl"
    good.write_text('{"frame":0,"top_class":"ok"}\n')
    (keep / "good.jsonl.json").write_text('{"summary": {"frames": 1}}\n')
    result = _cli("run", engine, "--source", folder, "--sink", good)
    assert good.read_text() == '{"frame":0,"top_class":"ok"}\n', result.stderr
    assert json.loads((keep / "good.jsonl.json").read_text())["summary"]["frames"] == 1
    assert not _leftovers(keep)


def test_sinks_open_only_after_engine_and_source_are_ready(tmp_path, engine):
    """A source that cannot be opened: no sink is touched (no new file, no lock file left)."""
    out = tmp_path / "out"
    out.mkdir()
    result = _cli("run", engine, "--source", tmp_path / "missing.mp4", "--sink", out / "v.jsonl",
                  "--sink", out / "v.mp4")
    assert result.returncode == 1 and "the video file does not exist" in result.stderr
    assert os.listdir(str(out)) == []


# -- 6. concurrent and conflicting writers -----------------------------------------------------------------------
def test_second_run_on_the_same_log_is_refused_while_the_first_runs(tmp_path, engine):
    log = tmp_path / "shared.jsonl"
    env = dict(os.environ, PYTHONPATH=REPO)
    first = subprocess.Popen([sys.executable, "-m", "edgealex", "run", engine, "--source",
                              "synthetic://?width=96&height=64&fps=30&pool=1", "--sink", str(log), "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env,
                             preexec_fn=default_sigint)
    try:
        for _ in range(1200):
            if first.poll() is not None or (log.exists() and log.read_text().count("\n") >= 3):
                break
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()
        second = _cli("run", engine, "--source", "synthetic://?width=96&height=64&fps=0&pool=1&count=50",
                      "--sink", log)
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 1
    assert "shared.jsonl | another process (pid {}) is writing this verdict log".format(first.pid) in second.stderr
    assert first.returncode == 0, err
    summary = json.loads(out)
    frames = [r["frame"] for r in _records(log)]
    assert frames == list(range(summary["frames"]))  # only the first run's lines, none corrupt
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize("make_args, expected", [
    (lambda d, clip: ["--sink", d / "a.jsonl", "--sink", str(d) + "/./a.jsonl"], "given twice"),
    (lambda d, clip: ["--source", clip, "--sink", clip], "would overwrite the source it reads"),
    (lambda d, clip: ["--sink", d / "dir.mp4"], "would replace an existing folder"),
])
def test_conflicting_outputs_are_refused_before_the_first_frame(tmp_path, engine, make_args, expected):
    clip = write_video(tmp_path / "clip.avi", ["ok", "stain", "hole"] * 10, fourcc="MJPG")
    before = _sha(clip)
    (tmp_path / "dir.mp4").mkdir()
    witness = tmp_path / "witness.jsonl"  # written only if frames were processed
    args = ["--source", "synthetic://?width=64&height=48&fps=0&pool=1&count=30"] + make_args(tmp_path, clip)
    result = _cli("run", engine, *(args + ["--sink", witness]))
    assert result.returncode == 1 and expected in result.stderr, result.stderr
    assert not witness.exists() and _sha(clip) == before
    assert not _leftovers(tmp_path)


def test_a_video_that_cannot_replace_the_previous_one_is_said_once_with_the_right_fix(tmp_path, engine):
    """The previous video cannot be replaced at close (immutable: EPERM, as a read-only or foreign-owned
    file would be): one user error, said once (it was logged by the loop and raised, so printed twice),
    with a fix about permissions (it said "free space on that disk")."""
    from test_deploy_safety import immutable

    video = tmp_path / "v.mp4"
    write_video(str(video), ["ok", "scratch"])
    before = _sha(video)
    with immutable(video):
        result = _cli("run", engine, "--source", SYNTH + "&count=5", "--sink", video)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("could not write the annotated video: Operation not permitted (EPERM)") == 1, \
        result.stderr
    assert "free space" not in result.stderr and "lsattr" in result.stderr, result.stderr
    assert _sha(video) == before


def test_a_sidecar_name_taken_by_a_folder_is_refused_before_the_first_frame(tmp_path, engine):
    """Before: the run went to the end, then died with a traceback (IsADirectoryError) writing the
    sidecar of its log, exit 0."""
    (tmp_path / "v.jsonl.json").mkdir()
    witness = tmp_path / "witness.jsonl"
    result = _cli("run", engine, "--source", SYNTH + "&count=5", "--sink", tmp_path / "v.jsonl", "--sink", witness)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "v.jsonl.json | the sink's sidecar would replace an existing folder" in result.stderr
    assert not witness.exists() and not (tmp_path / "v.jsonl").exists()


def test_atomic_writes_refuse_a_final_name_that_is_a_folder(tmp_path):
    # Every writer (export's and build's sidecars, results, configs) goes through atomic_path.
    from edgealex.artifacts import write_json_atomic

    (tmp_path / "m.onnx.json").mkdir()
    with pytest.raises(EdgeAlexError, match="is a folder; the output file cannot be written under that name"):
        write_json_atomic(tmp_path / "m.onnx.json", {"a": 1})
    assert os.listdir(tmp_path) == ["m.onnx.json"]


def test_a_fifo_or_device_as_a_sink_is_refused_before_the_first_frame(tmp_path, engine):
    """Before: a FIFO as the JSONL log blocked the run in open() forever (past --duration), waiting
    for a reader; a link to /dev/null ended in a traceback (ftruncate: EINVAL)."""
    fifo = tmp_path / "f.jsonl"
    os.mkfifo(str(fifo))
    (tmp_path / "null.jsonl").symlink_to("/dev/null")
    for sink, kind in ((fifo, "a FIFO (named pipe)"), (tmp_path / "null.jsonl", "a device")):
        result = _cli("run", engine, "--source", SYNTH + "&count=5", "--duration", "5", "--sink", sink, timeout=60)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"is {kind}, not a regular file" in result.stderr and "null://" in result.stderr
