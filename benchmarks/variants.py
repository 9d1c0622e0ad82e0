#!/usr/bin/env python3
"""Model variants and compression, measured (issue 15): the AlexNet article's seed claims checked at a
scale a 2-core CPU can afford.

    python benchmarks/variants.py --out benchmarks/results [--seeds 0 1 2] [--epochs 8] [--phase all]

Phases (intermediate files in --work are reused: trainings by the trainer's settings hash):

1. ``train``: for the normal and the hard synthetic setting (``edgealex data synth --difficulty``),
   for every seed: alexnet, alexnet-v1, alexnet-se, alexnet-dw, alexnet-bn trained with one recipe;
   alexnet pruned to 70% and to 30% of its filters/neurons (``edgealex prune``) and fine-tuned; pruned
   to 50% and 30% and fine-tuned distilling from the unpruned parent (``edgealex prune --distill``);
   a slim alexnet at the 30% widths trained alone and distilled from the seed's alexnet (``edgealex
   distill``). Plus, once (normal, seed 0), the training options: 5-epoch warm-up, dropout 0.7,
   gradient accumulation; mixed precision only where the CPU has native bf16.
2. ``speed``: the seed-0 normal checkpoints exported to ONNX, calibrated to INT8 on the calib split
   (gate on the holdout: INT8 top-1 agreement), ORT engines built; batch-1 img/s of every FP32 and
   INT8 engine and of PyTorch eager FP32 AlexNet, measured in interleaved rounds in one process; the
   same for random-init models at 224x224 (timing only), where the >= 10x target is checked. The
   target's candidates are also calibrated for every seed and setting: their INT8 holdout accuracy.
3. ``table``: variants.json + variants.md (params, ONNX MB, img/s, accuracy mean +- spread,
   agreement, seed claim, Jetson ceiling ESTIMATES from weight bytes / memory bandwidth).
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import LOAD_NOTE, dumps, machine, write_results  # noqa: E402

SETTINGS = ("normal", "hard")
FULL = ("alexnet", "alexnet-v1", "alexnet-se", "alexnet-dw", "alexnet-bn")
COMPRESSED = ("alexnet-pruned70", "alexnet-pruned30", "slim30-alone", "slim30-alone-lr0.0025", "slim30-distilled",
              "alexnet-pruned70-kd", "alexnet-pruned50-kd", "alexnet-pruned30-kd")
# every compressed model's widths, in % of AlexNet's (pruned: --keep; slim: --width-mult)
WIDTH_PCT = {"alexnet-pruned70": 70, "alexnet-pruned30": 30, "slim30-alone": 30, "slim30-alone-lr0.0025": 30,
             "slim30-distilled": 30, "alexnet-pruned70-kd": 70, "alexnet-pruned50-kd": 50, "alexnet-pruned30-kd": 30}
# candidates for the >= 10x target: their INT8 (ONNX Runtime, the demo's calibration rule) holdout
# accuracy is measured for every seed and setting, since the target is about the INT8 model
TARGET_CANDIDATES = ("alexnet-pruned70", "alexnet-pruned70-kd", "alexnet-pruned50-kd", "alexnet-pruned30-kd")
# Distillation's soft term, T^2 * KL(teacher/T || student/T), has the gradient T * (p_s - p_t) per
# logit: at the recipe's lr 0.01 and T 4 a slim student from scratch collapsed to one class (20.0%
# holdout, normal setting, seed 0, 128 px); students distil at lr 0.01 / T, and the same slim model
# is also trained alone at that lr so the comparison differs only in the loss.
DISTILL_T, DISTILL_ALPHA = 4.0, 0.9
DISTILL_LR = 0.01 / DISTILL_T
# NVIDIA module data sheets (not in the facts sheet): Jetson Nano 4GB 64-bit LPDDR4 25.6 GB/s;
# Jetson AGX Xavier 256-bit LPDDR4x 136.5 GB/s.
BANDWIDTH_GBS = {"nano_fp16": 25.6, "agx_xavier_int8": 136.5}


def recipe(epochs):
    """The one recipe every full-size variant gets (the demo preset, its schedule scaled to ``epochs``)."""
    return {"preset": "demo", "epochs": epochs, "lr_steps": (max(1, epochs * 5 // 8), max(2, epochs * 7 // 8))}


def datasets(work, per_class, size):
    from edgealex.synth import synthesize

    out = {}
    for setting in SETTINGS:
        result = synthesize(os.path.join(work, f"data-{setting}"), per_class=per_class, size=size, seed=0,
                            splits=(0.5, 0.1, 0.1, 0.3), difficulty=setting)
        out[setting] = result.out_dir
    return out


def _record(runs, path, key, result, seconds, extra=None):
    from edgealex.artifacts import sidecar_path

    if result.reused:  # the seconds of the training itself, from its record (not of the cache lookup)
        seconds = json.load(open(sidecar_path(result.path)))["result"]["seconds"]
    entry = {"holdout_acc": result.holdout_acc, "best_val_acc": result.best_val_acc, "seconds": round(seconds, 1),
             "reused": result.reused, "path": result.path, "settings": result.settings}
    entry.update(extra or {})
    runs[key] = entry
    from edgealex.artifacts import write_json_atomic

    write_json_atomic(path, runs)
    print(f"{key}: holdout {result.holdout_acc:.1%} ({seconds:.0f} s{', reused' if result.reused else ''})", flush=True)


def _prune_once(prune, parent, out, keep, kd, args, data_dir, seed):
    """Prune ``parent`` to ``keep`` % and fine-tune: plainly (``--fine-tune-epochs``, lr 0.002) or
    distilling from the parent (``--kd-*``)."""
    return prune(parent, out, keep / 100.0, fine_tune_epochs=args.kd_fine_tune_epochs if kd else args.fine_tune_epochs,
                 data=data_dir, distill=kd, seed=seed, keep_last=False,
                 **({"temperature": DISTILL_T, "alpha": DISTILL_ALPHA} if kd else {}),
                 lr=args.kd_lr if kd else 0.002, warmup_epochs=0.0, lr_steps=tuple(args.kd_lr_steps) if kd else (),
                 input_size=args.input_size, resize=args.input_size * 256 // 224, threads=args.threads, reuse=True,
                 save_every=10 ** 6)


def phase_train(args, data):
    from edgealex.errors import EdgeAlexError
    from edgealex.models.prune import prune
    from edgealex.train import train
    from edgealex.train.distill import distill

    runs_path = os.path.join(args.work, "runs.json")
    runs = json.load(open(runs_path)) if os.path.isfile(runs_path) else {}
    base = dict(recipe(args.epochs), input_size=args.input_size, resize=args.input_size * 256 // 224,
                threads=args.threads, reuse=True, save_every=10 ** 6)  # no 0.45 GB resume state per epoch

    def one_seed(seed, settings=SETTINGS):
        for setting in settings:
            root = os.path.join(args.work, setting, f"seed{seed}")
            os.makedirs(root, exist_ok=True)
            for arch in FULL:
                start = time.perf_counter()
                result = train(data[setting], os.path.join(root, f"{arch}.pt"), arch=arch, seed=seed, keep_last=False,
                               **base)
                _record(runs, runs_path, f"{setting}/{seed}/{arch}", result, time.perf_counter() - start)
            parent = os.path.join(root, "alexnet.pt")
            for keep, kd in ((70, False), (30, False), (70, True), (50, True), (30, True)):
                name = f"alexnet-pruned{keep}" + ("-kd" if kd else "")
                start = time.perf_counter()
                try:
                    pr = _prune_once(prune, parent, os.path.join(root, name + ".pt"), keep, kd, args, data[setting],
                                     seed)
                except EdgeAlexError as exc:  # a diverged fine-tuning is a result of the matrix, not its end
                    print(f"{setting}/{seed}/{name}: FAILED: {exc}", flush=True)
                    runs[f"{setting}/{seed}/{name}"] = {"failed": str(exc)}
                    from edgealex.artifacts import write_json_atomic

                    write_json_atomic(runs_path, runs)
                    continue
                from edgealex.train import TrainResult
                _record(runs, runs_path, f"{setting}/{seed}/{name}", TrainResult.from_dict(pr.fine_tune),
                        time.perf_counter() - start, {"parameters": pr.parameters_after, "widths": pr.widths})
            start = time.perf_counter()
            alone = train(data[setting], os.path.join(root, "slim30-alone.pt"), arch="alexnet", seed=seed,
                          width_mult=0.3, keep_last=False, **base)
            _record(runs, runs_path, f"{setting}/{seed}/slim30-alone", alone, time.perf_counter() - start)
            start = time.perf_counter()
            alone_low = train(data[setting], os.path.join(root, "slim30-alone-lr0.0025.pt"), arch="alexnet", seed=seed,
                              width_mult=0.3, keep_last=False, **dict(base, lr=DISTILL_LR))
            _record(runs, runs_path, f"{setting}/{seed}/slim30-alone-lr0.0025", alone_low, time.perf_counter() - start)
            start = time.perf_counter()
            student = distill(parent, data[setting], os.path.join(root, "slim30-distilled.pt"), arch="alexnet",
                              width_mult=0.3, temperature=DISTILL_T, alpha=DISTILL_ALPHA, seed=seed, keep_last=False,
                              **dict(base, lr=DISTILL_LR))
            _record(runs, runs_path, f"{setting}/{seed}/slim30-distilled", student, time.perf_counter() - start)

    def options_once():
        # the training options, each measured once (normal setting, seed 0) against the plain recipe
        import torch
        from edgealex.train.trainer import _use_bf16

        root = os.path.join(args.work, "normal", "options")
        os.makedirs(root, exist_ok=True)
        options = {"warmup5": {"warmup_epochs": 5.0}, "dropout0.7": {"dropout": 0.7},
                   "accum2x16": {"batch": 16, "accum_steps": 2}}
        if _use_bf16(torch, torch.device("cpu"), "auto"):
            # the recipe's precision "auto" already trains with bf16 autocast here: the option is fp32
            options["fp32"] = {"precision": "fp32"}
        else:
            runs["normal/options/fp32"] = {"skipped": "this CPU has no native bf16 (oneDNN reports none): the recipe "
                                                      "trains in fp32 and emulated bf16 would be slower; not measured"}
        for name, extra in options.items():
            start = time.perf_counter()
            result = train(data["normal"], os.path.join(root, f"alexnet-{name}.pt"), arch="alexnet", seed=args.seeds[0],
                           keep_last=False, **dict(base, **extra))
            _record(runs, runs_path, f"normal/options/{name}", result, time.perf_counter() - start)

    # a run cut short still has every variant for its first seeds on both settings; the training
    # options (one run each) come last
    if args.order == "seed":
        for seed in args.seeds:
            one_seed(seed)
    else:  # every seed of the normal setting first, then the hard one
        for setting in SETTINGS:
            for seed in args.seeds:
                one_seed(seed, (setting,))
    if not args.skip_options:
        options_once()
    return runs


def is_stale_export(onnx_path, ckpt):
    """True unless ``onnx_path`` was exported from this very checkpoint file: its sidecar's provenance
    names the checkpoint's sha256 (:func:`edgealex.train.trainer.exported_weights_sha256`). By content,
    not by mtime: a checkpoint copied or restored with an older mtime (cp -p, rsync -t, a backup) is
    still caught, and one merely touched is not re-exported."""
    from edgealex.artifacts import sha256_file
    from edgealex.train.trainer import exported_weights_sha256

    return exported_weights_sha256(onnx_path) != sha256_file(ckpt)


def _export_calibrate_build(ckpt, data_dir, out_dir, holdout=True, parity_samples=2):
    """Export ``ckpt`` into ``out_dir``, calibrate it on ``data_dir``'s calib split (the agreement gate
    on its holdout split unless ``holdout`` is False) and build its FP32 and INT8 CPU engines; each
    step is skipped when its output is there and the ONNX is not stale (:func:`is_stale_export`)."""
    from edgealex.build.api import build_engine
    from edgealex.calib.pipeline import calibrate
    from edgealex.export.onnx import export_onnx

    name = os.path.splitext(os.path.basename(ckpt))[0]
    onnx_path = os.path.join(out_dir, name + ".onnx")
    if os.path.isfile(onnx_path) and os.path.isfile(ckpt) and is_stale_export(onnx_path, ckpt):
        import shutil

        shutil.rmtree(out_dir)  # the checkpoint was trained again: its ONNX, calibration and engines are stale
    os.makedirs(out_dir, exist_ok=True)
    if not os.path.isfile(onnx_path):
        export_onnx(onnx_path, weights=ckpt, parity_samples=parity_samples)
    calib_dir = os.path.join(out_dir, name + "-calib")
    if not os.path.isfile(os.path.join(calib_dir, "calibration.json")):  # the gate's agreement lands in its manifest
        calibrate(onnx_path, os.path.join(data_dir, "calib"), calib_dir,
                  holdout=os.path.join(data_dir, "holdout") if holdout else None, min_agreement=0.0, progress=False)
    fp32 = build_engine(onnx_path, target="cpu", precision="fp32", out_dir=os.path.join(out_dir, "engines")).engine_path
    int8 = build_engine(onnx_path, target="cpu", precision="int8", calib=calib_dir,
                        out_dir=os.path.join(out_dir, "engines")).engine_path
    return {"onnx": onnx_path, "onnx_mb": round(os.path.getsize(onnx_path) / 1e6, 2),
            "fp32_engine": fp32, "int8_engine": int8}


def _timing_models(work, input_size):
    """Random-init FP32/INT8 engines at ``input_size`` for AlexNet and the candidates' widths (timing only)."""
    from edgealex.models.alexnet import build_model, save_checkpoint, scaled_widths
    from edgealex.preprocess import Preprocess

    out = os.path.join(work, f"timing{input_size}")
    made = {}
    for name, widths in [("alexnet", None)] + [(f"alexnet-{pct}pct", scaled_widths("alexnet", pct / 100.0))
                                                for pct in sorted({WIDTH_PCT[c] for c in TARGET_CANDIDATES})]:
        ckpt = os.path.join(out, name + ".pt")
        if not os.path.isfile(ckpt):
            os.makedirs(out, exist_ok=True)
            save_checkpoint(ckpt, build_model("alexnet", 5, seed=0, widths=widths),
                            ["ok", "scratch", "stain", "crack", "hole"],
                            Preprocess(input_size=input_size, resize=input_size * 256 // 224))
        made[name] = dict(_export_calibrate_build(ckpt, os.path.join(work, "data-normal"), os.path.join(out, name),
                                                  holdout=False, parity_samples=1), ckpt=ckpt)
    return made


def _interleaved(subjects, input_shape, rounds, seconds):
    """img/s per subject at batch 1: ``rounds`` rounds, each measuring every subject for ``seconds``."""
    import numpy as np

    from edgealex.bench.harness import measure

    x = np.random.default_rng(0).standard_normal((1,) + tuple(input_shape)).astype(np.float32)
    fps = {name: [] for name in subjects}
    for runner in subjects.values():
        runner.activate()
    try:
        for r in range(rounds):
            for name, runner in subjects.items():
                m = measure(runner, x, warmup_s=0.3, duration_s=seconds)
                start, end = m.window
                fps[name].append(m.frames / max(1e-9, end - start))
            print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in fps.items()), flush=True)
    finally:
        for runner in subjects.values():
            runner.deactivate()
    return {name: {"img_per_s_median": round(statistics.median(v), 1), "img_per_s_rounds": [round(f, 1) for f in v]}
            for name, v in fps.items()}


