"""Synthetic defect generator and dataset writer: determinism, balance, layout, caching, atomicity."""

import json
import os

import numpy as np
import pytest
from conftest import cli_runner

from edgealex.cli.main import app
from edgealex.errors import EdgeAlexError
from edgealex.synth import LABELS, SURFACES, draw_defect, read_dataset, render_sample, render_surface, synthesize
from edgealex.synth.dataset import SPLITS, parse_splits, split_counts

cv2 = pytest.importorskip("cv2")


def test_same_seed_same_pixels_other_seed_other_pixels():
    for label in LABELS:
        a = render_sample(np.random.default_rng(7), label, size=96)
        b = render_sample(np.random.default_rng(7), label, size=96)
        c = render_sample(np.random.default_rng(8), label, size=96)
        assert a.dtype == np.uint8 and a.shape == (96, 96, 3)
        assert np.array_equal(a, b)
        assert not np.array_equal(a, c)


@pytest.mark.parametrize("size", [32, 64, 200, 256])
def test_every_label_and_surface_renders_at_several_sizes(size):
    for i, label in enumerate(LABELS):
        surface = SURFACES[i % len(SURFACES)]
        image = render_sample(np.random.default_rng(i), label, size=size, surface=surface)
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
        assert image.std() > 1.0  # textured, not a flat fill


def test_defects_change_the_surface_where_drawn_and_only_there():
    rng = np.random.default_rng(3)
    frame = render_surface(rng, (360, 640), "painted_plastic")
    assert frame.shape == (360, 640, 3)
    box = (400, 100, 120, 120)
    for label in LABELS[1:]:
        out = draw_defect(np.random.default_rng(5), frame, label, box=box)
        diff = np.abs(out.astype(int) - frame.astype(int)).max(axis=2)
        x, y, w, h = box
        inside = diff[y:y + h, x:x + w]
        outside = diff.copy()
        outside[y:y + h, x:x + w] = 0
        assert outside.max() == 0, label
        assert (inside > 10).sum() > 20, label  # a visible defect, not a one-pixel cue
    assert np.array_equal(draw_defect(rng, frame, "ok"), frame)
    assert frame is not draw_defect(rng, frame, "ok")


def test_defects_differ_from_ok_by_more_than_noise_on_average():
    # class signal: mean |defect - same surface without it| is clearly above zero for every class
    for label in LABELS[1:]:
        diffs = []
        for i in range(5):
            base = render_surface(np.random.default_rng(i), (128, 128), SURFACES[i])
            out = draw_defect(np.random.default_rng(100 + i), base, label)
            diffs.append(np.abs(out.astype(int) - base.astype(int)).sum())
        assert min(diffs) > 500, label


def test_bad_render_arguments_are_user_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(EdgeAlexError, match="unknown defect class"):
        render_sample(rng, "dent")
    with pytest.raises(EdgeAlexError, match="unknown surface"):
        render_surface(rng, (64, 64), "glass")
    with pytest.raises(EdgeAlexError, match="box"):
        draw_defect(rng, np.zeros((64, 64, 3), np.uint8), "hole", box=(70, 70, 10, 10))
    with pytest.raises(EdgeAlexError, match="32 pixels"):
        render_sample(rng, "ok", size=16)


def test_split_counts_sum_and_keep_every_split():
    assert split_counts(400, (0.7, 0.1, 0.1, 0.1)) == [280, 40, 40, 40]
    for n in range(4, 40):
        counts = split_counts(n, (0.7, 0.1, 0.1, 0.1))
        assert sum(counts) == n and min(counts) >= 1
    assert parse_splits("0.8,0.1,0.05,0.05") == (0.8, 0.1, 0.05, 0.05)
    with pytest.raises(EdgeAlexError):
        parse_splits("0.8,0.2")


def _files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            full = os.path.join(dirpath, name)
            if name.endswith(".jpg"):
                with open(full, "rb") as handle:
                    out[os.path.relpath(full, root)] = handle.read()
    return out


