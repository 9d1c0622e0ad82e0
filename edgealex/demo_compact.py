"""``edgealex demo --compact``: the demo pipeline with a compressed model (issue 15's target).

1. synthesize the defect dataset, train (or reuse) and export the demo AlexNet exactly as
   ``edgealex demo`` does (:mod:`edgealex.demo`'s steps): the teacher, and the reference PyTorch
   runs, is its exported FP32 ONNX (``model/alexnet-defects.onnx``, whose initializers
   :func:`edgealex.models.alexnet.load_checkpoint` reads), or its checkpoint with ``--keep-checkpoint``,
2. prune it (:func:`edgealex.models.prune.prune`, L1 structured pruning: ``keep`` of every conv
   layer's filters and hidden FC neurons) and fine-tune the pruned model with knowledge distillation
   from the trained AlexNet (Hinton loss through the same trainer),
3. export the compact model to ONNX, calibrate INT8 on the calib split with the agreement gate on
   the holdout split, build the target's engines, run the inspection loop with the INT8 engine,
4. benchmark, in one session at batch 1, the compact INT8 and FP32 engines and PyTorch eager FP32
   running the full trained AlexNet (the teacher checkpoint), each scored on the same holdout images,
5. write ``demo-compact.json`` and print the compact model's size, its holdout accuracy (FP32 and
   INT8) against the full FP32 AlexNet in points, the img/s ratio of the compact INT8 engine to
   PyTorch eager, and whether the issue's target (>= 10x and within 0.5 pts) is met here.

Everything of the compact model lives in ``<out>/compact/``; the dataset and the teacher are the
plain demo's (``<out>/data``, ``<out>/model``), so both demos share them.
"""

import os
import time
from dataclasses import dataclass

from edgealex.artifacts import ensure_dir
from edgealex.demo import DemoResult
from edgealex.engine import read_record
from edgealex.synth.render import LABELS as SYNTH_LABELS

COMPACT_DIR = "compact"
BENCH_LABEL = "demo-compact"
SUMMARY_FILE = "demo-compact.json"
# The target: the compressed INT8 model runs >= 10x the img/s of PyTorch eager FP32
# AlexNet at batch 1 on this machine and its holdout accuracy is within 0.5 pts of the full model.
TARGET_RATIO = 10.0
TARGET_DELTA_PTS = 0.5
# Every subject of the compact bench runs one intra-op thread (ONNX Runtime's intra_op_num_threads
# and torch.set_num_threads): the same for both sides, and on a CPU shared with other jobs two
# OpenMP threads can stall at every barrier (measured: PyTorch eager AlexNet 2.7 img/s with 2
# threads next to a training job), which would inflate the ratio.
BENCH_THREADS = 1


@dataclass(frozen=True)
class CompactProfile:
    """How the compact model is made from the demo's AlexNet.

    Args:
        keep (float): kept fraction of every conv layer's filters and hidden FC neurons.
        fine_tune_epochs (int): epochs of fine-tuning after pruning.
        lr (float): fine-tuning learning rate (SGD of the demo preset; Adam of the fast one).
        lr_steps (tuple): epochs after which the rate drops (x0.2, the demo preset's gamma).
        warmup_epochs (float): linear warm-up epochs.
        temperature (float): distillation temperature T.
        alpha (float): weight of the soft-target term (1 - alpha on the hard labels).
    """

    keep: float
    fine_tune_epochs: int
    lr: float
    lr_steps: tuple = ()
    warmup_epochs: float = 0.0
    temperature: float = 4.0
    alpha: float = 0.7


# "full" is the recipe that met issue 15's target in benchmarks/variants.py (alexnet-pruned70-kd:
# INT8 within 0.5 pts of FP32 AlexNet on both synthetic settings, 3 seeds, 18x PyTorch eager at
# 128 px); the earlier keep 0.3 / 6 epochs stayed 1 pt short after INT8 here
COMPACT_PROFILES = {
    "full": CompactProfile(keep=0.7, fine_tune_epochs=10, lr=0.003, lr_steps=(6, 9), alpha=0.9),
    "fast": CompactProfile(keep=0.5, fine_tune_epochs=1, lr=1e-4),
}