def _runner(engine):
    from edgealex.runtime.registry import load_runner

    # no spin-waiting: an idle session's threads would otherwise burn the cores while the next
    # interleaved subject is measured
    return load_runner(engine, session_config={"session.intra_op.allow_spinning": "0"})


def _torch_runner(ckpt, input_size, threads):
    """PyTorch eager FP32 at a fixed thread count, set before every call (the setting is process-wide
    and the subjects are interleaved). Under a heavily shared CPU two OpenMP threads can stall at every
    barrier, so the comparison takes the faster of 1 and 2 threads (generous to PyTorch)."""
    import torch

    from edgealex.bench.baselines import TorchRunner
    from edgealex.models.alexnet import load_checkpoint, model_from_checkpoint

    class Fixed(TorchRunner):
        def infer_impl(self, batch):
            torch.set_num_threads(threads)
            return TorchRunner.infer_impl(self, batch)

    def build():
        return model_from_checkpoint(load_checkpoint(ckpt), source=ckpt)

    return Fixed(build, (1, 3, input_size, input_size))


def _torch_subjects(ckpt, input_size):
    return {f"pytorch-eager-fp32-{n}thread/alexnet": _torch_runner(ckpt, input_size, n) for n in (1, 2)}


def _best_torch(fps):
    """The faster PyTorch eager thread setting of one interleaved measurement."""
    name = max((k for k in fps if k.startswith("pytorch-eager")), key=lambda k: fps[k]["img_per_s_median"])
    return name, fps[name]["img_per_s_median"]


