"""`edgealex deploy deepstream` / `deploy triton` write through a staging folder: a full disk (a real
tmpfs) leaves the previous deployment byte for byte, a redeployment replaces only its own files, and
the engine nvinfer built from a previous, different ONNX does not survive to run the old model."""

import contextlib
import os
import subprocess
import sys

import pytest

from build_helpers import calibration_output, tiny_classifier
from test_data_safety import tmpfs
from test_full_disk_writers import _cli, _fill, _one_disk_error, _tree

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _free_up(disk, keep_free):
    """Shrink the filler so that about ``keep_free`` bytes of ``disk`` are free."""
    filler = os.path.join(disk, "filler")
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    os.truncate(filler, max(0, os.path.getsize(filler) - max(0, keep_free - free)))


def test_deepstream_on_a_nearly_full_disk_keeps_the_previous_deployment(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx")
    calib = calibration_output(tmp_path / "calib", model, caches=(8201, 8502))
    with tmpfs(tmp_path / "disk", "1m") as disk:
        out = os.path.join(disk, "ds")
        first = _cli("deploy", "deepstream", model, "-o", out)
        assert first.returncode == 0, first.stderr
        with open(os.path.join(out, "notes.md"), "w") as handle:  # the user's own file in the folder
            handle.write("mine")
        before = _tree(disk)
        _fill(disk)
        # Room for the ONNX and its sidecar again, not for the INT8 calibration that follows them.
        _free_up(disk, os.path.getsize(os.path.join(out, "tiny.deepstream.onnx")) + 16 * 1024)
        result = _cli("deploy", "deepstream", model, "-o", out, "--calib", calib, "--target", "agx-xavier")
        _one_disk_error(result, "could not write the DeepStream deployment")
        assert _tree(disk) == before  # no calib/ fragment, no new config beside the old ones, no staging folder


def test_deepstream_redeploy_replaces_its_files_and_drops_a_stale_nvinfer_engine(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx")
    out = tmp_path / "ds"
    assert _cli("deploy", "deepstream", model, "-o", out).returncode == 0
    built = out / "tiny.deepstream.onnx_b1_gpu0_fp16.engine"  # what nvinfer writes after its first build
    built.write_bytes(b"engine built by nvinfer")
    (out / "notes.md").write_text("mine")
    # Same ONNX again: nvinfer's engine still matches it and is kept (a rebuild takes minutes on a Jetson).
    assert _cli("deploy", "deepstream", model, "-o", out).returncode == 0
    assert built.read_bytes() == b"engine built by nvinfer"
    # A different DeepStream ONNX (static batch of 2): the old engine would silently run the old model.
    again = _cli("deploy", "deepstream", model, "-o", out, "--batch-mode", "static", "--sources",
                 "file:///a.mp4", "--sources", "file:///b.mp4")
    assert again.returncode == 0, again.stderr
    assert not built.exists()
    assert (out / "notes.md").read_text() == "mine"
    assert not [n for n in os.listdir(out) if "staging" in n or n.startswith(".old")]
    assert "batch-size=2" in (out / "config_infer_primary.txt").read_text()


def test_deepstream_refuses_a_calibration_inside_the_folder_it_replaces(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx")
    out = tmp_path / "ds"
    calib = calibration_output(out / "calib", model, caches=(8502,))
    before = _tree(str(calib))
    result = _cli("deploy", "deepstream", model, "-o", out, "--calib", calib, "--target", "agx-xavier")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "keep the calibration outside the output folder" in result.stderr
    assert _tree(str(calib)) == before


@contextlib.contextmanager
def immutable(path):
    """``chattr +i``: not even root can rename, replace or delete the file (skipped where unsupported)."""
    set_flag = subprocess.run(["chattr", "+i", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if set_flag.returncode != 0:
        pytest.skip("chattr +i is not supported here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)])


def test_triton_redeploy_that_fails_half_way_keeps_the_previous_entry(tmp_path):
    # The last file of the entry cannot be replaced (immutable): before, the model, labels and config
    # were already the new ones (a mixed entry); a swap that failed half-way must also undo itself.
    model = tiny_classifier(tmp_path / "tiny.onnx")
    repo = tmp_path / "repo"
    assert _cli("deploy", "triton", model, "-o", repo, "--max-batch-size", "4").returncode == 0
    before = _tree(str(repo))
    with immutable(repo / "tiny" / "README.md"):
        result = _cli("deploy", "triton", model, "-o", repo, "--max-batch-size", "16")
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "could not write the Triton model folder" in result.stderr
        assert _tree(str(repo)) == before


def test_deepstream_redeploy_that_fails_half_way_keeps_the_previous_deployment(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx")
    out = tmp_path / "ds"
    assert _cli("deploy", "deepstream", model, "-o", out).returncode == 0
    before = _tree(str(out))
    with immutable(out / "deploy.json"):
        result = _cli("deploy", "deepstream", model, "-o", out, "--batch-mode", "static", "--sources",
                      "file:///a.mp4", "--sources", "file:///b.mp4")
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "could not write the DeepStream deployment" in result.stderr
        assert _tree(str(out)) == before


def test_triton_redeploy_keeps_other_files_of_the_version_folder(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx")
    repo = tmp_path / "repo"
    assert _cli("deploy", "triton", model, "-o", repo).returncode == 0
    (repo / "tiny" / "1" / "model.plan").write_bytes(b"an earlier engine")
    (repo / "tiny" / "2").mkdir()
    (repo / "tiny" / "2" / "model.onnx").write_bytes(b"the user's version 2")
    result = _cli("deploy", "triton", model, "-o", repo, "--max-batch-size", "16")
    assert result.returncode == 0, result.stderr
    assert "left in place" in result.stderr
    assert (repo / "tiny" / "1" / "model.plan").read_bytes() == b"an earlier engine"
    assert (repo / "tiny" / "2" / "model.onnx").read_bytes() == b"the user's version 2"
    assert "max_batch_size: 16" in (repo / "tiny" / "config.pbtxt").read_text()
    assert sorted(os.listdir(repo / "tiny")) == ["1", "2", "README.md", "config.pbtxt", "edgealex.json", "labels.txt"]


_HOLD = """
import fcntl, os, sys
folder = os.path.isdir(sys.argv[1])  # an output folder is locked itself, other outputs by a lock file
fd = os.open(sys.argv[1], os.O_RDONLY if folder else os.O_RDWR | os.O_CREAT, 0o666)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
if not folder:
    os.write(fd, str(os.getpid()).encode())
print("held", flush=True)
sys.stdin.read()
if not folder:
    os.remove(sys.argv[1])
"""


@contextlib.contextmanager
def held_lock(lock_path):
    """Another process holding ``lock_path`` with ``flock`` (as edgealex's OutputLock does) until the block ends."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(lock_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, universal_newlines=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(30)


def test_a_folder_another_command_is_writing_is_refused_at_once(tmp_path):
    # Two deployments (or calibrations, reports, datasets) into one folder at once: the second is
    # refused naming the first, instead of both staging and swapping over each other.
    model = tiny_classifier(tmp_path / "tiny.onnx")
    out = tmp_path / "ds"
    assert _cli("deploy", "deepstream", model, "-o", out).returncode == 0
    before = _tree(str(out))
    with held_lock(out):  # a folder that may hold other files: the folder itself is locked (no lock file)
        result = _cli("deploy", "deepstream", model, "-o", out, "--batch-mode", "static")
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "another process is writing this DeepStream deployment right now" in result.stderr
    assert _tree(str(out)) == before
    with held_lock(tmp_path / ".data.lock") as pid:  # a whole folder swapped: its lock sits beside it
        result = _cli("data", "synth", "-o", tmp_path / "data", "--per-class", "4", "--size", "64", "--workers", "1")
        assert result.returncode == 1 and f"(pid {pid}) is writing this dataset folder" in result.stderr, result.stderr
    assert not (tmp_path / "data").exists()
    # Once the other process is done, the same command goes through and leaves no lock file behind.
    assert _cli("deploy", "deepstream", model, "-o", out, "--batch-mode", "static").returncode == 0
    assert not [n for n in os.listdir(out) if n.endswith(".lock")]


def test_redeploying_a_file_of_the_deployment_into_it_keeps_that_input(tmp_path):
    # The previous deployment's own files are replaced by a new one, except what this run reads:
    # its DeepStream ONNX deployed again, the engine copy passed back with --engine.
    model = tiny_classifier(tmp_path / "tiny.onnx")
    out = tmp_path / "ds"
    assert _cli("deploy", "deepstream", model, "-o", out).returncode == 0
    again = out / "tiny.deepstream.onnx"
    before = _tree(str(out))[again.name]
    result = _cli("deploy", "deepstream", again, "-o", out)
    assert result.returncode == 0, result.stderr
    assert _tree(str(out))[again.name] == before
    assert (out / "tiny.deepstream.deepstream.onnx").exists()
