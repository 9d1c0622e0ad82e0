"""edgealex distill (Hinton loss through the trainer) and the trainer options it shares: gradient
accumulation, warm-up, dropout, slim widths."""

import json

import pytest
from conftest import cli_runner

torch = pytest.importorskip("torch")
pytest.importorskip("cv2")

from train_helpers import TINY_TRAIN, TINY_WIDTHS, easy_dataset  # noqa: E402

from edgealex.cli.main import app  # noqa: E402
from edgealex.errors import EdgeAlexError  # noqa: E402
from edgealex.models.alexnet import build_model, load_checkpoint, save_checkpoint, weights_sha256  # noqa: E402
from edgealex.preprocess import Preprocess  # noqa: E402
from edgealex.train import settings_for, train  # noqa: E402
from edgealex.train.distill import distill  # noqa: E402
from edgealex.train.trainer import distillation_loss  # noqa: E402

SPEC = Preprocess(input_size=64, resize=72)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return easy_dataset(tmp_path_factory.mktemp("distill") / "data")


@pytest.fixture(scope="module")
def hole_teacher(tmp_path_factory):
    """A teacher that says "hole" (class 1) for every image, whatever it shows."""
    model = build_model("alexnet", 2, seed=0, widths=TINY_WIDTHS)
    with torch.no_grad():
        model.classifier[6].weight.zero_()
        model.classifier[6].bias.copy_(torch.tensor([0.0, 40.0]))
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    save_checkpoint(str(path), model, ["ok", "hole"], SPEC)
    return str(path)


def test_distillation_loss_is_hintons():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    y = torch.tensor([0, 1, 2, 3])
    hard = torch.nn.functional.cross_entropy(s, y)
    T = 3.0
    p_t = torch.softmax(t / T, 1)
    kl = (p_t * (torch.log(p_t) - torch.log_softmax(s / T, 1))).sum(1).mean()
    got = distillation_loss(torch, s, t, hard, T, 0.7)
    assert torch.allclose(got, 0.7 * T * T * kl + 0.3 * hard, atol=1e-6)
    assert torch.allclose(distillation_loss(torch, s, t, hard, T, 0.0), hard)
    assert float(distillation_loss(torch, s, s, hard, T, 1.0)) == pytest.approx(0.0, abs=1e-6)


def test_student_follows_the_teacher_not_the_labels(data, hole_teacher, tmp_path):
    """alpha=1 trains on the soft targets alone: the student copies a teacher that always says
    "hole" (holdout accuracy exactly 50% on a balanced holdout), the labels never reach it."""
    options = dict(TINY_TRAIN, epochs=3)
    result = distill(hole_teacher, str(data), str(tmp_path / "s.pt"), arch="alexnet", alpha=1.0, temperature=2.0,
                     preset=None, threads=2, **options)
    assert result.holdout_acc == 0.5
    assert [row[0] for row in result.holdout_confusion] == [0, 0]  # nothing predicted "ok"
    ckpt = load_checkpoint(str(tmp_path / "s.pt"))
    teacher_hash = weights_sha256(load_checkpoint(hole_teacher)["state_dict"])
    assert ckpt["teacher"]["sha256"] == teacher_hash == ckpt["settings"]["teacher_sha256"]
    assert ckpt["settings"]["distill_alpha"] == 1.0 and ckpt["widths"] == TINY_WIDTHS


def test_distill_reuse_resume_and_settings_key(data, hole_teacher, tmp_path):
    out = str(tmp_path / "s.pt")
    options = dict(TINY_TRAIN, epochs=1)
    first = distill(hole_teacher, str(data), out, alpha=0.5, preset=None, threads=2, **options)
    again = distill(hole_teacher, str(data), out, alpha=0.5, preset=None, threads=2, reuse=True, **options)
    assert again.reused and again.settings_key == first.settings_key
    other = distill(hole_teacher, str(data), out, alpha=0.5, temperature=8.0, preset=None, threads=2, reuse=True,
                    **options)
    assert not other.reused and other.settings_key != first.settings_key
    alone = settings_for(None, **options)
    assert alone.key() != first.settings_key  # the teacher is part of the key
    # the keys of runs without the new options are what they were before these fields existed
    legacy = {k: v for k, v in alone.to_dict().items()
              if k not in ("accum_steps", "init_sha256", "teacher_sha256", "distill_temperature", "distill_alpha")}
    legacy_settings = settings_for(None, **{k: v for k, v in legacy.items() if k != "widths"})
    from edgealex.artifacts import sha256_bytes
    legacy.pop("widths")
    assert legacy_settings.key() == sha256_bytes(json.dumps(legacy, sort_keys=True).encode("utf-8"))
    resumed = distill(hole_teacher, str(data), out, alpha=0.5, temperature=8.0, preset=None, threads=2,
                      resume=str(tmp_path / "s.last.pt"), **dict(options, epochs=2))
    assert resumed.resumed_from and [h["epoch"] for h in resumed.history] == [1, 2]
    with pytest.raises(EdgeAlexError, match="pass the same --teacher"):
        train(str(data), out, resume=str(tmp_path / "s.last.pt"), epochs=3, threads=2)


