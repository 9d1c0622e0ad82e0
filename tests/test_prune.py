"""edgealex prune: L1 structured pruning removes exactly the weakest filters/neurons, writes a checkpoint
that rebuilds from its own widths (export, evaluate), records its parent, fine-tunes through the trainer."""

import json

import pytest
from conftest import cli_runner

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

from train_helpers import TINY_TRAIN, TINY_WIDTHS, easy_dataset  # noqa: E402

from edgealex.artifacts import sha256_file  # noqa: E402
from edgealex.cli.main import app  # noqa: E402
from edgealex.errors import EdgeAlexError  # noqa: E402
from edgealex.export.onnx import export_onnx  # noqa: E402
from edgealex.models.alexnet import (build_model, kept_count, load_checkpoint, parameter_count,  # noqa: E402
                                     save_checkpoint, weights_sha256)
from edgealex.models.prune import prune, prune_model  # noqa: E402
from edgealex.preprocess import Preprocess  # noqa: E402

LABELS = ["ok", "scratch", "stain"]


def _silence_half(model, generator):
    """Zero a random half of every conv layer's filters and hidden FC neurons (weights, bias, BN shift):
    they output exactly 0 after ReLU, so removing them must not change the logits."""
    nn = torch.nn
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
    fcs = [m for m in model.classifier if isinstance(m, nn.Linear)][:2]
    silenced = []
    with torch.no_grad():
        for i, layer in enumerate(convs + fcs):
            count = layer.weight.shape[0]
            dead = torch.randperm(count, generator=generator)[:count // 2]
            layer.weight[dead] = 0.0
            layer.bias[dead] = 0.0
            if i < len(bns):
                bns[i].bias[dead] = 0.0
                bns[i].running_mean[dead] = 0.0
                bns[i].running_mean[~torch.isin(torch.arange(count), dead)] = 0.1
                bns[i].running_var.uniform_(0.5, 2.0)
            silenced.append(sorted(set(range(count)) - set(dead.tolist())))
    return silenced


@pytest.mark.parametrize("arch", ["alexnet", "alexnet-v1", "alexnet-bn"])
def test_pruning_removes_exactly_the_zero_l1_filters(arch):
    generator = torch.Generator().manual_seed(1)
    model = build_model(arch, 3, seed=0, widths=TINY_WIDTHS).eval()
    kept = _silence_half(model, generator)
    small = prune_model(model, keep=0.5, multiple_of=8)
    assert small.widths == {"conv": [8] * 5, "fc": [16, 16]}
    x = torch.randn(2, 3, 96, 96, generator=generator)
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5)
    conv1 = [m for m in small.features if isinstance(m, torch.nn.Conv2d)][0]
    assert torch.equal(conv1.weight, model.features[0].weight[kept[0]])
    assert parameter_count(small) < 0.4 * parameter_count(model)


def test_kept_counts_round_to_multiples():
    assert kept_count(256, 0.7) == 176 and kept_count(4096, 0.3) == 1232
    assert kept_count(16, 0.1) == 8 and kept_count(5, 0.5, multiple=8) == 5 and kept_count(10, 0.5, 1) == 5
    with pytest.raises(EdgeAlexError, match="kept fraction"):
        kept_count(10, 1.5)


def test_pruned_checkpoint_rebuilds_exports_and_records_its_parent(tmp_path):
    parent = tmp_path / "parent.pt"
    model = build_model("alexnet", 3, seed=2, widths=TINY_WIDTHS)
    save_checkpoint(str(parent), model, LABELS, Preprocess(input_size=112, resize=128))
    result = prune(str(parent), str(tmp_path / "small.pt"), keep=0.5)
    ckpt = load_checkpoint(result.path)  # weights_only=True
    assert ckpt["widths"] == {"conv": [8] * 5, "fc": [16, 16]} == result.widths
    assert ckpt["parent"]["sha256"] == sha256_file(parent) and ckpt["parent"]["widths"] == TINY_WIDTHS
    assert ckpt["pruning"]["criterion"] == "l1" and ckpt["pruning"]["parameters_after"] == result.parameters_after
    assert ckpt["labels"] == LABELS and ckpt["preprocess"]["input_size"] == 112
    exported = export_onnx(str(tmp_path / "small.onnx"), weights=result.path, parity_samples=2)
    assert exported.max_abs_diff <= 1e-4 and exported.info.provenance["widths"] == result.widths
    assert exported.info.provenance["parent_checkpoint"]["sha256"] == sha256_file(parent)
    assert exported.info.provenance["parameters"] == result.parameters_after
    with pytest.raises(EdgeAlexError, match="would overwrite"):
        prune(str(parent), str(parent), keep=0.5)


