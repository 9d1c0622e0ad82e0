"""edgealex train: data discovery, augmentation = preprocess, learning, checkpoints, resume, reuse, CLI errors."""

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from edgealex.cli.main import app
from edgealex.errors import EdgeAlexError
from edgealex.preprocess import Preprocess, preprocess_batch
from edgealex.synth import draw_defect, render_surface
from edgealex.train import PRESETS, evaluate, find_train_data, last_path_for, settings_for, train
from edgealex.train.data import augment_batch

cv2 = pytest.importorskip("cv2")
torch = pytest.importorskip("torch")

# A tiny, easy problem: plain painted surfaces with or without a big hole, 72 px images. It
# keeps the runs to seconds on a 2-core CPU while exercising the whole training path.
TINY = dict(input_size=64, resize=72, epochs=5, batch=8, optimizer="adam", lr=1e-4, warmup_epochs=0.0,
            lr_steps=(), max_train_images=None, max_val_images=None, vflip=True, init="default")


def _write(path, image):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), image)


def _easy_dataset(root, per_class_train=24, per_class_val=8, holdout=8):
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class_train), ("val", per_class_val), ("holdout", holdout)):
        for i in range(count):
            base = render_surface(rng, (72, 72), "painted_plastic")
            _write(root / split / "ok" / f"{i:03d}.png", base)
            _write(root / split / "hole" / f"{i:03d}.png", draw_defect(rng, base, "hole", box=(16, 16, 40, 40)))
    (root / "labels.txt").write_text("ok\nhole\n")
    return root


@pytest.fixture(scope="module")
def easy(tmp_path_factory):
    return _easy_dataset(tmp_path_factory.mktemp("easy") / "data")