def phase_speed(args, data):
    seed = args.seeds[0]
    root = os.path.join(args.work, "normal", f"seed{seed}")
    deployed = {}
    for name in FULL + COMPRESSED:
        ckpt = os.path.join(root, name + ".pt")
        print("export/calibrate/build", name, flush=True)
        deployed[name] = _export_calibrate_build(ckpt, data["normal"], os.path.join(args.work, "deploy", name))
        deployed[name]["ckpt"] = ckpt
    subjects = _torch_subjects(deployed["alexnet"]["ckpt"], args.input_size)
    for name, d in deployed.items():
        subjects[f"fp32/{name}"] = _runner(d["fp32_engine"])
        subjects[f"int8/{name}"] = _runner(d["int8_engine"])
    speed = {"trained": _interleaved(subjects, (3, args.input_size, args.input_size), args.rounds, args.seconds),
             "deployed": deployed}
    if args.input_size != 224:  # at 224 the trained models are the timing: no random-init run
        timing = _timing_models(args.work, 224)
        subjects = _torch_subjects(timing["alexnet"]["ckpt"], 224)
        for name, d in timing.items():
            subjects[f"fp32/{name}"] = _runner(d["fp32_engine"])
            subjects[f"int8/{name}"] = _runner(d["int8_engine"])
        speed["random224"] = _interleaved(subjects, (3, 224, 224), args.rounds, args.seconds)
        speed["random224_onnx_mb"] = {k: v["onnx_mb"] for k, v in timing.items()}
    from edgealex.artifacts import write_json_atomic

    write_json_atomic(os.path.join(args.work, "speed.json"), speed)
    return speed