def run_compact_demo(out_dir="edgealex-demo", fast=False, target=None, seed=0, progress=True, keep=None,
                     keep_resume=False, keep_checkpoint=False):
    """Run the demo pipeline with the pruned, distilled model; reuse what earlier runs left.

    Args:
        out_dir (str): the demo folder (shared with ``edgealex demo``). Defaults to "edgealex-demo".
        fast (bool): the small test configuration. Defaults to False.
        target (str): target profile; None detects this machine. Defaults to None.
        seed (int): dataset seed. Defaults to 0.
        progress (bool): progress bars on a terminal. Defaults to True.
        keep (float): kept fraction of filters/neurons, in (0, 1]; None takes the profile's (0.7
            full, 0.5 fast). Defaults to None.
        keep_resume, keep_checkpoint (bool): as in :func:`edgealex.demo.run_demo`, for the AlexNet
            (the teacher). Without ``keep_checkpoint`` the teacher is read from its exported ONNX
            (:func:`edgealex.models.alexnet.load_checkpoint` takes it), exactly like the plain demo,
            so both demos leave one copy of the AlexNet's weights in a shared folder.

    Returns:
        DemoResult: with ``figures["compact"]`` (see :func:`compact_figures`); ``format()`` prints
        the compact summary.

    Raises:
        EdgeAlexError: a stage failed (its message says which and why); GateFailed when the compact
            model's INT8 agreement is below the gate.
    """
    from edgealex import demo as D
    from edgealex.target import resolve_target

    started = time.perf_counter()
    profile_name = "fast" if fast else "full"
    profile = D.PROFILES[profile_name]
    cprofile = COMPACT_PROFILES[profile_name]
    keep = cprofile.keep if keep is None else keep
    out_dir = os.path.abspath(str(out_dir))
    tgt = resolve_target(target)
    D._check_builder(tgt)
    ensure_dir(out_dir, "demo folder")
    result = CompactDemoResult(out_dir=out_dir, profile=profile_name + " compact", target=tgt.name)
    steps = D._Steps(result, 9)
    teacher_paths = D._layout(out_dir)
    paths = _compact_layout(out_dir, teacher_paths)

    steps.start("data", "synthesize the defect dataset")
    data = D._data(teacher_paths, profile, seed)
    steps.done(cached=data.reused)
    result.artifacts["dataset"] = data.out_dir

    steps.start("train", f"train AlexNet on it ({profile.train_preset} preset): the teacher and the reference")
    teacher = D._train(teacher_paths, profile, progress=progress, keep_resume=keep_resume,
                       keep_checkpoint=keep_checkpoint)
    teacher_onnx, _ = D._export(teacher_paths, teacher.path)
    teacher_path = D._weights_kept_in(teacher.path, teacher_onnx, keep_checkpoint)
    steps.done(cached=teacher.reused)
    result.artifacts["teacher_checkpoint" if keep_checkpoint else "teacher_onnx"] = teacher_path
    result.figures.update({"teacher_val_accuracy": teacher.best_val_acc,
                           "teacher_train_holdout_accuracy": teacher.holdout_acc,
                           "train_epochs": (teacher.settings or {}).get("epochs")})

    steps.start("compress", f"prune to {keep:.0%} of the filters/neurons, fine-tune {cprofile.fine_tune_epochs} "
                            "epoch(s) distilling from the AlexNet")
    pruned = _compress(paths, teacher_path, profile, cprofile, keep, progress)
    steps.done(cached=bool((pruned.fine_tune or {}).get("reused")))
    result.artifacts["checkpoint"] = pruned.path
    result.figures.update({"compact_widths": pruned.widths, "compact_keep": pruned.keep,
                           "compact_parameters": pruned.parameters_after, "teacher_parameters": pruned.parameters_before,
                           "compact_train_holdout_accuracy": (pruned.fine_tune or {}).get("holdout_acc")})

    steps.start("export", "export the compact model to ONNX with the parity check")
    onnx_path, cached = D._export(paths, pruned.path)
    steps.done(cached=cached)
    result.artifacts["onnx"] = onnx_path

    D._calibrate_step(result, steps, paths, onnx_path, profile)

    steps.start("build", f"build the compact model's engines for target {tgt.name}")
    engines, skipped = D._build(paths, onnx_path, tgt)
    steps.done()
    result.skipped += [list(s) for s in skipped]
    result.artifacts["engines_dir"] = paths["engines"]
    result.artifacts["engines"] = engines

    run_engine = D._pick_run_engine(engines)
    steps.start("run", f"inspection loop on a synthetic conveyor for {profile.run_s:.0f} s")
    loop = D._run(paths, run_engine, profile)
    steps.done()
    result.artifacts.update({"run_engine": run_engine, "video": paths["video"], "verdicts": paths["verdicts"]})
    result.figures.update({"pipeline_fps": loop.get("pipeline_fps"), "engine_fps": loop.get("engine_fps"),
                           "frames": loop.get("frames"), "defects": loop.get("defects"),
                           "dropped": loop.get("dropped"), "loop_accuracy": D._loop_accuracy(loop),
                           "loop_distinct_images": (loop.get("accuracy") or {}).get("distinct_images")})

    steps.start("bench", "benchmark the compact engines against PyTorch eager FP32 AlexNet, batch 1")
    bench_engines = [run_engine] + [e for e in engines if e != run_engine and read_record(e).precision == "fp32"][:1]
    session = _bench(paths, bench_engines, teacher_path, profile, tgt, progress)
    steps.done()
    result.figures["bench"] = D._bench_rows(session)
    result.skipped += [list(s) for s in session.skipped]
    result.artifacts["bench_dir"] = paths["bench"]
    result.figures["compact"] = compact_figures(session.results, pruned, onnx_path, run_engine)

    return D._report_and_finish(result, steps, session, paths, started,
                                f"edgealex demo --compact: {os.path.basename(onnx_path)} on {tgt.name}", SUMMARY_FILE)


