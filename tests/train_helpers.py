"""A tiny two-class image dataset and tiny-width AlexNets for the prune/distill/trainer-option tests."""

import os

import numpy as np

from edgealex.synth import draw_defect, render_surface

TINY_WIDTHS = {"conv": [16, 16, 16, 16, 16], "fc": [32, 32]}
# 64 px inputs, Adam, no warm-up or decay: seconds per run on a 2-core CPU
TINY_TRAIN = dict(input_size=64, resize=72, epochs=2, batch=8, optimizer="adam", lr=1e-3, warmup_epochs=0.0,
                  lr_steps=(), vflip=True, init="default", dropout=0.0, widths=TINY_WIDTHS)


def easy_dataset(root, per_class_train=16, per_class_val=6, holdout=6):
    """ok vs hole on painted plastic, 72 px PNGs in train/val/holdout splits (labels.txt: ok, hole)."""
    import cv2

    rng = np.random.default_rng(0)
    for split, count in (("train", per_class_train), ("val", per_class_val), ("holdout", holdout)):
        for i in range(count):
            base = render_surface(rng, (72, 72), "painted_plastic")
            for label, img in (("ok", base), ("hole", draw_defect(rng, base, "hole", box=(16, 16, 40, 40)))):
                os.makedirs(root / split / label, exist_ok=True)
                assert cv2.imwrite(str(root / split / label / f"{i:03d}.png"), img)
    (root / "labels.txt").write_text("ok\nhole\n")
    return root
