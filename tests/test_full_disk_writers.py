"""A full disk in every writer (a real tmpfs, filled up): one user error, no traceback, nothing
half-written, the previous outputs intact."""

import hashlib
import os
import subprocess
import sys

import pytest

from build_helpers import tiny_classifier
from test_bench_harness import trtexec_times
from test_data_safety import tmpfs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "edgealex"] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=timeout)


def _fill(disk):
    """Fill the file system of ``disk`` to the last byte."""
    fd = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def _tree(folder):
    """{relative path: sha256} of every file under ``folder`` (the filler excluded)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if rel != "filler":
                with open(path, "rb") as handle:
                    found[rel] = hashlib.sha256(handle.read()).hexdigest()
        for name in dirs:
            found.setdefault(os.path.relpath(os.path.join(root, name), folder) + "/", "dir")
    return found


def _one_disk_error(result, subject):
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert subject in result.stderr and "the disk is full (ENOSPC)" in result.stderr, result.stderr
    assert "Note: free space on that disk" in result.stderr


def test_build_on_a_full_disk(tmp_path):
    pytest.importorskip("onnxruntime")
    model = tiny_classifier(tmp_path / "tiny.onnx")
    with tmpfs(tmp_path / "disk", "1m") as disk:
        _fill(disk)
        result = _cli("build", model, "--target", "cpu", "-o", disk)
        _one_disk_error(result, "could not write the engine")
        assert _tree(disk) == {}


def test_export_on_a_full_disk_keeps_the_previous_model(tmp_path):
    pytest.importorskip("torch")
    with tmpfs(tmp_path / "disk", "1m") as disk:
        previous = os.path.join(disk, "model.onnx")
        with open(previous, "wb") as handle:
            handle.write(b"previous model")
        before = _tree(disk)
        _fill(disk)
        result = _cli("export", "-o", previous, "--num-classes", "2")
        _one_disk_error(result, "model.onnx | could not write the ONNX model")
        assert _tree(disk) == before


def test_calibrate_on_a_full_disk_keeps_the_previous_calibration(tmp_path):
    pytest.importorskip("onnxruntime")
    from test_calib import tiny_model, write_colour_folder

    model = tiny_model(tmp_path / "tiny.onnx")
    calib = write_colour_folder(str(tmp_path / "calib"), 10)
    held = write_colour_folder(str(tmp_path / "held"), 4, seed=50)
    with tmpfs(tmp_path / "disk", "2m") as disk:
        out = os.path.join(disk, "out")
        first = _cli("calibrate", model, "--images", calib, "--holdout", held, "-o", out, "--no-progress")
        assert first.returncode == 0, first.stderr
        before = _tree(disk)
        _fill(disk)
        result = _cli("calibrate", model, "--images", calib, "--holdout", held, "-o", out, "--no-progress",
                      "--force")
        _one_disk_error(result, "could not write the calibration")
        assert _tree(disk) == before  # the previous calibration, byte for byte; no staging folder


def test_report_on_a_full_disk_leaves_no_empty_plots_folder(tmp_path):
    pytest.importorskip("matplotlib")
    times = tmp_path / "times.json"
    trtexec_times(times)
    results = tmp_path / "res"
    imported = _cli("bench", "--import-trtexec", times, "-o", results)
    assert imported.returncode == 0, imported.stderr
    with tmpfs(tmp_path / "disk", "1m") as disk:
        with open(os.path.join(disk, "notes.md"), "w") as handle:
            handle.write("mine")
        before = _tree(disk)
        _fill(disk)
        result = _cli("report", results, "-o", disk)
        _one_disk_error(result, "could not write the report folder")
        assert _tree(disk) == before


def test_data_synth_on_a_full_disk(tmp_path):
    with tmpfs(tmp_path / "disk", "1m") as disk:
        _fill(disk)
        result = _cli("data", "synth", "-o", os.path.join(disk, "data"), "--per-class", "10", "--size", "64",
                      "--workers", "1")
        _one_disk_error(result, "could not write the dataset folder")
        assert _tree(disk) == {}


def _use_every_inode(disk):
    """Create empty files until the file system of ``disk`` has no inode left (bytes stay free)."""
    for i in range(100000):
        try:
            open(os.path.join(disk, f"inode-{i}"), "w").close()
        except OSError:
            return i
    raise AssertionError("the tmpfs never ran out of inodes")


def test_no_inode_left_is_the_full_disk_error_too(tmp_path):
    # atomic_path created its temporary file outside its disk-error handling: with no inode left
    # (a tmpfs's nr_inodes, a quota) mkstemp's ENOSPC escaped as a traceback from every writer.
    model = tiny_classifier(tmp_path / "tiny.onnx")
    with tmpfs(tmp_path / "disk", "4m,nr_inodes=64") as disk:
        os.makedirs(os.path.join(disk, "engines"))
        assert _use_every_inode(disk) > 0
        proc = _cli("build", model, "-o", os.path.join(disk, "engines"))
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if not line.startswith("[")]
        assert "could not write the engine: the disk is full (ENOSPC)" in errors[0], proc.stderr
        assert errors[1].startswith("Note: free space on that disk") and len(errors) == 2, proc.stderr
        assert os.listdir(os.path.join(disk, "engines")) == []


def test_prune_on_a_full_disk(tmp_path):
    """Found by a fresh-user attack (issue 15): torch.save's RuntimeError ("unexpected pos") on a full
    disk came out as a traceback from prune, distill and train (every save_checkpoint)."""
    pytest.importorskip("torch")
    from edgealex.models.alexnet import build_model, save_checkpoint
    from edgealex.preprocess import Preprocess

    parent = tmp_path / "p.pt"
    save_checkpoint(str(parent), build_model("alexnet", 2, seed=0), ["ok", "hole"], Preprocess())
    with tmpfs(tmp_path / "disk", "2m") as disk:
        result = _cli("prune", parent, "--keep", "0.5", "-o", os.path.join(disk, "x.pt"))
        _one_disk_error(result, "could not write the checkpoint")
        assert _tree(disk) == {}
