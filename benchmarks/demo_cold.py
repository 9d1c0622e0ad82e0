"""Cold and warm `edgealex demo` from a fresh clone (issue 17 items 6 and 8).

Clones the repository's HEAD into a temporary folder, runs ``python -m edgealex demo`` there into
a fresh output folder (cold), then again into the same folder (warm), and records per run: wall
time, per-stage times, holdout accuracy, INT8 agreement and accuracy, the loop's accuracy and
distinct images, and the disk footprint of the demo folder (files counted once, as
``edgealex.artifacts.folder_bytes`` does).

``--emulate avx2`` runs the same cold demo with PyTorch and oneDNN limited to AVX2 without bf16
(``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``: oneDNN then reports no native bf16, so
the demo trains in fp32 like on an AVX2-only CPU). ONNX Runtime has no such switch and still uses
the CPU's AVX-512/VNNI kernels for calibration, the loop and the bench; training is most of a cold
demo's time. It is an emulation on this CPU, not a run on an AVX2-only machine.

    python benchmarks/demo_cold.py --out benchmarks/results [--emulate avx2] [--no-warm]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from _common import REPO, machine, write_results

EMULATIONS = {"none": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}


def _load():
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def _run_demo(clone, out_dir, env, fast=False):
    import json

    start_load = _load()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgealex", "demo", "-o", out_dir, "--json"] + (["--fast"] if fast else []),
                          cwd=clone, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    wall_s = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"demo failed with exit {proc.returncode}")
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    from edgealex.artifacts import folder_bytes

    f = summary["figures"]
    sizing = f.get("train_sizing") or {}
    probe = sizing.get("probe") or {}
    return {"wall_s": round(wall_s, 1), "load_start": start_load, "load_end": _load(),
            "steps_s": summary["steps_s"], "cached": summary["cached"],
            "holdout_accuracy_fp32": f.get("fp32_accuracy"), "int8_agreement": f.get("int8_agreement"),
            "int8_accuracy": f.get("int8_accuracy"), "calibration_method": f.get("calibration_method"),
            "train_epochs": f.get("train_epochs"), "train_images_per_s": f.get("train_images_per_s"),
            "train_precision": probe.get("precision"), "train_memory_format": probe.get("memory_format"),
            "loop_accuracy": f.get("loop_accuracy"), "loop_distinct_images": f.get("loop_distinct_images"),
            "disk_bytes": folder_bytes(out_dir), "disk_mb": round(folder_bytes(out_dir) / 1e6, 1),
            "top_level_mb": {name: round(folder_bytes(os.path.join(out_dir, name)) / 1e6, 1)
                             for name in sorted(os.listdir(out_dir)) if os.path.isdir(os.path.join(out_dir, name))},
            "stderr_tail": proc.stderr.strip().splitlines()[-3:]}


def _markdown(data):
    m = data["machine"]
    lines = [f"# `edgealex demo` cold and warm from a fresh clone ({data['emulate']})", "",
             f"Machine: {m['cpu_model']} ({m['cpu_isa']}), {m['cpu_count']} vCPU; commit {data['commit']}; "
             f"{data['note']}", ""]
    if data["emulate"] != "none":
        lines += [f"Emulation: {data['emulation_env']} (PyTorch and oneDNN limited to AVX2, no native bf16, so the "
                  "demo trains in fp32); ONNX Runtime keeps this CPU's kernels. Not a run on an AVX2-only machine.", ""]
    lines += ["| run | wall s | load start / end | steps (s) | train | FP32 holdout | INT8 agreement | INT8 accuracy | "
              "loop accuracy (distinct images) | disk MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, run in data["runs"].items():
        steps = ", ".join("{} {}{}".format(k, v, "*" if run["cached"].get(k) else "") for k, v in run["steps_s"].items())
        train = "{} epochs, {} img/s, {} {}".format(run["train_epochs"], run["train_images_per_s"] and
                                                   round(run["train_images_per_s"], 1), run["train_precision"],
                                                   run["train_memory_format"])
        pct = lambda v: "n/a" if v is None else f"{v:.1%}"  # noqa: E731
        lines.append(f"| {name} | {run['wall_s']} | {run['load_start']} / {run['load_end']} | {steps} | {train} | "
                     f"{pct(run['holdout_accuracy_fp32'])} | {pct(run['int8_agreement'])} "
                     f"({run['calibration_method']}) | {pct(run['int8_accuracy'])} | {pct(run['loop_accuracy'])} "
                     f"({run['loop_distinct_images']}) | {run['disk_mb']} |")
    lines += ["", "`*` = reused from the earlier run. Disk: the demo folder's files counted once (hard links once); "
              "per folder: " + "; ".join(f"{k} {v}" for k, v in data["runs"]["cold"]["top_level_mb"].items()) + " MB.",
              ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results"))
    parser.add_argument("--emulate", choices=sorted(EMULATIONS), default="none")
    parser.add_argument("--no-warm", action="store_true", help="only the cold run")
    parser.add_argument("--note", default="", help="what else ran on the machine (recorded as given)")
    parser.add_argument("--fast", action="store_true", help="the demo's --fast profile (checks this script)")
    args = parser.parse_args()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, stdout=subprocess.PIPE,
                            universal_newlines=True).stdout.strip()
    work = tempfile.mkdtemp(prefix="edgealex-demo-cold-")
    try:
        clone = os.path.join(work, "clone")
        subprocess.run(["git", "clone", "-q", REPO, clone], check=True)
        env = dict(os.environ, PYTHONPATH=clone, **EMULATIONS[args.emulate])
        out_dir = os.path.join(work, "edgealex-demo")
        runs = {"cold": _run_demo(clone, out_dir, env, args.fast)}
        print("cold:", runs["cold"]["wall_s"], "s", flush=True)
        if not args.no_warm:
            runs["warm"] = _run_demo(clone, out_dir, env, args.fast)
            print("warm:", runs["warm"]["wall_s"], "s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    data = {"machine": machine(), "commit": commit, "emulate": args.emulate,
            "emulation_env": " ".join(f"{k}={v}" for k, v in EMULATIONS[args.emulate].items()) or None,
            "note": args.note or "no note given", "runs": runs}
    name = "demo_cold" + ("" if args.emulate == "none" else "_" + args.emulate) + ("_fast" if args.fast else "")
    write_results(args.out, name, data, _markdown(data))


if __name__ == "__main__":
    main()