@pytest.fixture(scope="module")
def trained(easy, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "model.pt"
    result = train(str(easy), str(out), preset=None, threads=2, device="cpu", save_every=100, **TINY)
    return result


def test_find_train_data_layouts_and_labels_order(tmp_path, easy):
    data = find_train_data(easy)
    assert data.labels == ["ok", "hole"]  # labels.txt order, not alphabetical
    assert data.layout == "splits" and len(data.train) == 48 and len(data.val) == 16 and len(data.holdout) == 16
    assert len(data.data_hash) == 64

    flat = tmp_path / "flat"
    for cls in ("b", "a"):
        for i in range(20):
            _write(flat / cls / f"{i:02d}.png", np.full((8, 8, 3), i, np.uint8))
    one = find_train_data(flat)
    two = find_train_data(flat)
    assert one.layout == "flat" and one.labels == ["a", "b"]
    assert one.val == two.val and len(one.val) == 4 and len(one.train) == 36  # every 10th per class
    assert {os.path.basename(p) for p, _ in one.val} == {"05.png", "15.png"}


@pytest.mark.parametrize("layout, message", [
    ("missing", "does not exist"),
    ("no-classes", "outside class sub-folders"),
    ("one-class", "at least 2 classes"),
    ("empty", "no image files"),
])
def test_bad_data_folders_are_user_errors(tmp_path, layout, message):
    root = tmp_path / "d"
    if layout == "no-classes":
        _write(root / "a.png", np.zeros((8, 8, 3), np.uint8))
    elif layout == "one-class":
        for i in range(3):
            _write(root / "train" / "ok" / f"{i}.png", np.zeros((8, 8, 3), np.uint8))
    elif layout == "empty":
        root.mkdir()
    with pytest.raises(EdgeAlexError, match=message):
        find_train_data(root)


def test_centre_crop_augmentation_equals_preprocess():
    # training tensors are normalised exactly as the deployed preprocessing does it
    spec = Preprocess(input_size=224, resize=256)
    images = np.stack([render_surface(np.random.default_rng(i), (256, 256)) for i in range(3)])
    ours = augment_batch(images, spec, np.random.default_rng(0), crop="center", hflip=False).numpy()
    reference = preprocess_batch(list(images), spec)
    assert ours.shape == reference.shape == (3, 3, 224, 224)
    assert np.abs(ours - reference).max() < 1e-5
    bgr = Preprocess(input_size=224, resize=256, channel_order="BGR")
    ours = augment_batch(images, bgr, np.random.default_rng(0), crop="center", hflip=False).numpy()
    assert np.abs(ours - preprocess_batch(list(images), bgr)).max() < 1e-5
    random = augment_batch(images, spec, np.random.default_rng(1), crop="random", hflip=True).numpy()
    assert random.shape == reference.shape and not np.allclose(random, reference)


def test_short_run_learns(trained):
    losses = [h["train_loss"] for h in trained.history]
    assert len(losses) == 5
    assert losses[-1] < losses[0] - 0.05, losses
    assert trained.best_val_acc >= 0.8  # two classes: chance is 0.5
    assert trained.holdout_acc is not None and trained.holdout_acc >= 0.75
    assert sum(map(sum, trained.holdout_confusion)) == 16
    assert trained.device == "cpu" and trained.threads == 2


def test_checkpoint_loads_weights_only_and_carries_everything(trained):
    ckpt = torch.load(trained.path, map_location="cpu", weights_only=True)
    assert ckpt["format"] == "edgealex-checkpoint" and ckpt["arch"] == "alexnet"
    assert ckpt["labels"] == ["ok", "hole"]
    assert Preprocess.from_dict(ckpt["preprocess"]) == Preprocess(input_size=64, resize=72)
    assert ckpt["epoch"] == trained.best_epoch and ckpt["best_val_acc"] == trained.best_val_acc
    assert ckpt["data_hash"] == trained.data_hash and ckpt["settings"]["optimizer"] == "adam"
    last = torch.load(last_path_for(trained.path), map_location="cpu", weights_only=True)
    assert last["epoch"] == 5 and "optimizer" in last["train_state"]
    sidecar = json.loads(open(trained.sidecar).read())
    assert sidecar["complete"] and sidecar["result"]["best_val_acc"] == trained.best_val_acc


def test_evaluate_matches_recorded_holdout(trained, easy):
    result = evaluate(trained.path, str(easy / "holdout"), device="cpu", threads=2)
    assert result.count == 16 and result.labels == ["ok", "hole"]
    assert abs(result.accuracy - trained.holdout_acc) < 1e-9
    assert result.confusion == trained.holdout_confusion


def test_resume_continues_and_refuses_finished_run(trained, easy, tmp_path):
    out = tmp_path / "m.pt"
    more = train(str(easy), str(out), preset=None, threads=2, device="cpu", resume=last_path_for(trained.path),
                 **dict(TINY, epochs=6))
    assert [h["epoch"] for h in more.history] == [1, 2, 3, 4, 5, 6]
    assert more.history[:5] == trained.history  # the recorded epochs come back unchanged
    assert more.resumed_from == last_path_for(trained.path)
    assert more.best_val_acc >= trained.best_val_acc
    state = torch.load(last_path_for(out), map_location="cpu", weights_only=True)
    assert state["epoch"] == 6
    with pytest.raises(EdgeAlexError, match="already holds 6 epoch"):
        train(str(easy), str(tmp_path / "n.pt"), preset=None, device="cpu", resume=last_path_for(out),
              **dict(TINY, epochs=6))
    with pytest.raises(EdgeAlexError, match="other labels"):
        other = tmp_path / "other"
        for cls in ("a", "b"):
            for i in range(2):
                _write(other / "train" / cls / f"{i}.png", np.zeros((8, 8, 3), np.uint8))
        train(str(other), str(tmp_path / "o.pt"), preset=None, device="cpu", resume=last_path_for(out),
              **dict(TINY, epochs=7))


def test_reuse_skips_identical_training(trained, easy):
    again = train(str(easy), trained.path, preset=None, reuse=True, device="cpu", **TINY)
    assert again.reused and again.best_val_acc == trained.best_val_acc and again.history == trained.history


def test_reuse_through_the_exported_onnx_when_the_checkpoint_is_gone(trained, easy, tmp_path):
    """`edgealex demo` keeps only the ONNX (issue 17 item 8): the training record plus an ONNX whose
    provenance names the recorded checkpoint stand for the removed checkpoint, and nothing else does."""
    import shutil

    from edgealex.export.onnx import export_onnx

    ckpt = tmp_path / "model.pt"
    shutil.copy(trained.path, ckpt)
    shutil.copy(trained.sidecar, str(ckpt) + ".json")
    onnx_path = str(tmp_path / "model.onnx")
    export_onnx(onnx_path, arch="alexnet", weights=str(ckpt))
    os.remove(ckpt)
    again = train(str(easy), str(ckpt), preset=None, reuse=True, device="cpu", exported_onnx=onnx_path, **TINY)
    assert again.reused and again.history == trained.history and not ckpt.exists()

    # an ONNX that is not the recorded one (changed after export) does not stand for it: the run trains
    with open(onnx_path, "ab") as handle:
        handle.write(b"\0")
    fresh = train(str(easy), str(ckpt), preset=None, reuse=True, device="cpu", exported_onnx=onnx_path,
                  **dict(TINY, epochs=1))
    assert not fresh.reused and ckpt.exists()


def test_torch_baseline_from_the_exported_onnx(tmp_path):
    """The PyTorch model rebuilt from an ONNX's initializers (the demo keeps no checkpoint) gives the
    ONNX's logits; exports that rewrite layers (BatchNorm folded, pooling rewritten below 224 px)
    keep no parameter names and are refused by name."""
    import onnxruntime as ort
    from edgealex.bench.baselines import torch_model_fn
    from edgealex.export.onnx import export_onnx
    from edgealex.models.alexnet import checkpoint_from_onnx
    from edgealex.modelinfo import read_model_info

    onnx_path = str(tmp_path / "m.onnx")
    export_onnx(onnx_path, arch="alexnet", num_classes=3, seed=5)
    fn, note, mismatch = torch_model_fn(read_model_info(onnx_path), onnx_path)
    x = np.random.default_rng(3).standard_normal((2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        torch_logits = fn().eval()(torch.from_numpy(x)).numpy()  # the bench runner sets eval() too
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    onnx_logits = session.run(None, {session.get_inputs()[0].name: x[:1]})[0]
    assert np.allclose(torch_logits[:1], onnx_logits, atol=1e-4) and note == f"weights {onnx_path}"
    assert mismatch is None  # no engine to compare with: cannot be told

    for arch, size in (("alexnet-bn", 224), ("alexnet", 64)):
        path = str(tmp_path / f"{arch}-{size}.onnx")
        export_onnx(path, arch=arch, num_classes=2, input_size=size, resize=size + 8)
        with pytest.raises(EdgeAlexError) as err:
            checkpoint_from_onnx(path)
        assert f"initializers do not hold the {arch} model's parameters" in str(err.value)
        assert ".pt" in err.value.note


def test_presets_are_valid_settings():
    assert {"demo", "fast", "recipe2012"} <= set(PRESETS)
    for name in PRESETS:
        settings = settings_for(name)
        assert settings.key() == settings_for(name).key()
    assert settings_for("demo", lr=0.5).key() != settings_for("demo").key()
    with pytest.raises(EdgeAlexError, match="unknown preset"):
        settings_for("slow")
    with pytest.raises(EdgeAlexError, match="optimizer"):
        settings_for("demo", optimizer="rmsprop")


def test_cli_train_runs_and_reports(easy, tmp_path):
    out = tmp_path / "cli.pt"
    result = CliRunner().invoke(app, ["train", "--data", str(easy), "-o", str(out), "--preset", "fast",
                                      "--threads", "2", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["path"] == str(out) and os.path.isfile(out) and data["labels"] == ["ok", "hole"]


@pytest.mark.parametrize("args, message", [
    (["--data", "{tmp}/nope"], "does not exist"),
    (["--data", "{flat}"], "outside class sub-folders"),
    (["--data", "{easy}", "--arch", "vgg"], "unknown architecture"),
    (["--data", "{easy}", "--optimizer", "rmsprop"], "unknown optimizer"),
    (["--data", "{easy}", "--epochs", "0"], "at least 1"),
])
def test_cli_bad_input_is_a_one_line_error(easy, tmp_path, args, message):
    flat = tmp_path / "flat"
    _write(flat / "a.png", np.zeros((8, 8, 3), np.uint8))
    args = [a.format(tmp=tmp_path, flat=flat, easy=easy) for a in args]
    result = CliRunner().invoke(app, ["train", *args, "-o", str(tmp_path / "m.pt")])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "m.pt").exists()
