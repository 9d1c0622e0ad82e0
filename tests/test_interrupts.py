"""An interrupted `calibrate --force` keeps the previous calibration, under SIGTERM as under Ctrl-C
(real signals to real subprocesses). `run` and `bench` get both signals beside their Ctrl-C tests
(tests/test_loop.py, tests/test_bench_harness.py)."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import default_sigint
from test_calib import tiny_model, write_colour_folder

pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _calibration_is_complete(out):
    """calibration.json exists and every file it lists exists: one whole calibration."""
    manifest = os.path.join(out, "calibration.json")
    assert os.path.isfile(manifest), os.listdir(out)
    with open(manifest) as handle:
        data = json.load(handle)
    listed = [data["qdq_onnx"], data["ort_int8_onnx"], data["ranges_json"], data["report_json"], data["report_md"],
              data["images_manifest"], data["holdout_manifest"]] + list(data["caches"].values())
    missing = [name for name in listed if name and not os.path.isfile(os.path.join(out, name))]
    assert not missing, (missing, os.listdir(out))
    return data


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_calibrate_force_keeps_a_whole_calibration(tmp_path, sig):
    """Interrupt `calibrate --force` once the new ranges exist (where the old code had already
    deleted the previous calibration): the folder still holds one whole calibration, nothing of the
    staging folder is left, and no edgealex-calib-* folder is left in the temp directory."""
    model = tiny_model(tmp_path / "tiny.onnx")
    calib = write_colour_folder(str(tmp_path / "calib"), 12)
    held = write_colour_folder(str(tmp_path / "held"), 80, seed=100)
    out = str(tmp_path / "out")
    env = dict(os.environ, PYTHONPATH=REPO, TMPDIR=str(tmp_path / "tmp"))
    os.makedirs(env["TMPDIR"])
    args = [sys.executable, "-m", "edgealex", "calibrate", model, "--images", calib, "--holdout", held, "-o", out,
            "--method", "minmax", "--no-progress"]
    first = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env)
    assert first.returncode == 0, first.stderr
    (tmp_path / "out" / "notes.txt").write_text("the user's own file")
    _calibration_is_complete(out)
    proc = subprocess.Popen(args + ["--force"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, env=env, preexec_fn=default_sigint)
    try:
        for _ in range(6000):  # the new ranges exist (staged), or the old manifest is already gone
            if glob.glob(os.path.join(out, ".*staging*", "ort-ranges.json")) or \
                    not os.path.exists(os.path.join(out, "calibration.json")) or proc.poll() is not None:
                break
            time.sleep(0.01)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    _calibration_is_complete(out)  # the previous one, or the new one if the signal came after the swap
    assert (tmp_path / "out" / "notes.txt").read_text() == "the user's own file"
    assert not [n for n in os.listdir(out) if n.startswith(".")], os.listdir(out)
    assert not glob.glob(os.path.join(env["TMPDIR"], "edgealex-*"))
    assert "Traceback" not in err
