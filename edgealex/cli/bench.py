"""edgealex bench: fps, latency percentiles, power and energy per frame, one JSON per run."""

from pathlib import Path
from typing import List, Optional

import typer

from edgealex.cli._common import echo, emit_json, user_errors

from typing_extensions import Annotated  # typing.Annotated needs Python 3.9; JetPack 5 has 3.8


def _batches(text):
    from edgealex.errors import EdgeAlexError

    if not text:
        return ()
    try:
        return tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise EdgeAlexError("--batch " + str(text), "not a comma-separated list of integers", "e.g. --batch 1,2,4,8")


@user_errors
def bench(
    engines: Annotated[Optional[List[Path]], typer.Argument(help="Engines or ONNX files (several: one run each).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Results folder.")] = Path("results"),
    mode: Annotated[str, typer.Option(help="engine (runner only), loop (camera pipeline) or compare "
                                           "(ratios to the first, plus baselines).")] = "engine",
    batch: Annotated[Optional[str], typer.Option(help="Batch sizes to sweep, e.g. 1,2,4,8 (dynamic-batch engines).")] = None,
    warmup: Annotated[float, typer.Option(help="Warm-up seconds.")] = 2.0,
    warmup_iters: Annotated[Optional[int], typer.Option(help="Warm-up iterations instead of seconds.")] = None,
    duration: Annotated[float, typer.Option(help="Measured seconds per run.")] = 10.0,
    iterations: Annotated[Optional[int], typer.Option(help="Measured iterations instead of seconds.")] = None,
    power: Annotated[str, typer.Option(help="auto | ina3221 | jtop | nvml | rapl | csv:FILE | none.")] = "auto",
    power_interval_ms: Annotated[Optional[float], typer.Option(help="Power polling interval (default: the "
                                                                    "sensor's own update rate).")] = None,
    meter_offset: Annotated[float, typer.Option(help="Seconds added to a csv: meter log's timestamps.")] = 0.0,
    idle: Annotated[float, typer.Option(help="Idle baseline seconds before the first run (0 = none).")] = 0.0,
    target: Annotated[Optional[str], typer.Option(help="Target profile (rails, power modes); default: detected.")] = None,
    source: Annotated[str, typer.Option(help="Frame source for --mode loop.")] = "synthetic://",
    baselines: Annotated[str, typer.Option(help="compare mode: auto | none | any of ort,torch,torch-int8.")] = "auto",
    torch_weights: Annotated[Optional[Path], typer.Option(help="edgealex checkpoint (or the FP32 ONNX exported from it) for the PyTorch baselines.")] = None,
    onnx: Annotated[Optional[Path], typer.Option(help="Raw FP32 ONNX (bare ONNX Runtime baseline; --matrix input).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="Intra-op threads for ONNX Runtime and PyTorch.")] = None,
    matrix: Annotated[bool, typer.Option(help="Sweep the target's precisions x devices, building missing engines "
                                              "from --onnx.")] = False,
    calib: Annotated[Optional[Path], typer.Option(help="--matrix: calibration for INT8 builds: the output folder "
                                                       "of `edgealex calibrate` (TensorRT targets also take a "
                                                       ".cache file or an image folder).")] = None,
    import_trtexec: Annotated[Optional[Path], typer.Option(help="Import a trtexec --exportTimes JSON as a result.")] = None,
    trtexec_warmup_ms: Annotated[float, typer.Option(help="trtexec --warmUp of that trace (ms).")] = 200.0,
    label: Annotated[Optional[str], typer.Option(help="Prefix for the run names.")] = None,
    eval_images: Annotated[Optional[Path], typer.Option(help="Labelled images (class sub-folders named like the "
                                                             "labels, e.g. the calibration holdout): top-1 accuracy "
                                                             "of each engine and agreement with the first. Without "
                                                             "it accuracy is 'not measured'.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic inputs.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the session as JSON.")] = False,
):
    """Benchmark engines: latency percentiles, fps, power, energy per frame; writes results/*.json."""
    from edgealex.bench.harness import BenchOptions, run_bench, summary_lines
    from edgealex.bench.result import import_trtexec_times

    if import_trtexec is not None:
        engine = str(engines[0]) if engines else None
        path = import_trtexec_times(str(import_trtexec), str(out), engine=engine, warmup_ms=trtexec_warmup_ms,
                                    batch=(_batches(batch) or (1,))[0], label=label)
        if json_out:
            emit_json({"results": [path]})
        else:
            echo(f"imported {import_trtexec} -> {path}")
        return
    from edgealex.bench.matrix import check_matrix_options

    check_matrix_options(matrix, calib)
    engine_paths = [str(p) for p in engines or []]
    skipped = []
    runner_options = {"intra_op_num_threads": threads} if threads else {}
    options = BenchOptions(
        mode=mode, batches=_batches(batch), warmup_s=warmup, warmup_iters=warmup_iters, duration_s=duration,
        iterations=iterations, power=power, power_interval_s=None if power_interval_ms is None else power_interval_ms / 1e3,
        meter_offset_s=meter_offset, idle_s=idle, target=target, source=source,
        baselines=tuple(b.strip() for b in baselines.split(",") if b.strip()),
        torch_weights=str(torch_weights) if torch_weights else None, onnx=str(onnx) if onnx else None,
        runner_options=runner_options, seed=seed, label=label,
        eval_images=str(eval_images) if eval_images else None)
    if matrix:
        from edgealex.bench.matrix import matrix_engines

        built, skipped = matrix_engines(options.onnx, target, str(out), calib=str(calib) if calib else None)
        engine_paths += built
    session = run_bench(engine_paths, options, str(out), skipped=skipped)
    if json_out:
        emit_json(session.to_dict())
        return
    for line in summary_lines(session):
        echo(line)
