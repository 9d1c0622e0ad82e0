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