def test_synthesize_layout_balance_and_determinism(tmp_path):
    a = synthesize(tmp_path / "a", per_class=10, size=64, seed=1, workers=1)
    b = synthesize(tmp_path / "b", per_class=10, size=64, seed=1, workers=1)
    c = synthesize(tmp_path / "c", per_class=10, size=64, seed=2, workers=1)
    assert not a.reused and a.total == 50
    assert a.labels == LABELS
    for split in SPLITS:
        counts = a.counts[split]
        assert set(counts) == set(LABELS) and len(set(counts.values())) == 1  # balanced
        for label in LABELS:
            assert len(os.listdir(tmp_path / "a" / split / label)) == counts[label]
    assert (tmp_path / "a" / "labels.txt").read_text().split() == LABELS
    manifest = json.loads((tmp_path / "a" / "dataset.json").read_text())
    assert manifest["params"]["seed"] == 1 and manifest["params"]["per_class"] == 10
    assert len(manifest["files"]) == 50 and manifest["data_hash"] == a.data_hash
    surfaces = {f["surface"] for f in manifest["files"]}
    assert surfaces == set(SURFACES)
    fa, fb, fc = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert fa == fb and a.data_hash == b.data_hash
    assert fa.keys() == fc.keys() and fa != fc and a.data_hash != c.data_hash
    image = cv2.imread(str(tmp_path / "a" / "train" / "hole" / "00000.jpg"))
    assert image.shape == (64, 64, 3)
    assert read_dataset(tmp_path / "a").data_hash == a.data_hash


def test_worker_processes_give_the_same_dataset(tmp_path):
    one = synthesize(tmp_path / "one", per_class=16, size=64, seed=3, workers=1)
    two = synthesize(tmp_path / "two", per_class=16, size=64, seed=3, workers=2)
    assert one.data_hash == two.data_hash


def test_cache_reuse_refusal_and_force(tmp_path):
    out = tmp_path / "ds"
    first = synthesize(out, per_class=4, size=64, seed=0, workers=1)
    again = synthesize(out, per_class=4, size=64, seed=0, workers=1)
    assert again.reused and again.data_hash == first.data_hash
    with pytest.raises(EdgeAlexError, match="--force"):
        synthesize(out, per_class=4, size=64, seed=1, workers=1)
    other = synthesize(out, per_class=4, size=64, seed=1, workers=1, force=True)
    assert not other.reused and other.data_hash != first.data_hash
    assert read_dataset(out).data_hash == other.data_hash
    # a damaged cache (missing image) is not reused
    os.remove(out / "train" / "ok" / "00000.jpg")
    with pytest.raises(EdgeAlexError, match="not empty"):
        synthesize(out, per_class=4, size=64, seed=1, workers=1)
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".")]
    assert leftovers == []


def test_interrupted_run_leaves_nothing(tmp_path):
    out = tmp_path / "ds"

    def stop(done, total):
        if done == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synthesize(out, per_class=4, size=64, workers=1, progress=stop)
    assert not out.exists()
    assert os.listdir(tmp_path) == []


def test_bad_parameters_are_user_errors(tmp_path):
    with pytest.raises(EdgeAlexError, match="per-class"):
        synthesize(tmp_path / "x", per_class=2)
    with pytest.raises(EdgeAlexError, match="size"):
        synthesize(tmp_path / "x", per_class=4, size=16)
    (tmp_path / "file").write_text("x")
    with pytest.raises(EdgeAlexError, match="not a folder"):
        synthesize(tmp_path / "file", per_class=4, size=64)


def test_cli_synth(tmp_path):
    runner = cli_runner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["data", "synth", "-o", str(out), "--per-class", "4", "--size", "64", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["total"] == 20 and data["reused"] is False
    result = runner.invoke(app, ["data", "synth", "-o", str(out), "--per-class", "4", "--size", "64"])
    assert result.exit_code == 0 and "reused" in result.output
    bad = runner.invoke(app, ["data", "synth", "-o", str(out), "--per-class", "4", "--size", "64", "--seed", "9"])
    assert bad.exit_code == 1 and "--force" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["data", "synth", "-o", str(tmp_path / "y"), "--splits", "1,2"])
    assert bad.exit_code == 1 and "four comma-separated" in bad.output