def _gate_of(calib_dir):
    """INT8 (ONNX Runtime CPU model) vs FP32 top-1 agreement and INT8 accuracy on the holdout split, from
    the calibration manifest and report."""
    path = os.path.join(calib_dir, "calibration.json")
    if not os.path.isfile(path):
        return {}
    record = json.load(open(path))
    report = json.load(open(os.path.join(calib_dir, record["report_json"])))
    return {"agreement": record.get("agreement"), "images": record.get("holdout_images"),
            "int8_accuracy": report["gate"]["accuracy"].get("int8_ort"), "fp32_accuracy": report["gate"]["accuracy"].get("fp32")}


def _gate(work, name):
    return _gate_of(os.path.join(work, "deploy", name, name + "-calib"))


def _demo_rule(ckpt_where, name, data_dir, entropy):
    """The INT8 model the demo's rule would deploy (:data:`edgealex.demo.CALIBRATION_METHODS`): entropy
    first, then the next method while the INT8-vs-FP32 agreement misses the demo's 0.99 gate; when
    none passes, the attempt with the highest agreement. Label-free: the gate compares predictions."""
    from edgealex.calib.pipeline import calibrate
    from edgealex.demo import CALIBRATION_METHODS, PROFILES

    gate = PROFILES["full"].min_agreement
    attempts = [dict(entropy, method=CALIBRATION_METHODS[0])]
    for method in CALIBRATION_METHODS[1:]:
        if attempts[-1].get("agreement") is not None and attempts[-1]["agreement"] >= gate:
            break
        calib_dir = os.path.join(ckpt_where, f"{name}-calib-{method}")
        if not os.path.isfile(os.path.join(calib_dir, "calibration.json")):
            calibrate(os.path.join(ckpt_where, name + ".onnx"), os.path.join(data_dir, "calib"), calib_dir,
                      holdout=os.path.join(data_dir, "holdout"), method=method, min_agreement=0.0, progress=False)
        attempts.append(dict(_gate_of(calib_dir), method=method))
    passed = [a for a in attempts if a.get("agreement") is not None and a["agreement"] >= gate]
    chosen = passed[0] if passed else max(attempts, key=lambda a: a.get("agreement") or 0.0)
    return dict(chosen, attempts=[{k: a.get(k) for k in ("method", "agreement", "int8_accuracy")} for a in attempts],
                gate=gate)


def phase_int8_accuracy(args, data):
    """Calibrate the target's candidates of every seed and setting: their INT8 holdout accuracy with
    entropy ranges (TensorRT's default calibrator) and under the demo's method rule."""
    from edgealex.artifacts import write_json_atomic

    out = {}
    runs_path = os.path.join(args.work, "runs.json")
    runs = json.load(open(runs_path)) if os.path.isfile(runs_path) else {}
    for setting in SETTINGS:
        for seed in args.seeds:
            for name in TARGET_CANDIDATES:
                ckpt = os.path.join(args.work, setting, f"seed{seed}", name + ".pt")
                if not os.path.isfile(ckpt) or "failed" in runs.get(f"{setting}/{seed}/{name}", {}):
                    continue
                where = os.path.join(args.work, "int8-accuracy", setting, f"seed{seed}", name)
                print("int8 accuracy", setting, seed, name, flush=True)
                _export_calibrate_build(ckpt, data[setting], where)
                entropy = _gate_of(os.path.join(where, name + "-calib"))
                out[f"{setting}/{seed}/{name}"] = dict(entropy, demo_rule=_demo_rule(where, name, data[setting],
                                                                                     entropy))
                write_json_atomic(os.path.join(args.work, "int8_accuracy.json"), out)
    return out


def _stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"mean": statistics.mean(values), "min": min(values), "max": max(values), "n": len(values),
            "values": values}


def _fmt_acc(stats):
    if not stats:
        return "n/a"
    text = f"{stats['mean'] * 100:.1f} ± {(stats['max'] - stats['min']) * 50:.1f}"
    return text + f" (n={stats['n']})"


def phase_table(args, runs, speed):
    import torch  # noqa: F401

    from edgealex.models.alexnet import build_model, parameter_count, scaled_widths

    params = {arch: parameter_count(build_model(arch, 5)) for arch in FULL}
    at_width = {pct: parameter_count(build_model("alexnet", 5, widths=scaled_widths("alexnet", pct / 100.0)))
                for pct in set(WIDTH_PCT.values())}
    params.update({name: at_width[pct] for name, pct in WIDTH_PCT.items()})
    acc = {}
    for name in FULL + COMPRESSED:
        for setting in SETTINGS:
            acc[(name, setting)] = _stats([runs.get(f"{setting}/{s}/{name}", {}).get("holdout_acc") for s in args.seeds])
    trained = speed["trained"]
    _, base_torch = _best_torch(trained)
    rows = []
    for name in FULL + COMPRESSED:
        d = speed["deployed"][name]
        gate = _gate(args.work, name)
        fp32_bytes, int8_bytes = params[name] * 4, params[name]
        rows.append({
            "variant": name, "parameters": params[name], "onnx_mb": d["onnx_mb"],
            "fp32_img_per_s": trained[f"fp32/{name}"]["img_per_s_median"],
            "int8_img_per_s": trained[f"int8/{name}"]["img_per_s_median"],
            "int8_x_pytorch_eager_alexnet": round(trained[f"int8/{name}"]["img_per_s_median"] / base_torch, 2),
            "holdout_normal": acc[(name, "normal")], "holdout_hard": acc[(name, "hard")],
            "int8_agreement": gate.get("agreement"), "int8_gate_images": gate.get("images"),
            "estimate_nano_fp16_img_per_s": round(BANDWIDTH_GBS["nano_fp16"] * 1e9 / (params[name] * 2), 1),
            "estimate_agx_xavier_int8_img_per_s": round(BANDWIDTH_GBS["agx_xavier_int8"] * 1e9 / int8_bytes, 1),
            "weight_bytes_fp32": fp32_bytes,
        })
    return rows, params, acc


