"""The demo's training fitted to the machine (issue 17 item 6): a few real steps timed per memory
layout, epochs sized to a budget, the sizing kept so a second run reuses the training."""

import os

import pytest

pytest.importorskip("torch")


def test_probe_times_both_layouts_and_picks_the_faster():
    from edgealex.train.sizing import probe_training_speed
    from edgealex.train.trainer import settings_for

    settings = settings_for("fast", batch=2, input_size=64, resize=64, precision="fp32")
    probe = probe_training_speed(settings, num_classes=3, steps=1)
    assert set(probe.per_format_s) == {"channels_last", "contiguous"}
    assert probe.memory_format == min(probe.per_format_s, key=probe.per_format_s.get)
    assert probe.seconds_per_step > 0 and probe.images_per_s == pytest.approx(2 / probe.seconds_per_step, rel=0.01)
    assert probe.precision == "fp32"


@pytest.mark.parametrize("budget_s, ips, expected", [
    (180, 100, 8),   # a fast CPU: capped at max_epochs
    (180, 50, 6),    # 9000 images in budget -> 6 epochs of 1400
    (180, 20, 6),    # a slow CPU: never below the recipe's accuracy floor
    (180, 55, 7),
])
def test_epochs_for_budget(budget_s, ips, expected):
    from edgealex.train.sizing import decay_steps, epochs_for_budget

    epochs = epochs_for_budget(budget_s, ips, 1400, 6, 8)
    assert epochs == expected
    assert decay_steps(epochs) == (epochs - 2, epochs - 1)


def test_sizing_is_measured_once_then_read_back(tmp_path, monkeypatch):
    import edgealex.train.sizing as sizing
    from edgealex.demo import SIZING_FILE, DemoProfile, _layout, _sized_training
    from edgealex.synth.dataset import synthesize
    from edgealex.train.trainer import settings_for

    paths = _layout(str(tmp_path))
    synthesize(paths["data"], per_class=8, size=64, seed=0, workers=1)
    os.makedirs(os.path.dirname(paths["checkpoint"]))
    profile = DemoProfile(per_class=8, train_preset="fast", min_agreement=0.5, run_s=1, bench_s=0.1, warmup_s=0.1,
                          train_budget_s=0.001, min_epochs=2, max_epochs=3)
    settings = settings_for("fast", batch=2, input_size=64, resize=64, precision="fp32")
    overrides, layout = _sized_training(paths, profile, settings)
    assert overrides == {"epochs": 2, "lr_steps": ()}  # the budget fits nothing: the floor
    assert layout in ("channels_last", "contiguous")
    assert os.path.isfile(os.path.join(os.path.dirname(paths["checkpoint"]), SIZING_FILE))

    def no_probe(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(sizing, "probe_training_speed", no_probe)
    again, layout_again = _sized_training(paths, profile, settings)
    assert again == overrides and layout_again == layout