def _compact_layout(out_dir, teacher_paths):
    from edgealex.demo import _layout

    paths = _layout(os.path.join(out_dir, COMPACT_DIR))
    paths["data"] = teacher_paths["data"]
    model_dir = os.path.join(out_dir, COMPACT_DIR, "model")
    paths["checkpoint"] = os.path.join(model_dir, "alexnet-compact.pt")
    paths["onnx"] = os.path.join(model_dir, "alexnet-compact.onnx")
    return paths


def _compress(paths, teacher, profile, cprofile, keep, progress):
    """Prune the teacher and fine-tune the result distilling from it (reused when identical)."""
    from edgealex.models.prune import prune, unfinetuned_path

    ensure_dir(os.path.dirname(paths["checkpoint"]), "compact model folder")
    bar = None
    if progress:
        from edgealex.train.progress import BarProgress

        bar = BarProgress()
    result = prune(teacher, paths["checkpoint"], keep, fine_tune_epochs=cprofile.fine_tune_epochs, data=paths["data"],
                   preset=profile.train_preset, lr=cprofile.lr, lr_steps=tuple(cprofile.lr_steps),
                   warmup_epochs=cprofile.warmup_epochs, distill=True, temperature=cprofile.temperature,
                   alpha=cprofile.alpha, reuse=True, keep_last=False, save_every=10 ** 6, progress=bar)
    # the pruned, not fine-tuned intermediate (as large as the compact model) serves nothing here:
    # a later run prunes the teacher again (same weights, same init_sha256) and reuses the fine-tuning
    if os.path.isfile(unfinetuned_path(paths["checkpoint"])):
        os.remove(unfinetuned_path(paths["checkpoint"]))
    return result