def _changed_pixels(label, difficulty, n):
    """Summed change of the pixels a defect changes by more than the sensor noise: same seed rendered as ok and as ``label``
    (the surface is drawn first from the same stream, so only the defect and the noise differ)."""
    ok = render_sample(np.random.default_rng([5, n]), "ok", size=128, surface=SURFACES[n % len(SURFACES)])
    bad = render_sample(np.random.default_rng([5, n]), label, size=128, surface=SURFACES[n % len(SURFACES)],
                        difficulty=difficulty)
    diff = np.abs(bad.astype(np.int16) - ok.astype(np.int16)).max(axis=2)
    return int(diff[diff > 30].sum())  # how much the defect changes the image: area x contrast


def test_hard_difficulty_draws_smaller_fainter_defects():
    for label in ("scratch", "stain", "crack", "hole"):
        normal = sum(_changed_pixels(label, "normal", n) for n in range(8))
        hard = sum(_changed_pixels(label, "hard", n) for n in range(8))
        assert normal > 0 and hard < 0.5 * normal, (label, normal, hard)
    # the normal path is the generator it always was: an explicit "normal" draws the same bytes
    a = render_sample(np.random.default_rng(3), "crack", size=96)
    b = render_sample(np.random.default_rng(3), "crack", size=96, difficulty="normal")
    assert np.array_equal(a, b)
    with pytest.raises(EdgeAlexError, match="unknown difficulty"):
        render_sample(np.random.default_rng(0), "hole", difficulty="extreme")


def test_hard_dataset_records_its_difficulty(tmp_path):
    hard = synthesize(str(tmp_path / "hard"), per_class=4, size=64, difficulty="hard", workers=1)
    normal = synthesize(str(tmp_path / "normal"), per_class=4, size=64, workers=1)
    assert hard.params["difficulty"] == "hard" and "difficulty" not in normal.params
    assert hard.params["hard"] == {"box_scale": 0.55, "contrast": [0.6, 0.9]} and "hard" not in normal.params
    assert hard.data_hash != normal.data_hash
    res = cli_runner().invoke(app, ["data", "synth", "-o", str(tmp_path / "x"), "--per-class", "4", "--size", "64",
                                   "--difficulty", "extreme"])
    assert res.exit_code == 1 and "unknown difficulty" in res.output


def test_a_hard_dataset_of_the_earlier_generator_is_refused_with_the_difference(tmp_path):
    """Found by a fresh-user attack (issue 15): a hard dataset made before the hard contrast changed
    (its manifest has no "hard" parameters) was refused as "does not hold this exact dataset" without
    saying why; --force replaces it with one that records them."""
    import json

    out = tmp_path / "hard"
    synthesize(str(out), per_class=4, size=64, difficulty="hard", workers=1)
    manifest = json.loads((out / "dataset.json").read_text())
    del manifest["params"]["hard"]  # what the earlier generator wrote
    (out / "dataset.json").write_text(json.dumps(manifest))
    args = ["data", "synth", "-o", str(out), "--per-class", "4", "--size", "64", "--difficulty", "hard"]
    res = cli_runner().invoke(app, args)
    assert res.exit_code == 1 and "it was made with other parameters (hard: (none) there, " in res.output
    assert '"contrast": [0.6, 0.9]} asked' in res.output and "Traceback" not in res.output
    res = cli_runner().invoke(app, ["data", "synth", "-o", str(out), "--per-class", "4", "--size", "64"])
    assert res.exit_code == 1 and 'difficulty: "hard" there, (none) asked' in res.output
    res = cli_runner().invoke(app, args + ["--force"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "dataset.json").read_text())["params"]["hard"] == {"box_scale": 0.55,
                                                                               "contrast": [0.6, 0.9]}
    (out / "train" / "ok" / "00000.jpg").unlink()  # same parameters, a file gone
    res = cli_runner().invoke(app, args)
    assert res.exit_code == 1 and "made with these parameters but files are missing or changed" in res.output