def claims(acc, params, runs, seeds):
    """Each seed claim with the measured delta and a verdict at this scale."""
    def delta(a, b, setting):
        if not acc[(a, setting)] or not acc[(b, setting)]:
            return None
        return (acc[(a, setting)]["mean"] - acc[(b, setting)]["mean"]) * 100

    def overlap(a, b, setting):
        """Whether the two models' seed ranges (min..max over the seeds) overlap on ``setting``."""
        x, y = acc[(a, setting)], acc[(b, setting)]
        return bool(x and y) and x["min"] <= y["max"] and y["min"] <= x["max"]

    out = []

    def verdict(deltas, test, pair=None):
        vals = [d for d in deltas if d is not None]
        text = "holds" if vals and all(test(d) for d in vals) else "does not hold"
        if pair is None:
            return text
        # conclusive only where both models learned the task (>= 50% on 5 classes, chance 20%) and
        # their seed ranges do not overlap (every seed of one above every seed of the other)
        weak = []
        for setting in SETTINGS:
            for name in pair:
                st = acc[(name, setting)]
                if st and st["mean"] < 0.5:
                    weak.append(f"{name} {setting} {st['mean'] * 100:.0f}%")
        noisy = [s_ for s_, d_ in zip(SETTINGS, deltas) if d_ is not None and overlap(pair[0], pair[1], s_)]
        reasons = []
        if weak:
            reasons.append("undertrained at this scale: " + ", ".join(weak))
        if noisy:
            reasons.append("the seed ranges overlap on " + ", ".join(noisy))
        measured = [s_ for s_ in SETTINGS if all(acc[(name, s_)] for name in pair)]
        n = min((acc[(name, s_)]["n"] for name in pair for s_ in measured), default=0)
        if n < 2:
            reasons.append(f"{n} seed(s)")
        text += " here" + (" (" + ", ".join(measured) + " setting only; " + ", ".join(
            s_ for s_ in SETTINGS if s_ not in measured) + " not measured)" if measured and len(measured) < len(SETTINGS)
            else "")
        return text + (", not conclusive (" + "; ".join(reasons) + ")" if reasons else "")

    d = [delta("alexnet-se", "alexnet", s) for s in SETTINGS]
    out.append({"claim": "SE after conv5: top-1 +1.8 pts", "normal_delta_pts": d[0], "hard_delta_pts": d[1],
                 "verdict": verdict(d, lambda v: v >= 1.8, ("alexnet-se", "alexnet")),
                 "test": "alexnet-se mean holdout accuracy >= alexnet + 1.8 pts on both settings"})
    d = [delta("alexnet-pruned70", "alexnet", s) for s in SETTINGS]
    out.append({"claim": "pruning to 70% of channels: only -1.2 pts", "normal_delta_pts": d[0], "hard_delta_pts": d[1],
                 "verdict": verdict(d, lambda v: v >= -1.2, ("alexnet-pruned70", "alexnet")),
                 "test": "fine-tuned alexnet-pruned70 loses at most 1.2 pts against alexnet on both settings"})
    from edgealex.models.alexnet import build_model

    def conv_params(arch):
        return sum(p.numel() for n, p in build_model(arch, 5).named_parameters() if n.startswith("features."))

    def fc_params(arch):
        return sum(p.numel() for n, p in build_model(arch, 5).named_parameters() if n.startswith("classifier."))

    conv_reduction = 1 - conv_params("alexnet-dw") / conv_params("alexnet")
    reduction = 1 - params["alexnet-dw"] / params["alexnet"]
    out.append({"claim": "depthwise-separable convs: 89% fewer parameters",
                "whole_model_reduction_pct": round(reduction * 100, 1),
                "conv_reduction_pct": round(conv_reduction * 100, 1),
                "normal_delta_pts": delta("alexnet-dw", "alexnet", "normal"),
                "hard_delta_pts": delta("alexnet-dw", "alexnet", "hard"),
                "verdict": (f"holds for the conv layers within a point ({conv_reduction * 100:.1f}% vs 89%)"
                            if conv_reduction * 100 >= 88.0 else "does not hold for the conv layers") + (
                    ", and for the whole model" if reduction >= 0.885 else
                    f"; not for the whole model (the FC layers keep {fc_params('alexnet-dw') / 1e6:.1f} M)"),
                "test": "parameter reduction of about 89% (>= 88%), conv layers and whole model"})
    d = [delta("alexnet-bn", "alexnet-v1", s) for s in SETTINGS]
    out.append({"claim": "BatchNorm instead of LRN fixes noisy feature maps (better accuracy)",
                "normal_delta_pts": d[0], "hard_delta_pts": d[1], "verdict": verdict(d, lambda v: v > 0, ("alexnet-bn", "alexnet-v1")),
                "test": "alexnet-bn mean holdout accuracy > alexnet-v1 on both settings"})
    d = [delta("slim30-distilled", "slim30-alone-lr0.0025", s) for s in SETTINGS]
    d01 = [delta("slim30-distilled", "slim30-alone", s) for s in SETTINGS]
    out.append({"claim": "distillation from a stronger teacher: +3.4 pts at equal size", "normal_delta_pts": d[0],
                "hard_delta_pts": d[1], "delta_vs_alone_lr0.01_pts": d01,
                "verdict": verdict(d, lambda v: v >= 3.4, ("slim30-distilled", "slim30-alone-lr0.0025")) + (
                    "; against the slim model alone at the recipe's lr 0.01: " + ", ".join(
                        f"{s_} {'n/a' if v is None else f'{v:+.1f}'} pts" for s_, v in zip(SETTINGS, d01))),
                "test": f"slim30-distilled (T {DISTILL_T:g}, alpha {DISTILL_ALPHA:g}, lr {DISTILL_LR:g}) >= the same slim "
                        "model trained alone at the same lr + 3.4 pts on both settings"})
    base = runs.get(f"normal/{seeds[0]}/alexnet", {}).get("holdout_acc")
    for name, text in (("warmup5", "linear LR warm-up (5 epochs)"), ("dropout0.7", "dropout 0.7 against overfitting"),
                       ("accum2x16", "gradient accumulation (2 x 16 = 32)"),
                       ("fp32", "mixed precision: the recipe's bf16 autocast vs fp32 (this row: fp32)")):
        r = runs.get(f"normal/options/{name}", {})
        if "skipped" in r:
            out.append({"claim": text, "verdict": "not measured", "note": r["skipped"]})
            continue
        acc_v = r.get("holdout_acc")
        out.append({"claim": text, "holdout": acc_v, "baseline_holdout": base, "seconds": r.get("seconds"),
                    "baseline_seconds": runs.get(f"normal/{seeds[0]}/alexnet", {}).get("seconds"),
                    "normal_delta_pts": None if acc_v is None or base is None else (acc_v - base) * 100,
                    "verdict": ("n/a" if acc_v is None or base is None else
                                ("higher" if acc_v > base else "lower" if acc_v < base else "equal")
                                + " accuracy than the plain recipe here (one run, seed 0, normal: not conclusive)"),
                    "test": "one run against the plain recipe (warm-up 0.5 epoch, dropout 0, batch 32, "
                            "precision auto = bf16 autocast where oneDNN has native bf16)"})
    return out