def _bench(paths, engines, teacher, profile, target, progress):
    """One compare session: the compact engines first, then PyTorch eager FP32 on the teacher."""
    from edgealex.bench.harness import BenchOptions, run_bench
    from edgealex.demo import _remove_demo_results

    _remove_demo_results(paths["bench"], label=BENCH_LABEL)  # each run reports its own measurements only
    options = BenchOptions(mode="compare", duration_s=profile.bench_s, warmup_s=profile.warmup_s,
                           torch_weights=teacher, torch_reference=True, target=target.name, progress=progress,
                           label=BENCH_LABEL,
                           baselines=("torch",), eval_images=os.path.join(paths["data"], "holdout"),
                           runner_options={"intra_op_num_threads": BENCH_THREADS})
    return run_bench(list(engines), options, paths["bench"])


def compact_figures(results, pruned, onnx_path, int8_engine):
    """The target check from one bench session's records.

    Args:
        results (list): bench result dicts; the compact INT8 engine first, a compact FP32 engine
            and the ``pytorch-eager-fp32`` baseline (full AlexNet) among them.
        pruned (PruneResult): the compact model.
        onnx_path (str): its ONNX.
        int8_engine (str): the benchmarked INT8 engine.

    Returns:
        dict: parameters (compact, teacher), onnx_mb, holdout accuracy (0..1) of the compact INT8
        engine, the compact FP32 engine and PyTorch eager FP32 AlexNet on the same images, their
        deltas in points, img/s of each and ``ratio`` (compact INT8 img/s / PyTorch eager img/s),
        ``target_met`` (bool or None when a figure is missing) and ``verdict`` (a sentence).
    """
    def row(pred):
        return next((r for r in results if pred(r)), None)

    torch_row = row(lambda r: r.get("kind") == "baseline" and "eager" in str((r.get("engine") or {}).get("name")))
    int8_row = row(lambda r: r.get("kind") == "engine" and os.path.abspath((r.get("engine") or {}).get("path", ""))
                   == os.path.abspath(int8_engine))
    fp32_row = row(lambda r: r.get("kind") == "engine" and (r.get("engine") or {}).get("precision") == "fp32")

    def fps(r):
        return None if r is None else (r.get("throughput") or {}).get("fps")

    def acc(r):
        return None if r is None else (r.get("accuracy") or {}).get("top1_accuracy")

    def delta(a, b):
        return None if a is None or b is None else round((a - b) * 100, 2)

    ref = acc(torch_row)
    out = {
        "keep": pruned.keep, "widths": pruned.widths, "parameters": pruned.parameters_after,
        "teacher_parameters": pruned.parameters_before, "onnx_mb": round(os.path.getsize(onnx_path) / 1e6, 2),
        "holdout_images": None if int8_row is None else (int8_row.get("accuracy") or {}).get("images"),
        "teacher_fp32_accuracy": ref, "compact_fp32_accuracy": acc(fp32_row), "compact_int8_accuracy": acc(int8_row),
        "fp32_delta_pts": delta(acc(fp32_row), ref), "int8_delta_pts": delta(acc(int8_row), ref),
        "pytorch_eager_img_per_s": fps(torch_row), "compact_int8_img_per_s": fps(int8_row),
        "compact_fp32_img_per_s": fps(fp32_row),
        "ratio": None if not fps(int8_row) or not fps(torch_row) else round(fps(int8_row) / fps(torch_row), 2),
        "threads": BENCH_THREADS,
        "loadavg_end": None if torch_row is None else (torch_row.get("environment") or {}).get("loadavg_end"),
    }
    images = out["holdout_images"] or 0
    classes = len((pruned.fine_tune or {}).get("labels") or []) or len(SYNTH_LABELS)
    unresolvable = _unresolvable(images, ref, classes)
    if out["ratio"] is None or out["int8_delta_pts"] is None:
        out["target_met"] = None
        out["verdict"] = "not checked: a figure is missing (see the bench records)"
    elif unresolvable:
        out["target_met"] = None
        out["verdict"] = "not checked: " + unresolvable
    else:
        fast_enough = out["ratio"] >= TARGET_RATIO
        accurate = out["int8_delta_pts"] >= -TARGET_DELTA_PTS
        out["target_met"] = bool(fast_enough and accurate)
        out["verdict"] = "{}: {:.1f}x PyTorch eager FP32 AlexNet ({} {:.0f}x), INT8 holdout accuracy {:+.1f} pts " \
                         "({}within {} pts)".format("MET" if out["target_met"] else "NOT MET", out["ratio"],
                                                    ">=" if fast_enough else "<", TARGET_RATIO, out["int8_delta_pts"],
                                                    "" if accurate else "not ", TARGET_DELTA_PTS)
    return out