def test_teacher_with_other_classes_is_refused(data, tmp_path):
    teacher = tmp_path / "t.pt"
    save_checkpoint(str(teacher), build_model("alexnet", 3, widths=TINY_WIDTHS), ["a", "b", "c"], SPEC)
    res = cli_runner().invoke(app, ["distill", "--teacher", str(teacher), "--data", str(data), "-o",
                                   str(tmp_path / "s.pt")])
    assert res.exit_code == 1 and "trained with other classes" in res.output and "Traceback" not in res.output
    res = cli_runner().invoke(app, ["distill", "--teacher", str(teacher), "--data", str(data), "--alpha", "2"])
    assert res.exit_code == 1 and res.output.startswith("--alpha | must be between 0 and 1, got 2")
    res = cli_runner().invoke(app, ["distill", "--teacher", str(teacher), "--data", str(data), "--temperature", "inf"])
    assert res.exit_code == 1 and res.output.startswith("--temperature | inf is not a finite number")


def test_cli_distill_json(data, hole_teacher, tmp_path):
    res = cli_runner().invoke(app, ["distill", "--teacher", hole_teacher, "--data", str(data), "--preset", "fast",
                                   "--width-mult", "0.002", "-o", str(tmp_path / "s.pt"), "--threads", "2", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["settings"]["widths"] == {"conv": [8] * 5, "fc": [8, 8]} and out["holdout_acc"] is not None


def test_gradient_accumulation_equals_the_larger_batch(data, tmp_path):
    """Two accumulated batches of 4 make the same update as one batch of 8 (same images, no dropout)."""
    # SGD: its update is linear in the gradient (Adam divides float noise of near-zero gradients up to lr)
    options = dict(TINY_TRAIN, epochs=1, hflip=False, vflip=False, input_size=72, resize=72, optimizer="sgd", lr=0.05)
    big = train(str(data), str(tmp_path / "b.pt"), preset=None, threads=2, **dict(options, batch=8))
    acc = train(str(data), str(tmp_path / "a.pt"), preset=None, threads=2, **dict(options, batch=4, accum_steps=2))
    train(str(data), str(tmp_path / "p.pt"), preset=None, threads=2, **dict(options, batch=4))
    b, a, p = (load_checkpoint(str(tmp_path / n))["state_dict"] for n in ("b.pt", "a.pt", "p.pt"))
    accumulated = max(float((b[k] - a[k]).abs().max()) for k in b)  # float summation order only
    unaccumulated = max(float((b[k] - p[k]).abs().max()) for k in b)  # twice the steps of half the batch
    assert accumulated < 1e-4 and accumulated < 0.02 * unaccumulated
    assert acc.settings["accum_steps"] == 2 and big.settings_key != acc.settings_key


def test_warmup_dropout_accum_options_on_the_cli(data, tmp_path):
    res = cli_runner().invoke(app, ["train", "--data", str(data), "--preset", "fast", "-o", str(tmp_path / "m.pt"),
                                   "--width-mult", "0.002", "--warmup-epochs", "5", "--dropout", "0.7",
                                   "--accum-steps", "2", "--threads", "2", "--json"])
    assert res.exit_code == 0, res.output
    settings = json.loads(res.stdout)["settings"]
    assert settings["warmup_epochs"] == 5 and settings["dropout"] == 0.7 and settings["accum_steps"] == 2
    res = cli_runner().invoke(app, ["train", "--data", str(data), "--accum-steps", "0"])
    assert res.exit_code == 1 and "--accum-steps 0" in res.output
