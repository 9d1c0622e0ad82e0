#!/usr/bin/env python3
"""AlexNet on this CPU: FP32 vs INT8 (both Q/DQ layouts) vs PyTorch eager vs quantize_dynamic; loop vs engine.

One command::

    python benchmarks/cpu_compare.py --out benchmarks/results

Steps (intermediate files in --work, reused on the next run):

1. export a random-init torchvision-layout AlexNet (5 classes, 224x224, batch 1) to ONNX;
2. render a small synthetic defect dataset and calibrate INT8 with ``edgealex.calib`` (entropy,
   per-channel): the TensorRT-compatible Q/DQ ONNX and ONNX Runtime's own INT8 ONNX;
3. build the ONNX Runtime engines (FP32, INT8 ORT-native, INT8 Q/DQ) with ``edgealex.build``;
4. ``edgealex bench --mode compare`` on the three engines plus the baselines (bare ONNX Runtime on
   the raw ONNX, PyTorch eager FP32, PyTorch ``quantize_dynamic`` INT8), all in one run so the
   ratios share the machine's state;
5. the camera loop (``synthetic://?fps=0``, unpaced) against engine mode on the FP32 and INT8
   engines, alternated in the same run.

Writes ``cpu_compare.json`` and ``cpu_compare.md`` (machine, load average, every figure, ratios to
FP32) to --out. Random weights: the agreement figures only show that INT8 tracks FP32 on
synthetic inputs; accuracy needs a trained model. Power: whatever ``--power auto`` finds (n/a on a
VM without RAPL).
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import LOAD_NOTE, export_alexnet, machine, write_results  # noqa: E402


def calibrate_int8(onnx_path, work):
    """Both INT8 layouts from one calibration pass (edgealex.calib); returns the calibration folder."""
    from edgealex.calib.pipeline import MANIFEST_NAME, calibrate
    from edgealex.synth.dataset import synthesize

    out = os.path.join(work, "calib")
    how = "edgealex.calib (entropy) on the calib split of a synthetic defect dataset (20 images per class)"
    if os.path.isfile(os.path.join(out, MANIFEST_NAME)):
        return out, how + ", reused from " + out
    data = os.path.join(work, "synth")
    synthesize(data, per_class=20, size=256, seed=0)
    print("calibrating INT8 (entropy) on synthetic images ...", flush=True)
    # Random weights: the agreement gate would measure noise, so it is reported but not enforced.
    calibrate(onnx_path, os.path.join(data, "calib"), out, holdout=os.path.join(data, "holdout"),
              min_agreement=0.0, progress=False)
    return out, how


def build(onnx_path, calib, work):
    from edgealex.build.api import build_engine

    out = os.path.join(work, "engines")
    fp32 = build_engine(onnx_path, target="cpu", precision="fp32", out_dir=out).engine_path
    native = build_engine(onnx_path, target="cpu", precision="int8", calib=calib, ort_int8="native",
                          out_dir=out).engine_path
    qdq = build_engine(onnx_path, target="cpu", precision="int8", calib=calib, ort_int8="qdq", out_dir=out).engine_path
    return fp32, native, qdq


def row(d):
    thr, lat, pw = d.get("throughput") or {}, d.get("latency_ms") or {}, d.get("power") or {}
    eng = d.get("engine") or {}
    return {"label": d["label"], "mode": d["mode"], "backend": eng.get("backend"), "precision": eng.get("precision"),
            "batch": d["batch"], "fps": thr.get("fps"), "pipeline_fps": thr.get("pipeline_fps"),
            "engine_fps": thr.get("engine_fps"), "p50_ms": lat.get("p50_ms"), "p99_ms": lat.get("p99_ms"),
            "cv": lat.get("cv"), "iterations": lat.get("count"),
            "agreement_vs_first": (d.get("accuracy") or {}).get("agreement_vs_first"),
            "fps_ratio_vs_first": (d.get("compare") or {}).get("fps_ratio"),
            "power": "n/a" if not pw.get("available") else "{:.2f} W, {:.1f} mJ/frame".format(
                pw["avg_power_w"], pw["mj_per_frame_gross"]),
            "power_reason": pw.get("reason"),
            "result": os.path.basename(d.get("_path") or d["run_id"] + ".json")}


def fmt(v, digits=2):
    return "n/a" if v is None else f"{v:.{digits}f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/results", help="where cpu_compare.{json,md} go")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "edgealex-cpu-compare"),
                    help="intermediate files (ONNX, dataset, calibration, engines, raw results)")
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run")
    ap.add_argument("--power", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: library defaults)")
    args = ap.parse_args(argv)

    from edgealex.bench.harness import BenchOptions, run_bench, summary_lines
    from edgealex.log import configure

    configure()
    os.makedirs(args.work, exist_ok=True)
    before = machine()
    onnx_path = export_alexnet(args.work)
    calib, how = calibrate_int8(onnx_path, args.work)
    fp32, native, qdq = build(onnx_path, calib, args.work)
    results_dir = os.path.join(args.work, "results")
    runner_options = {"intra_op_num_threads": args.threads} if args.threads else {}
    common = dict(warmup_s=args.warmup, duration_s=args.duration, power=args.power, runner_options=runner_options)

    compare = run_bench([fp32, native, qdq], BenchOptions(mode="compare", baselines=("ort", "torch", "torch-int8"),
                                                          onnx=onnx_path, **common), results_dir)
    print("\n".join(summary_lines(compare)), flush=True)
    loop_runs = []
    for engine in (fp32, native):  # engine mode and loop mode back to back, same engine
        s_engine = run_bench([engine], BenchOptions(mode="engine", **common), results_dir)
        s_loop = run_bench([engine], BenchOptions(mode="loop", source="synthetic://?fps=0", **common), results_dir)
        loop_runs.append((s_engine.results[0], s_loop.results[0]))
    after = machine()

    rows = [row(d) for d in compare.results]
    loop_rows = [{"engine": row(e), "loop": row(lp),
                  "pipeline_over_engine_mode": (lp["throughput"]["fps"] / e["throughput"]["fps"])
                  if lp["throughput"].get("fps") and e["throughput"].get("fps") else None,
                  "loop_stages_ms": {k: v.get("mean") for k, v in (lp.get("loop") or {}).get("latency_ms", {}).items()}}
                 for e, lp in loop_runs]
    data = {"benchmark": "cpu_compare", "machine": before, "loadavg_after": after["loadavg"],
            "contention_note": LOAD_NOTE,
            "model": "torchvision-layout AlexNet, random init, 5 classes, 224x224, batch 1",
            "int8_calibration": how, "duration_s": args.duration, "warmup_s": args.warmup,
            "compare": rows, "loop_vs_engine": loop_rows,
            "power": compare.power, "skipped": compare.skipped}
    md = ["# CPU comparison: AlexNet FP32 vs INT8 vs PyTorch", "",
          "Machine: {} ({} CPUs, {}), Python {}, ONNX Runtime {}, PyTorch {}.".format(
              before["cpu_model"], before["cpu_count"], before["hostname"], before["versions"]["python"],
              before["versions"]["onnxruntime"], before["versions"]["torch"]),
          "Load average before/after: {} / {} — {}".format(before["loadavg"], after["loadavg"],
                                                           data["contention_note"]), "",
          "Model: {}. INT8: {}. {} s measured after {} s warm-up per run; one `edgealex bench --mode compare` "
          "run, ratios to the first row.".format(data["model"], how, args.duration, args.warmup), "",
          "| run | backend | precision | fps | x FP32 engine | p50 ms | p99 ms | CV | top-1 agreement vs FP32 | power |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["label"], r["backend"], r["precision"], fmt(r["fps"], 1), fmt(r["fps_ratio_vs_first"]), fmt(r["p50_ms"]),
            fmt(r["p99_ms"]), fmt(r["cv"]), "n/a" if r["agreement_vs_first"] is None else
            "{:.0%}".format(r["agreement_vs_first"]), r["power"]))
    md += ["", "## Camera loop vs engine mode (same engine, back to back)", "",
           "| engine | engine-mode fps | loop pipeline fps | loop / engine | loop engine-only fps | "
           "loop p50 end-to-end ms | stage means ms |", "|---|---|---|---|---|---|---|"]
    for lr in loop_rows:
        stages = ", ".join(f"{k} {fmt(v)}" for k, v in lr["loop_stages_ms"].items())
        md.append("| {} | {} | {} | {} | {} | {} | {} |".format(
            lr["engine"]["label"], fmt(lr["engine"]["fps"], 1), fmt(lr["loop"]["fps"], 1),
            fmt(lr["pipeline_over_engine_mode"]), fmt(lr["loop"]["engine_fps"], 1), fmt(lr["loop"]["p50_ms"]), stages))
    md += ["", "The loop reads an unpaced synthetic source (`synthetic://?fps=0`), which never drops frames: its "
           "end-to-end latency includes the wait in the 4-frame queue, so it shows throughput, not camera latency.",
           ""]
    reason = rows[0].get("power_reason") if rows else None
    md += ["Power: " + (f"n/a ({reason})" if reason else (rows[0]["power"] if rows else "n/a")), ""]
    if compare.skipped:
        md += ["Skipped: " + "; ".join(f"{a}: {b}" for a, b in compare.skipped), ""]
    md += [f"Raw results (per-run JSON, traces) were written to `{results_dir}`; render them with "
           f"`edgealex report {results_dir}/*.json -o report/`.", ""]
    write_results(args.out, "cpu_compare", data, "\n".join(md))


if __name__ == "__main__":
    main()