def test_se_and_depthwise_are_refused(tmp_path):
    for arch in ("alexnet-se", "alexnet-dw"):
        path = tmp_path / f"{arch}.pt"
        save_checkpoint(str(path), build_model(arch, 3, widths=TINY_WIDTHS), LABELS, Preprocess())
        res = cli_runner().invoke(app, ["prune", str(path), "--keep", "0.5", "-o", str(tmp_path / "o.pt")])
        assert res.exit_code == 1 and "structured pruning supports only" in res.output
        assert "Traceback" not in res.output


def test_cli_prune_json_and_errors(tmp_path):
    parent = tmp_path / "p.pt"
    save_checkpoint(str(parent), build_model("alexnet-v1", 3, widths=TINY_WIDTHS), LABELS, Preprocess())
    res = cli_runner().invoke(app, ["prune", str(parent), "--keep", "0.5", "-o", str(tmp_path / "s.pt"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["parameters_after"] < out["parameters_before"] and out["arch"] == "alexnet-v1"
    for args, message in ((["--keep", "0"], "kept fraction"), (["--keep", "0.5", "--fine-tune-epochs", "1"], "needs training data")):
        res = cli_runner().invoke(app, ["prune", str(parent), "-o", str(tmp_path / "t.pt")] + args)
        assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output


def test_fine_tune_after_pruning_keeps_lineage_and_reuses(tmp_path):
    data = easy_dataset(tmp_path / "data")
    parent = tmp_path / "parent.pt"
    save_checkpoint(str(parent), build_model("alexnet", 2, seed=0, widths=TINY_WIDTHS), ["ok", "hole"],
                    Preprocess(input_size=64, resize=72))
    options = {k: v for k, v in TINY_TRAIN.items() if k not in ("widths", "epochs")}
    out = tmp_path / "ft.pt"
    result = prune(str(parent), str(out), keep=0.5, fine_tune_epochs=1, data=str(data), preset=None, threads=2,
                   **options)
    ckpt = load_checkpoint(str(out))
    assert ckpt["widths"] == result.widths and ckpt["parent"]["sha256"] == sha256_file(parent)
    unfinetuned = tmp_path / "ft.unfinetuned.pt"
    assert ckpt["init_weights"]["sha256"] == weights_sha256(load_checkpoint(str(unfinetuned))["state_dict"])
    assert ckpt["settings"]["init_sha256"] == ckpt["init_weights"]["sha256"]
    assert result.fine_tune["holdout_acc"] is not None and result.fine_tune["best_epoch"] == 1
    # the fine-tuned weights moved away from the pruned start
    start = load_checkpoint(str(unfinetuned))["state_dict"]["classifier.6.weight"]
    assert not torch.equal(start, ckpt["state_dict"]["classifier.6.weight"])
    again = prune(str(parent), str(out), keep=0.5, fine_tune_epochs=1, data=str(data), preset=None, threads=2,
                  reuse=True, **options)
    assert again.fine_tune["reused"] is True


def test_prune_never_overwrites_its_input_and_leaves_nothing_on_bad_fine_tune_options(tmp_path):
    """Found by a fresh-user attack (issue 15): the input was overwritten through a symlink or when it
    was named like the intermediate <out>.unfinetuned.pt; bad fine-tuning options left a 57 MB
    intermediate behind; --fine-tune-epochs -1 was reported as a missing --data."""
    import os

    parent = tmp_path / "p.pt"
    save_checkpoint(str(parent), build_model("alexnet", 2, seed=0, widths=TINY_WIDTHS), ["ok", "hole"],
                    Preprocess(input_size=64, resize=72))
    before = sha256_file(parent)
    os.symlink(str(parent), str(tmp_path / "link.pt"))
    data = easy_dataset(tmp_path / "data")
    res = cli_runner().invoke(app, ["prune", str(tmp_path / "link.pt"), "--keep", "0.5", "-o", str(parent)])
    assert res.exit_code == 1 and "would overwrite the checkpoint" in res.output and sha256_file(parent) == before
    named_like_the_intermediate = tmp_path / "q.unfinetuned.pt"
    named_like_the_intermediate.write_bytes(parent.read_bytes())
    res = cli_runner().invoke(app, ["prune", str(named_like_the_intermediate), "--keep", "0.5", "--fine-tune-epochs",
                                    "1", "--data", str(data), "-o", str(tmp_path / "q.pt")])
    assert res.exit_code == 1 and "would overwrite the checkpoint being pruned" in res.output
    assert sha256_file(named_like_the_intermediate) == before
    res = cli_runner().invoke(app, ["prune", str(parent), "--keep", "0.5", "--fine-tune-epochs", "-1", "--data",
                                    str(data), "-o", str(tmp_path / "r.pt")])
    assert res.exit_code == 1 and res.output.startswith("--fine-tune-epochs -1 | must be a whole number, 0 or more")
    res = cli_runner().invoke(app, ["prune", str(parent), "--keep", "0.5", "--fine-tune-epochs", "1", "--data",
                                    str(tmp_path / "missing"), "-o", str(tmp_path / "s.pt")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert not list(tmp_path.glob("s*.pt"))  # nothing written before the fine-tuning's data was checked


def test_distill_refuses_to_overwrite_its_teacher(tmp_path):
    """Found by a fresh-user attack (issue 15): `distill --teacher m.pt -o m.pt` replaced the teacher."""
    teacher = tmp_path / "m.pt"
    save_checkpoint(str(teacher), build_model("alexnet", 2, seed=0, widths=TINY_WIDTHS), ["ok", "hole"],
                    Preprocess(input_size=64, resize=72))
    before = sha256_file(teacher)
    data = easy_dataset(tmp_path / "data")
    res = cli_runner().invoke(app, ["distill", "--teacher", str(teacher), "--data", str(data), "--preset", "fast",
                                    "-o", str(teacher)])
    assert res.exit_code == 1 and "would overwrite the --teacher checkpoint it learns from" in res.output
    assert sha256_file(teacher) == before


def test_a_keep_that_the_rounding_overrides_is_warned_about(tmp_path):
    """Found by a fresh-user attack (issue 15): --keep 0.5 --multiple-of 1000 kept every conv filter
    and still reported keep 0.5 without a word."""
    parent = tmp_path / "p.pt"
    save_checkpoint(str(parent), build_model("alexnet", 2, seed=0, widths=TINY_WIDTHS), ["ok", "hole"], Preprocess())
    res = cli_runner().invoke(app, ["prune", str(parent), "--keep", "0.5", "--multiple-of", "1000", "-o",
                                    str(tmp_path / "x.pt")])
    assert res.exit_code == 0 and "far from the asked fraction" in res.output
    res = cli_runner().invoke(app, ["prune", str(parent), "--keep", "0.5", "--multiple-of", "1", "-o",
                                    str(tmp_path / "y.pt")])
    assert res.exit_code == 0 and "far from the asked fraction" not in res.output


def test_prune_and_distill_take_the_exported_onnx_as_the_checkpoint(tmp_path):
    """The demo keeps no training checkpoint (issue 17 item 8): prune and distill's teacher read the
    FP32 ONNX's weights instead (load_checkpoint dispatches on .onnx), with the same result."""
    parent = tmp_path / "p.pt"
    save_checkpoint(str(parent), build_model("alexnet", 2, seed=0), ["ok", "hole"], Preprocess())
    onnx_path = str(tmp_path / "p.onnx")
    export_onnx(onnx_path, weights=str(parent))
    from_pt = prune(str(parent), str(tmp_path / "a.pt"), keep=0.5)
    from_onnx = prune(onnx_path, str(tmp_path / "b.pt"), keep=0.5)
    assert from_pt.widths == from_onnx.widths and from_pt.parameters_after == from_onnx.parameters_after
    a, b = load_checkpoint(str(tmp_path / "a.pt")), load_checkpoint(str(tmp_path / "b.pt"))
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert b["labels"] == ["ok", "hole"] and b["preprocess"] == a["preprocess"]


def test_prune_distill_fine_tunes_with_the_parent_as_teacher(tmp_path):
    """`prune --distill`: the fine-tuning's loss is the Hinton loss against the unpruned parent, whose
    weights hash joins the settings (a labels-only fine-tuning is a different cache entry)."""
    data = easy_dataset(tmp_path / "data")
    parent = tmp_path / "parent.pt"
    save_checkpoint(str(parent), build_model("alexnet", 2, seed=0, widths=TINY_WIDTHS), ["ok", "hole"],
                    Preprocess(input_size=64, resize=72))
    options = {k: v for k, v in TINY_TRAIN.items() if k not in ("widths", "epochs")}
    plain = prune(str(parent), str(tmp_path / "plain.pt"), keep=0.5, fine_tune_epochs=1, data=str(data), preset=None,
                  threads=2, **options)
    taught = prune(str(parent), str(tmp_path / "kd.pt"), keep=0.5, fine_tune_epochs=1, data=str(data), preset=None,
                   threads=2, distill=True, temperature=2.0, alpha=0.5, **options)
    ckpt = load_checkpoint(str(tmp_path / "kd.pt"))
    parent_hash = weights_sha256(load_checkpoint(str(parent))["state_dict"])
    assert ckpt["settings"]["teacher_sha256"] == parent_hash
    assert ckpt["settings"]["distill_temperature"] == 2.0 and ckpt["settings"]["distill_alpha"] == 0.5
    assert load_checkpoint(str(tmp_path / "plain.pt"))["settings"]["teacher_sha256"] is None
    assert taught.fine_tune["settings"] != plain.fine_tune["settings"]
    # same start, different loss: different weights
    a = load_checkpoint(str(tmp_path / "plain.pt"))["state_dict"]["classifier.6.weight"]
    assert not torch.equal(a, ckpt["state_dict"]["classifier.6.weight"])
    res = cli_runner().invoke(app, ["prune", str(parent), "--keep", "0.5", "--distill", "-o", str(tmp_path / "x.pt")])
    assert res.exit_code == 1 and res.output.startswith("--distill | distillation happens during fine-tuning")
    assert not (tmp_path / "x.pt").exists()
    res = cli_runner().invoke(app, ["prune", str(parent), "--keep", "0.5", "--distill", "--fine-tune-epochs", "1",
                                    "--data", str(data), "--alpha", "1.5", "-o", str(tmp_path / "y.pt")])
    assert res.exit_code == 1 and "Traceback" not in res.output and not list(tmp_path.glob("y*.pt"))


def _tiny_parent(path, input_size=64, resize=72):
    save_checkpoint(str(path), build_model("alexnet", 2, seed=0, widths=TINY_WIDTHS), ["ok", "hole"],
                    Preprocess(input_size=input_size, resize=resize))
    return path


@pytest.mark.parametrize("option, value", [("--temperature", "inf"), ("--temperature", "0"), ("--alpha", "nan")])
def test_prune_distill_settings_are_checked_before_anything_is_written(tmp_path, option, value):
    """Found by a fresh-user attack (issue 15): --temperature inf passed the check and failed at the
    first step as "lower --lr"; every bad T/alpha was found only after the pruned intermediate had
    been written over an existing <out>.unfinetuned.pt."""
    data = easy_dataset(tmp_path / "data")
    parent = _tiny_parent(tmp_path / "p.pt")
    existing = tmp_path / "o.unfinetuned.pt"
    _tiny_parent(existing, input_size=96, resize=110)  # an earlier run's intermediate
    before = sha256_file(existing)
    res = cli_runner().invoke(app, ["prune", str(parent), "--keep", "0.5", "--distill", "--fine-tune-epochs", "1",
                                    "--data", str(data), "--preset", "fast", option, value, "-o", str(tmp_path / "o.pt")])
    assert res.exit_code == 1 and res.output.startswith(f"{option} | ") and "Traceback" not in res.output
    assert "pruned" not in res.output  # refused before the pruning
    assert sha256_file(existing) == before and not (tmp_path / "o.pt").exists()


def test_distillation_options_without_distill_are_refused(tmp_path):
    """Found by a fresh-user attack (issue 15): `prune --temperature 2` without --distill fine-tuned on
    the labels alone, without a word."""
    data = easy_dataset(tmp_path / "data")
    parent = _tiny_parent(tmp_path / "p.pt")
    for option in ("--temperature", "--alpha"):
        res = cli_runner().invoke(app, ["prune", str(parent), "--keep", "0.5", "--fine-tune-epochs", "1", "--data",
                                        str(data), "--preset", "fast", option, "0.5", "-o", str(tmp_path / "o.pt")])
        assert res.exit_code == 1 and res.output.startswith(f"{option} 0.5 | is a distillation setting, and --distill")
        assert not list(tmp_path.glob("o*"))


def test_fine_tuning_keeps_the_parents_input_size(tmp_path):
    """Found by a fresh-user attack (issue 15): from the CLI the fine-tuning took the preset's 224 px,
    so a 64 px parent came back as a 224 px model (and taught the student on images it never saw)."""
    data = easy_dataset(tmp_path / "data")
    parent = _tiny_parent(tmp_path / "p.pt")
    res = cli_runner().invoke(app, ["prune", str(parent), "--keep", "0.5", "--distill", "--fine-tune-epochs", "1",
                                    "--data", str(data), "--preset", "fast", "-o", str(tmp_path / "o.pt")])
    assert res.exit_code == 0, res.output
    ckpt = load_checkpoint(str(tmp_path / "o.pt"))
    assert ckpt["preprocess"]["input_size"] == 64 and ckpt["preprocess"]["resize"] == 72
    assert ckpt["settings"]["input_size"] == 64
    assert "reused" not in res.output
    # the same command with --reuse says that nothing was trained (it printed a fine-tuning as if it ran)
    res = cli_runner().invoke(app, ["prune", str(parent), "--keep", "0.5", "--distill", "--fine-tune-epochs", "1",
                                    "--data", str(data), "--preset", "fast", "-o", str(tmp_path / "o.pt"), "--reuse"])
    assert res.exit_code == 0 and "(reused: " in res.output


def test_prune_never_overwrites_a_parent_named_like_the_resume_state(tmp_path):
    """Found by a fresh-user attack (issue 15): `prune q.last.pt -o q.pt --fine-tune-epochs 2` wrote the
    fine-tuning's resume state over the parent, then deleted it."""
    data = easy_dataset(tmp_path / "data")
    parent = _tiny_parent(tmp_path / "q.last.pt")
    before = sha256_file(parent)
    res = cli_runner().invoke(app, ["prune", str(parent), "--keep", "0.5", "--fine-tune-epochs", "2", "--data",
                                    str(data), "--preset", "fast", "-o", str(tmp_path / "q.pt")])
    assert res.exit_code == 1 and "would overwrite the checkpoint being pruned" in res.output
    assert sha256_file(parent) == before and not (tmp_path / "q.pt").exists()


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_interrupted_fine_tune_says_what_is_on_disk_and_how_to_continue(tmp_path, sig):
    """Found by a fresh-user attack (issue 15): an interrupted `prune --distill` fine-tuning ended with
    exit 130 and "continue with --resume <out>.last.pt", an option prune does not have. Now: one
    user error (exit 1) naming the files and a command that continues it, which keeps the lineage."""
    import os
    import re
    import shlex
    import signal
    import subprocess
    import sys
    import time

    from conftest import default_sigint

    easy_dataset(tmp_path / "data")
    parent = _tiny_parent(tmp_path / "p.pt")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=repo)
    last = tmp_path / "o.last.pt"
    # far more epochs than the test waits for: the signal always lands during the fine-tuning
    proc = subprocess.Popen([sys.executable, "-m", "edgealex", "prune", "p.pt", "--keep", "0.5", "--distill",
                             "--fine-tune-epochs", "100000", "--data", "data", "--preset", "fast", "--threads", "1",
                             "-o", "o.pt"], cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, env=env, preexec_fn=default_sigint)
    try:
        for _ in range(6000):
            if last.exists() or proc.poll() is not None:
                break
            time.sleep(0.02)
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1 and "Traceback" not in err, err
    message = err[err.index("o.pt | fine-tuning interrupted"):]
    assert "o.unfinetuned.pt" in message and "--resume o.last.pt" in message
    command = re.search(r"`(edgealex distill [^`]*)`", message).group(1)
    assert command == "edgealex distill --teacher p.pt --data data -o o.pt --resume o.last.pt"
    reached = load_checkpoint(str(last))["epoch"]
    cwd = os.getcwd()
    os.chdir(str(tmp_path))
    try:  # the command continues the fine-tuning (one epoch more, not 100000)
        res = cli_runner().invoke(app, shlex.split(command)[1:] + ["--epochs", str(reached + 1)])
    finally:
        os.chdir(cwd)
    assert res.exit_code == 0, res.output
    done = load_checkpoint(str(tmp_path / "o.pt"))
    assert done["epoch"] == reached + 1 and done["settings"]["teacher_sha256"]
    assert done["parent"]["sha256"] == sha256_file(parent) and done["pruning"]["keep"] == 0.5
    assert done["widths"] == {"conv": [8] * 5, "fc": [16, 16]}