def _missing_text(missing, failed=None):
    if failed:
        return ("**Failed trainings (not counted):** " + "; ".join(f"{k}: {v}" for k, v in sorted(failed.items()))
                + ".\n\n" + _missing_text(missing))
    if not missing:
        return "Every training of the matrix finished (variants x settings x seeds).\n"
    by_cell = {}
    for key in missing:
        setting, seed, name = key.split("/")
        by_cell.setdefault(f"{setting} seed {seed}", []).append(name)
    cells = "; ".join(f"{cell}: {', '.join(names)}" for cell, names in by_cell.items())
    return (f"**Not measured (the run was stopped at the time limit):** {len(missing)} trainings of the matrix — "
            f"{cells}. The n in each accuracy cell says how many seeds it rests on.\n")


def markdown(meta, rows, claim_rows, speed, args, target, acc_ref):
    lines = ["# Model variants and compression on this CPU (issue 15)", "",
             f"Machine: {meta['cpu_model']} ({meta['cpu_count']} vCPUs); cpuinfo flags "
             f"{', '.join(meta['cpu_flags']['cpuinfo'])}; PyTorch CPU capability "
             f"{meta['cpu_flags']['torch_cpu_capability']}, oneDNN native bf16: {meta['cpu_flags']['onednn_native_bf16']} "
             "(so the recipe's precision auto trained with bf16 autocast). "
             f"Load average before/after: {meta['loadavg_before']} / {meta['loadavg_after']} — {LOAD_NOTE}"
             + (f"; {args.note}" if args.note else "") + ".", "",
             f"**Scale{' (reduced to fit the CPU)' if args.input_size < 224 else ''}:** synthetic defects, 5 classes, "
             f"{args.per_class} images per class "
             f"({args.size} px; splits train 50% / val 10% / calib 10% / holdout 30% = "
             f"{int(args.per_class * 0.3) * 5} holdout images), input {args.input_size}x{args.input_size}"
             f"{' (not 224)' if args.input_size < 224 else ' (as deployed)'}, "
             f"{args.epochs} epochs of the demo recipe (SGD, He init, warm-up 0.5 epoch, step decay), "
             f"seeds {', '.join(map(str, args.seeds))}; pruned models fine-tuned {args.fine_tune_epochs} epochs "
             f"(lr 0.002), the -kd ones {args.kd_fine_tune_epochs} epochs distilling from their unpruned parent "
             f"(`prune --distill`, T {DISTILL_T:g}, alpha {DISTILL_ALPHA:g}, lr {args.kd_lr:g}"
             + (f", stepped down by the demo preset's lr_gamma after epochs {', '.join(map(str, args.kd_lr_steps))}" if args.kd_lr_steps else "")
             + f"); slim students distilled from the seed's alexnet with T {DISTILL_T:g}, alpha {DISTILL_ALPHA:g} "
             f"at lr {DISTILL_LR:g} (the soft term's gradient is T x that of plain cross-entropy: at lr 0.01 a student "
             "collapsed to one class, 20.0% on the normal setting, seed 0), and the same slim model also trained "
             "alone at that lr. Accuracy = FP32 PyTorch on the holdout split, mean ± half the range over the seeds. "
             "Speed: ONNX Runtime engines of the seed-0 normal checkpoints, batch 1, "
             f"{args.rounds} interleaved rounds of {args.seconds} s per subject, median.", "",
             _missing_text(meta.get("missing_runs") or [], meta.get("failed_runs")),
             "| variant | params | ONNX MB | FP32 img/s | INT8 img/s | INT8 × PyTorch-eager AlexNet | holdout % normal | holdout % hard | INT8 agreement | ESTIMATE Nano FP16 img/s | ESTIMATE AGX Xavier INT8 img/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        agree = "n/a" if r["int8_agreement"] is None else f"{r['int8_agreement'] * 100:.1f}% of {r['int8_gate_images']}"
        lines.append(f"| {r['variant']} | {r['parameters'] / 1e6:.2f} M | {r['onnx_mb']:.1f} | {r['fp32_img_per_s']:.0f} | "
                     f"{r['int8_img_per_s']:.0f} | {r['int8_x_pytorch_eager_alexnet']:.1f} | {_fmt_acc(r['holdout_normal'])} | "
                     f"{_fmt_acc(r['holdout_hard'])} | {agree} | {r['estimate_nano_fp16_img_per_s']:.0f} | "
                     f"{r['estimate_agx_xavier_int8_img_per_s']:.0f} |")
    torch_name, base = _best_torch(speed["trained"])
    torch_all = ", ".join(f"{k.split('/')[0].replace('pytorch-eager-fp32-', '')}: {v['img_per_s_median']:.0f}"
                          for k, v in speed["trained"].items() if k.startswith("pytorch"))
    lines += ["", f"PyTorch eager FP32 AlexNet (trained, {args.input_size} px, batch 1) in the same rounds: {base:.0f} img/s "
              f"(the faster thread setting; {torch_all} img/s).", "",
              "ESTIMATE columns: the batch-1 ceiling set by reading every weight once per image: memory bandwidth / "
              "weight bytes (FP16: 2 bytes per parameter on Jetson Nano, 25.6 GB/s; INT8: 1 byte on AGX Xavier, "
              "136.5 GB/s; NVIDIA module data sheets). Activations, compute and launch overheads are ignored, so real "
              "figures are lower, and for the small models compute, not bandwidth, will be the limit. Not measured on a Jetson.",
              "", "## Seed claims", "", "| claim | Δ normal (pts) | Δ hard (pts) | verdict here | test |", "|---|---|---|---|---|"]
    for c in claim_rows:
        def f(v):
            return "n/a" if v is None else f"{v:+.1f}"
        extra = ""
        if "whole_model_reduction_pct" in c:
            extra = (f" (conv layers: {c['conv_reduction_pct']}% fewer, whole model: "
                     f"{c['whole_model_reduction_pct']}% fewer)")
        if "note" in c:
            extra = " — " + c["note"]
        if c.get("seconds") is not None:
            extra = (f" ({c['holdout'] * 100:.1f}% vs {c['baseline_holdout'] * 100:.1f}%; {c['seconds']:.0f} s vs "
                     f"{c['baseline_seconds']:.0f} s wall, not comparable under the shared load)")
        lines.append(f"| {c['claim']}{extra} | {f(c.get('normal_delta_pts'))} | {f(c.get('hard_delta_pts'))} | "
                     f"{c['verdict']} | {c.get('test', '')} |")
    r224 = speed.get("random224")
    t = target
    lines += ["", "## The >= 10x target (batch 1, side by side in one run)", "",
              "Each candidate's INT8 model (ONNX Runtime, calibrated on the calib split of its own setting, for "
              "every seed) on the holdout, against FP32 AlexNet (PyTorch) of the same seeds. Calibration follows "
              "the demo's rule: entropy ranges first (TensorRT's default calibrator), then percentile, then "
              "min-max while the INT8 model agrees with its FP32 model on fewer than 99% of the holdout images "
              "(label-free); the entropy-only figures are shown too. Speed "
              f"from the interleaved rounds above ({args.input_size} px, trained) and from random-init models "
              "of the same widths at 224 px (timing only).", "",
              f"| candidate | INT8 holdout % normal | INT8 holdout % hard | entropy only: normal / hard | methods chosen "
              f"| INT8 img/s ({args.input_size} px) | × PyTorch eager | × PyTorch eager at 224 px | within 0.5 pts |",
              "|---|---|---|---|---|---|---|---|---|"]
    for c in t["candidates"]:
        x224 = f"{c['ratio_224']:.1f}x" if "ratio_224" in c else "n/a"
        chosen = ", ".join(f"{m} {c['methods_chosen'].count(m)}" for m in sorted(set(c["methods_chosen"])))
        lines.append(f"| {c['model']} | {_fmt_acc(c['int8_holdout']['normal'])} | {_fmt_acc(c['int8_holdout']['hard'])} | "
                     f"{_fmt_acc(c['int8_holdout_entropy']['normal'])} / {_fmt_acc(c['int8_holdout_entropy']['hard'])} | "
                     f"{chosen or 'n/a'} | {c['trained_int8']:.0f} | {c['trained_ratio']:.1f}x | {x224} | {'yes' if c['accuracy_ok'] else 'no'} |")
    lines += ["", f"FP32 AlexNet (PyTorch) holdout: normal {_fmt_acc(acc_ref['normal'])}, hard {_fmt_acc(acc_ref['hard'])}; "
              f"PyTorch eager FP32 AlexNet {base:.0f} img/s at {args.input_size} px"
              + (f", {_best_torch(r224)[1]:.0f} img/s at 224 px" if r224 else "") + ".",
              "", f"Best candidate: {t['accuracy_note']}.", "", f"Verdict: **{t['verdict']}**.", ""]
    return "\n".join(lines) + "\n"


def _options_from(claim_rows, path):
    """The training-option rows not trained in this run, taken from an earlier results file (and said so)."""
    earlier = json.load(open(path))
    sc = earlier["scale"]
    note = (f"measured in an earlier reduced-scale run ({sc['input_size']} px input, {sc['per_class']} images per "
            f"class, {sc['epochs']} epochs; AlexNet {earlier['runs'].get('normal/0/alexnet', {}).get('holdout_acc', 0) * 100:.0f}% "
            "there), not at this scale")
    by_claim = {c["claim"]: c for c in earlier["claims"]}
    out = []
    for c in claim_rows:
        old = by_claim.get(c["claim"])
        if c.get("holdout") is None and "baseline_holdout" in c and old and old.get("holdout") is not None:
            c = dict(old, verdict=old["verdict"] + " — " + note, scale_note=note)
        out.append(c)
    return out


def missing_runs(runs, seeds):
    """Trainings of the matrix (variant x setting x seed) that are not in ``runs``."""
    return [f"{setting}/{seed}/{name}" for setting in SETTINGS for seed in seeds for name in FULL + COMPRESSED
            if f"{setting}/{seed}/{name}" not in runs]


def _int8_accuracy(entry, rule="demo_rule"):
    """One int8_accuracy.json entry's INT8 holdout accuracy under ``rule`` ("demo_rule" or "entropy")."""
    if rule != "entropy":
        entry = entry.get(rule) or {}
    return entry.get("int8_accuracy")


def int8_stats(int8_acc, seeds, rule="demo_rule"):
    """{(candidate, setting): stats of its INT8 holdout accuracy over the seeds}; ``rule`` "demo_rule"
    (the demo's calibration-method rule) or "entropy" (entropy ranges only)."""
    return {(name, setting): _stats([_int8_accuracy(int8_acc.get(f"{setting}/{s}/{name}", {}), rule) for s in seeds])
            for name in TARGET_CANDIDATES for setting in SETTINGS}


def paired_stats(int8_acc, runs, name, setting, seeds):
    """(candidate INT8 stats, FP32 AlexNet stats) over the seeds where both were measured: a run cut
    short (or a candidate that failed) must not compare a two-seed mean with a three-seed one."""
    pairs = [(_int8_accuracy(int8_acc.get(f"{setting}/{s}/{name}", {})),
              runs.get(f"{setting}/{s}/alexnet", {}).get("holdout_acc")) for s in seeds]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    return _stats([a for a, _ in pairs]), _stats([b for _, b in pairs])


def target_check(rows, speed, acc, args, int8_acc=None, runs=None):
    """The >= 10x target: a compressed INT8 model against PyTorch eager FP32 AlexNet (speed, one run) and
    against FP32 AlexNet's holdout accuracy (mean over the seeds, within 0.5 pts on both settings).
    With ``runs`` (runs.json) the two means are taken over the same seeds (those where both exist)."""
    _, base = _best_torch(speed["trained"])
    r224 = speed.get("random224")
    int8 = int8_stats(int8_acc or {}, args.seeds)
    entropy_only = int8_stats(int8_acc or {}, args.seeds, "entropy")
    methods = {}
    for key, entry in (int8_acc or {}).items():
        chosen = (entry.get("demo_rule") or {}).get("method")
        if chosen:
            methods.setdefault(key.rsplit("/", 1)[1], []).append(chosen)
    cands = []
    for name in TARGET_CANDIDATES:
        notes, unmeasured, ok, deltas = [], [], True, []
        for setting in SETTINGS:
            if runs is not None:
                a, b = paired_stats(int8_acc or {}, runs, name, setting, args.seeds)
            else:
                a, b = int8[(name, setting)], acc[("alexnet", setting)]
            if not a or not b:
                unmeasured.append(setting)
                notes.append(f"{setting} not measured")
                continue
            d = (a["mean"] - b["mean"]) * 100
            deltas.append(d)
            notes.append(f"{setting} {d:+.1f} pts ({_fmt_acc(a)} vs {_fmt_acc(b)})")
            ok = ok and d >= -0.5
        fps = speed["trained"][f"int8/{name}"]["img_per_s_median"]
        cand = {"model": name, "trained_int8": fps, "trained_ratio": fps / base,
                "accuracy_ok": ok and len(unmeasured) < len(SETTINGS), "unmeasured_settings": unmeasured,
                "accuracy_note": f"{name} INT8: " + ", ".join(notes),
                "int8_holdout": {setting: int8[(name, setting)] for setting in SETTINGS},
                "int8_holdout_entropy": {setting: entropy_only[(name, setting)] for setting in SETTINGS},
                "methods_chosen": methods.get(name, []), "worst_delta_pts": min(deltas or [float("-inf")])}
        timing = f"int8/alexnet-{WIDTH_PCT[name]}pct"
        if r224 and timing in r224:
            cand["ratio_224"] = r224[timing]["img_per_s_median"] / _best_torch(r224)[1]
            cand["int8_224"] = r224[timing]["img_per_s_median"]
        cands.append(cand)
    # met: the fastest that meets both; else the closest in accuracy among those fast enough
    best = dict(max(cands, key=lambda c: (c["accuracy_ok"], c["trained_ratio"] >= 10,
                                          c["trained_ratio"] if c["accuracy_ok"] else c["worst_delta_pts"])),
                candidates=cands)
    met = best["accuracy_ok"] and best["trained_ratio"] >= 10
    best["verdict"] = "{} ({}: {:.1f}x at {} px, INT8 accuracy within 0.5 pts of FP32 AlexNet: {})".format(
        "met" if met else "not met", best["model"], best["trained_ratio"], args.input_size, best["accuracy_ok"])
    if met and best["unmeasured_settings"]:
        best["verdict"] = best["verdict"].replace("met (", "met on the measured setting only, {} not measured (".format(
            ", ".join(best["unmeasured_settings"])), 1)
    return best


def _cpu_flags():
    """The SIMD flags that matter here, as /proc/cpuinfo and PyTorch report them."""
    flags = set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    import torch
    from edgealex.train.trainer import _use_bf16

    keep = sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "avx_vnni"))
    return {"cpuinfo": keep, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_native_bf16": bool(_use_bf16(torch, torch.device("cpu"), "auto"))}


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    parser.add_argument("--work", default="/tmp/edgealex-variants")
    parser.add_argument("--phase", choices=("train", "speed", "int8", "table", "all"), default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--input-size", type=int, default=80)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    parser.add_argument("--kd-fine-tune-epochs", type=int, default=6)
    parser.add_argument("--kd-lr", type=float, default=0.002, help="learning rate of the -kd fine-tuning")
    parser.add_argument("--kd-lr-steps", type=int, nargs="*", default=[],
                        help="epochs after which the -kd fine-tuning's lr drops (the demo preset's lr_gamma)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--skip-options", action="store_true", help="train no training-option rows")
    parser.add_argument("--options-from", help="an earlier variants.json whose training-option rows fill the ones "
                                               "not trained here (labelled with that run's scale)")
    parser.add_argument("--order", choices=("seed", "setting"), default="seed",
                        help="seed: each seed on both settings in turn; setting: all seeds on normal, then hard")
    parser.add_argument("--note", default="", help="a sentence on the load during the run, for the .md")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    meta = machine()
    meta["loadavg_before"] = meta["loadavg"]
    meta["cpu_flags"] = _cpu_flags()
    runs_path = os.path.join(args.work, "runs.json")
    if args.phase == "table":  # the table reads the other phases' records: no dataset needed (nor made)
        missing = [p for p in (runs_path, os.path.join(args.work, "speed.json")) if not os.path.isfile(p)]
        if missing:
            sys.exit(f"{args.work}: no {' or '.join(os.path.basename(p) for p in missing)} there; --phase table "
                     "renders the records of --phase train and --phase speed: run those first (or pass the --work "
                     "of a run that did)")
    else:
        data = datasets(args.work, args.per_class, args.size)
    if args.phase in ("train", "all"):
        phase_train(args, data)
    if args.phase in ("speed", "all"):
        phase_speed(args, data)
    if args.phase in ("int8", "all"):
        phase_int8_accuracy(args, data)
    if args.phase in ("table", "all"):
        runs = json.load(open(runs_path))
        from edgealex.artifacts import sidecar_path

        for entry in runs.values():  # entries written by a later cache hit: the training's own seconds
            if entry.get("reused") and entry.get("path") and os.path.isfile(sidecar_path(entry["path"])):
                entry["seconds"] = round(json.load(open(sidecar_path(entry["path"])))["result"]["seconds"], 1)
        speed = json.load(open(os.path.join(args.work, "speed.json")))
        rows, params, acc = phase_table(args, runs, speed)
        claim_rows = claims(acc, params, runs, args.seeds)
        if args.options_from:
            claim_rows = _options_from(claim_rows, args.options_from)
        int8_path = os.path.join(args.work, "int8_accuracy.json")
        int8_acc = json.load(open(int8_path)) if os.path.isfile(int8_path) else {}
        target = target_check(rows, speed, acc, args, int8_acc, runs)
        meta["loadavg_after"] = machine()["loadavg"]
        meta["missing_runs"] = missing_runs(runs, args.seeds)
        meta["failed_runs"] = {k: v["failed"] for k, v in runs.items() if "failed" in v}
        data_out = {"machine": meta, "scale": vars(args), "rows": rows, "claims": claim_rows, "target": target,
                    "speed": speed, "runs": runs, "int8_accuracy": int8_acc}
        write_results(args.out, "variants", json.loads(dumps(data_out)), markdown(meta, rows, claim_rows, speed, args,
                                                                                target, {s_: acc[("alexnet", s_)]
                                                                                         for s_ in SETTINGS}))


if __name__ == "__main__":
    main()
