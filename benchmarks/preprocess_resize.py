#!/usr/bin/env python3
"""Preprocessing cost of the resize choices: OpenCV ``linear``/``area`` vs ``pil-bilinear``.

One command::

    python benchmarks/preprocess_resize.py --out benchmarks/results

``pil-bilinear`` reproduces torchvision's Resize(256) + CenterCrop(224) (Pillow's antialiased
bilinear filter in its integer arithmetic, in numpy); ``linear`` and ``area`` are OpenCV's resize of
the centre crop. Frames: matplotlib's sample photograph resized (Pillow LANCZOS) to 1280x720 and
640x480. Each round times every method on the same frame, in rotating order, so load on the shared
machine hits all of them; the figure of merit is the median time ratio to ``linear``. Also recorded:
the mean |difference| from the torchvision reference computed with Pillow itself.

Writes ``preprocess_resize.json`` and ``.md`` naming the machine.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import LOAD_NOTE, machine, write_results  # noqa: E402

METHODS = ("linear", "area", "pil-bilinear")


def reference(rgb):
    """torchvision's Resize(256)+CenterCrop(224)+Normalize written out with Pillow (CHW float32)."""
    import numpy as np
    from PIL import Image

    from edgealex.preprocess import torchvision_geometry

    h, w = rgb.shape[:2]
    new_h, new_w, top, left = torchvision_geometry(h, w, 256, 224)
    img = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.BILINEAR), np.float32)[top:top + 224,
                                                                                               left:left + 224]
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    return ((img / 255.0 - mean) / std).transpose(2, 0, 1)


def main():
    import matplotlib
    import numpy as np
    from PIL import Image

    from edgealex.preprocess import Preprocess, preprocess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()

    photo = Image.open(os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data",
                                    "grace_hopper.jpg")).convert("RGB")
    rows = []
    for size in ((1280, 720), (640, 480)):
        rgb = np.asarray(photo.resize(size, Image.LANCZOS))
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        ref = reference(rgb)
        specs = {m: Preprocess(interpolation=m) for m in METHODS}
        out = np.empty((3, 224, 224), np.float32)
        for spec in specs.values():
            preprocess(bgr, spec, out=out)  # warm caches (the pil-bilinear weights are per frame size)
        times = {m: [] for m in METHODS}
        for r in range(args.rounds):
            order = METHODS[r % 3:] + METHODS[:r % 3]
            for m in order:
                t0 = time.perf_counter()
                for _ in range(args.reps):
                    preprocess(bgr, specs[m], out=out)
                times[m].append((time.perf_counter() - t0) / args.reps * 1e3)
        row = {"frame": f"{size[0]}x{size[1]}"}
        for m in METHODS:
            row[m + "_ms_median"] = statistics.median(times[m])
            row[m + "_ratio_to_linear"] = statistics.median(a / b for a, b in zip(times[m], times["linear"]))
            row[m + "_mean_abs_diff_vs_torchvision"] = float(np.mean(np.abs(preprocess(bgr, specs[m]) - ref)))
        rows.append(row)
        print(row, flush=True)

    data = {"benchmark": "preprocess_resize", "machine": machine(), "rounds": args.rounds, "reps": args.reps,
            "load_note": LOAD_NOTE, "rows": rows}
    md = ["# Preprocessing cost by resize method", "",
          f"Machine: {data['machine']['cpu_model']}, {data['machine']['cpu_count']} vCPU; load average "
          f"{data['machine']['loadavg']}. {LOAD_NOTE}.", "",
          "| frame | method | median ms | ratio to linear | mean abs diff vs torchvision (normalised units) |",
          "|---|---|---|---|---|"]
    for row in rows:
        for m in METHODS:
            md.append(f"| {row['frame']} | {m} | {row[m + '_ms_median']:.2f} | {row[m + '_ratio_to_linear']:.1f} | "
                      f"{row[m + '_mean_abs_diff_vs_torchvision']:.4f} |")
    write_results(args.out, "preprocess_resize", data, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
