"""Synthetic defect data + AlexNet training on this machine (issue 8: the demo's time budget).

Measures, in one run:
  1. ``edgealex data synth``: wall time for the demo dataset (default 400 images per class,
     2,000 images at 256x256) with 1 and 2 rendering processes;
  2. training step cost of the options the trainer picks, interleaved side by side: fp32 vs
     bfloat16 autocast, default vs fused optimizer kernels (AlexNet, batch 32, 224x224);
  3. ``edgealex train --preset demo`` on that dataset: wall time, per-epoch validation accuracy,
     throughput, and the FP32 accuracy of the best checkpoint on the holdout split.

Writes results/synth_train.json and results/synth_train.md (machine, load average, versions).

    python benchmarks/synth_train.py --out benchmarks/results [--per-class 400] [--preset demo]
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import dumps, machine, write_results  # noqa: E402


def bench_synth(work, per_class, size):
    from edgealex.synth import synthesize

    import shutil

    rows = []
    for workers in (1, 2, 2):  # the second 2-process call finds the identical dataset (cache hit)
        out = os.path.join(work, f"synth-w{workers}")
        if not rows or rows[-1]["workers"] != workers:
            shutil.rmtree(out, ignore_errors=True)  # measure a cold generation
        start = time.perf_counter()
        result = synthesize(out, per_class=per_class, size=size, seed=0, workers=workers)
        seconds = time.perf_counter() - start
        rows.append({"workers": workers, "images": result.total, "seconds": round(seconds, 2),
                     "images_per_s": round(result.total / seconds, 1), "reused": result.reused,
                     "data_hash": result.data_hash})
        print(f"synth workers={workers} reused={result.reused}: {result.total} images in {seconds:.2f} s", flush=True)
    return rows


def bench_steps(steps=4, batch=32):
    """Seconds per training step for fp32/bf16 x default/fused optimizer (interleaved, best of N)."""
    import torch

    from edgealex.models.alexnet import build_model
    from edgealex.train.trainer import _keep_freed_memory, _use_bf16

    _keep_freed_memory()
    torch.set_num_threads(os.cpu_count() or 1)
    bf16_native = _use_bf16(torch, torch.device("cpu"), "auto")
    configs = [(p, f) for p in ("fp32", "bf16") for f in (False, True)]
    models = {}
    for precision, fused in configs:
        model = build_model("alexnet", 5, seed=0).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, fused=fused)
        models[(precision, fused)] = (model, opt)
    x = torch.randn(batch, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 5, (batch,))
    times = {c: [] for c in configs}
    for _ in range(steps + 1):  # the first round warms up oneDNN kernels and is dropped
        for config in configs:
            model, opt = models[config]
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config[0] == "bf16"):
                logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            times[config].append(time.perf_counter() - start)
    base = min(times[("fp32", False)][1:])
    rows = []
    for config in configs:
        best = min(times[config][1:])
        rows.append({"precision": config[0], "fused_optimizer": config[1], "seconds_per_step": round(best, 3),
                     "images_per_s": round(batch / best, 1), "speedup_vs_fp32_default": round(base / best, 2)})
        print(f"step {config}: {best:.3f} s", flush=True)
    return {"batch": batch, "native_bf16": bf16_native, "rows": rows}


def bench_train(data_dir, work, preset):
    from edgealex.train import train

    out = os.path.join(work, "model.pt")
    start = time.perf_counter()
    result = train(data_dir, out, preset=preset, keep_last=False, save_every=1000)
    wall = time.perf_counter() - start
    print(f"train {preset}: {wall:.0f} s, val {result.best_val_acc:.3f}, holdout {result.holdout_acc}", flush=True)
    data = result.to_dict()
    data["wall_seconds"] = round(wall, 1)
    return data


def markdown(data):
    m = data["machine"]
    lines = [
        "# Synthetic defect data and AlexNet training (issue 8)", "",
        f"Machine: {m['cpu_model']}, {m['cpu_count']} CPUs, load average at start {m['loadavg']} "
        f"(end {data['loadavg_end']}). Measured {m['measured_at']}.",
        "The 2-core VM was shared with other jobs during this run, so absolute times are pessimistic; "
        "ratios inside each table were measured side by side.", "",
        "## Data: `edgealex data synth`", "",
        "| processes | images | cache | seconds | images/s |", "|---|---|---|---|---|",
    ]
    for row in data["synth"]:
        cache = "hit (reused)" if row.get("reused") else "cold"
        rate = "-" if row.get("reused") else row["images_per_s"]
        lines.append(f"| {row['workers']} | {row['images']} | {cache} | {row['seconds']} | {rate} |")
    steps = data.get("steps")
    if steps:
        lines += ["", f"## Training step, AlexNet batch {steps['batch']} at 224x224 (CPU native bf16: {steps['native_bf16']})",
                  "", "| precision | optimizer kernel | s/step | images/s | speed-up |", "|---|---|---|---|---|"]
        for row in steps["rows"]:
            kernel = "fused" if row["fused_optimizer"] else "default (foreach)"
            lines.append(f"| {row['precision']} | {kernel} | {row['seconds_per_step']} | {row['images_per_s']} | "
                         f"{row['speedup_vs_fp32_default']}x |")
    t = data["train"]
    s = t["settings"]
    lines += ["", f"## Training: preset `{data['preset']}`", "",
              f"Recipe: {s['arch']}, {s['optimizer']} lr {s['lr']} (momentum {s['momentum']}, warm-up "
              f"{s['warmup_epochs']} epoch, x{s['lr_gamma']} at epochs {s['lr_steps']}), init {s['init']}, "
              f"batch {s['batch']}, {s['epochs']} epochs, dropout {s['dropout']}, random crop {s['input_size']} "
              f"of {s['resize']} + flips (h {s['hflip']}, v {s['vflip']}), precision {t['precision']}, "
              f"{t['threads']} threads.", "",
              f"Images: {t['counts']['train']} train, {t['counts']['val']} val, {t['counts']['holdout']} holdout.", "",
              "| epoch | train loss | train acc | val acc | lr | seconds |", "|---|---|---|---|---|---|"]
    for h in t["history"]:
        lines.append(f"| {h['epoch']} | {h['train_loss']:.3f} | {h['train_acc']:.3f} | {h['val_acc']:.3f} | "
                     f"{h['lr']:.3g} | {h['seconds']} |")
    hold = "n/a" if t["holdout_acc"] is None else f"{t['holdout_acc']:.1%}"
    lines += ["", f"**Wall time {t['wall_seconds']} s** (training {t['train_images_per_s']:.1f} images/s); "
              f"best val accuracy {t['best_val_acc']:.1%} at epoch {t['best_epoch']}; "
              f"**FP32 holdout accuracy {hold}** (target >= 95%).", "",
              "Holdout confusion matrix (rows true, columns predicted; order " + ", ".join(t["labels"]) + "):", ""]
    for label, row in zip(t["labels"], t["holdout_confusion"] or []):
        lines.append(f"    {label:<8} " + " ".join(f"{v:4d}" for v in row))
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "edgealex-synth-train"))
    parser.add_argument("--per-class", type=int, default=400)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--skip-steps", action="store_true", help="skip the step-cost comparison")
    args = parser.parse_args()
    from edgealex.artifacts import ensure_dir
    from edgealex.log import configure

    configure()
    ensure_dir(args.work)
    data = {"machine": machine(), "preset": args.preset, "per_class": args.per_class, "size": args.size}
    data["synth"] = bench_synth(args.work, args.per_class, args.size)
    if not args.skip_steps:
        data["steps"] = bench_steps()
    data["train"] = bench_train(os.path.join(args.work, "synth-w2"), args.work, args.preset)
    data["loadavg_end"] = list(os.getloadavg())
    print(dumps({k: v for k, v in data.items() if k != "train"}))
    write_results(args.out, "synth_train", data, markdown(data))


if __name__ == "__main__":
    main()