def _unresolvable(images, reference, classes):
    """Why ``images`` holdout images and a reference accuracy cannot decide "within 0.5 pts", or None.

    One image must weigh at most :data:`TARGET_DELTA_PTS` (so >= 200 images for 0.5 pts), and the
    reference AlexNet must be clearly above chance (1/classes): equal scores of untrained models
    say nothing about compression.
    """
    if images * TARGET_DELTA_PTS / 100.0 < 1.0:
        return ("{} holdout images cannot resolve {} pts (one image is {:.1f} pts; {} or more are needed)".format(
            images, TARGET_DELTA_PTS, 100.0 / images if images else float("inf"), int(100 / TARGET_DELTA_PTS)))
    if reference is None or reference < 2.0 / classes:
        return "the reference AlexNet scores {} on the holdout, near chance for {} classes ({:.0%})".format(
            "n/a" if reference is None else f"{reference:.1%}", classes, 1.0 / classes)
    return None


def _format_compact(c):
    from edgealex.demo import _num, _pct

    if not c:
        return []

    def pts(v):
        return "n/a" if v is None else f"{v:+.1f} pts"

    return [
        "  compact model: pruned to {:.0%} of the filters/neurons (widths conv {} fc {}), distilled from the AlexNet: "
        "{:.2f} M parameters vs {:.2f} M ({:.1%}), ONNX {:.1f} MB".format(
            c["keep"], c["widths"].get("conv"), c["widths"].get("fc"), c["parameters"] / 1e6,
            c["teacher_parameters"] / 1e6, c["parameters"] / c["teacher_parameters"], c["onnx_mb"]),
        "  holdout accuracy ({} images): full AlexNet FP32 (PyTorch) {}, compact FP32 {} ({}), compact INT8 {} ({})".format(
            c.get("holdout_images"), _pct(c["teacher_fp32_accuracy"]), _pct(c["compact_fp32_accuracy"]),
            pts(c["fp32_delta_pts"]), _pct(c["compact_int8_accuracy"]), pts(c["int8_delta_pts"])),
        "  batch 1, one bench session: compact INT8 {} img/s, compact FP32 {} img/s, PyTorch eager FP32 AlexNet {} img/s "
        "({} thread each, load average {}): ratio {}x".format(
            _num(c["compact_int8_img_per_s"]), _num(c["compact_fp32_img_per_s"]), _num(c["pytorch_eager_img_per_s"]),
            c.get("threads"), c.get("loadavg_end"),
            _num(c["ratio"])),
        "  issue 15 target (>= {:.0f}x PyTorch eager, within {} pts, on this demo's normal-setting holdout): {}".format(
            TARGET_RATIO, TARGET_DELTA_PTS, c["verdict"]),
    ]


class CompactDemoResult(DemoResult):
    """:class:`edgealex.demo.DemoResult` whose summary ends with the compact model's figures."""

    def training_checkpoint_kept(self):
        # "checkpoint" is the compact model's here; the trained AlexNet (the teacher) is kept only
        # with --keep-checkpoint (else its ONNX stands for it)
        return bool(self.artifacts.get("teacher_checkpoint"))

    def format(self):
        lines = DemoResult.format(self).split("\n")
        at = next((i for i, line in enumerate(lines) if line == "  artifacts:"), len(lines))
        teacher = self.artifacts.get("teacher_checkpoint") or self.artifacts.get("teacher_onnx")
        if teacher:
            lines.append("    {:<12} {}{}".format("teacher", teacher, "" if self.artifacts.get("teacher_checkpoint")
                                                  else " (its checkpoint not kept: --keep-checkpoint)"))
        return "\n".join(lines[:at] + _format_compact(self.figures.get("compact")) + lines[at:])
