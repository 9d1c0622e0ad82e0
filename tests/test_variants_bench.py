"""benchmarks/variants.py's own rules (issue 15 fresh-user attack): ``--phase table`` renders records
without making datasets; a deployed model is re-made when its checkpoint's content changed."""

import importlib.util
import os
import subprocess
import sys

import pytest
from conftest import require_calibrate

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

from train_helpers import TINY_WIDTHS, easy_dataset  # noqa: E402

from edgealex.models.alexnet import build_model, save_checkpoint  # noqa: E402
from edgealex.preprocess import Preprocess  # noqa: E402
from edgealex.train.trainer import exported_weights_sha256  # noqa: E402
from edgealex.artifacts import sha256_file  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "variants.py")


def _variants():
    spec = importlib.util.spec_from_file_location("variants_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_phase_makes_no_dataset_and_says_what_is_missing(tmp_path):
    """It synthesized both datasets first (and crashed on a hard dataset made before the contrast
    change, which the table does not even read), then died with a FileNotFoundError traceback."""
    work = tmp_path / "work"
    res = subprocess.run([sys.executable, SCRIPT, "--phase", "table", "--work", str(work), "--out", str(tmp_path / "out")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                         env=dict(os.environ, PYTHONPATH=REPO))
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "no runs.json or speed.json there" in res.stderr and "--phase train" in res.stderr
    assert not [n for n in os.listdir(str(work)) if n.startswith("data-")]
    assert not (tmp_path / "out").exists()


def test_a_changed_checkpoint_is_exported_again_whatever_its_mtime(tmp_path):
    """The staleness rule compared mtimes: a checkpoint replaced by other weights with an older mtime
    (cp -p, rsync -t, a restored backup) kept the previous weights' ONNX, calibration and engines."""
    require_calibrate()
    variants = _variants()
    data = easy_dataset(tmp_path / "data", per_class_train=2, per_class_val=6, holdout=6)
    os.rename(str(data / "val"), str(data / "calib"))
    ckpt, out = str(tmp_path / "m.pt"), str(tmp_path / "deploy" / "m")
    save_checkpoint(ckpt, build_model("alexnet", 2, seed=0, widths=TINY_WIDTHS), ["ok", "hole"],
                    Preprocess(input_size=64, resize=72))
    first = variants._export_calibrate_build(ckpt, str(data), out)
    assert exported_weights_sha256(first["onnx"]) == sha256_file(ckpt)
    onnx_time = os.path.getmtime(first["onnx"])
    save_checkpoint(ckpt, build_model("alexnet", 2, seed=1, widths=TINY_WIDTHS), ["ok", "hole"],
                    Preprocess(input_size=64, resize=72))
    os.utime(ckpt, (onnx_time - 3600, onnx_time - 3600))  # other weights, an older mtime
    second = variants._export_calibrate_build(ckpt, str(data), out)
    assert exported_weights_sha256(second["onnx"]) == sha256_file(ckpt)
    # the same weights merely touched are not made again
    os.utime(ckpt, None)
    made = os.path.getmtime(second["onnx"])
    variants._export_calibrate_build(ckpt, str(data), out)
    assert os.path.getmtime(second["onnx"]) == made


def test_target_compares_the_candidate_and_alexnet_over_the_same_seeds():
    """A run cut short (or a failed candidate) left the candidate's INT8 mean over seeds 0-1 and
    AlexNet's over 0-2: a 3.3-pt gap that is only AlexNet's third seed decided the 0.5-pt target."""
    import argparse

    variants = _variants()
    seeds = [0, 1, 2]
    runs = {f"{setting}/{s}/alexnet": {"holdout_acc": acc}
            for setting in variants.SETTINGS for s, acc in zip(seeds, (0.9, 0.9, 1.0))}
    int8_acc = {f"{setting}/{s}/alexnet-pruned70": {"int8_accuracy": 0.9, "demo_rule": {"int8_accuracy": 0.9}}
                for setting in variants.SETTINGS for s in (0, 1)}  # seed 2 not measured
    acc = {("alexnet", setting): variants._stats([0.9, 0.9, 1.0]) for setting in variants.SETTINGS}
    trained = {"pytorch-eager-fp32-1thread/alexnet": {"img_per_s_median": 50.0}}
    trained.update({f"int8/{name}": {"img_per_s_median": 1000.0} for name in variants.TARGET_CANDIDATES})
    args = argparse.Namespace(seeds=seeds, input_size=80)
    target = variants.target_check([], {"trained": trained}, acc, args, int8_acc, runs)
    cand = {c["model"]: c for c in target["candidates"]}["alexnet-pruned70"]
    assert cand["accuracy_ok"] is True and cand["worst_delta_pts"] == pytest.approx(0.0)
    assert "normal +0.0 pts (90.0 ± 0.0 (n=2) vs 90.0 ± 0.0 (n=2))" in cand["accuracy_note"]
    assert target["model"] == "alexnet-pruned70" and target["verdict"].startswith("met (")
