"""The benchmark protocol: idle baseline -> warm-up -> measured window, with power sampled alongside.

Modes:

- ``engine``: the runner alone on a fixed synthetic batch (no camera, no preprocessing).
- ``loop``: the whole camera-to-classification pipeline (:func:`edgealex.pipeline.loop.run_loop`)
  from ``--source`` (``synthetic://`` by default): pipeline fps next to engine fps, per-stage times.
- ``compare``: several engines and the baselines a user would pick instead (bare ONNX Runtime,
  PyTorch eager FP32, PyTorch ``quantize_dynamic`` INT8), each reported as a ratio to the first.

Protocol per run (trtexec- and MLPerf-like): warm-up by time or iterations; then a fixed
duration or iteration count; every iteration timed with ``time.perf_counter`` around one
synchronous ``infer`` (per-iteration latencies kept); the window runs from the first iteration's
start to the last one's end; energy is integrated over exactly that window. The power meter runs
in a background thread for the whole session; the idle baseline is measured before the first run
while the process sleeps.

The inner loop does nothing but call ``infer`` and read the clock twice: its overhead is measured
in ``benchmarks/harness_overhead.py`` against a bare loop.
"""

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional, Tuple

import numpy as np

from edgealex.artifacts import check_input_file, ensure_dir
from edgealex.bench import energy as E
from edgealex.bench.result import RunRecord, session_stamp, unique_run_id, write_power_csv, write_trace_csv
from edgealex.bench.stats import latency_stats, summarize
from edgealex.engine import EngineRecord, check_batch
from edgealex.errors import EdgeAlexError
from edgealex.validate import check_float
from edgealex.log import logger

MODES = ("engine", "loop", "compare")
EVAL_BATCH = 32  # --eval-images batch of dynamic-batch subjects


@dataclass
class BenchOptions:
    """Everything ``edgealex bench`` can set.

    Args:
        mode (str): "engine", "loop" or "compare".
        batches (tuple): batch sizes to sweep; empty = the engine's own batch (1 when dynamic).
        warmup_s (float): warm-up time. Defaults to 2 s (trtexec: 200 ms).
        warmup_iters (int): warm-up iterations instead of time.
        duration_s (float): measured time. Defaults to 10 s (trtexec: 3 s).
        iterations (int): measured iterations instead of time.
        power (str): power meter spec (see :func:`edgealex.bench.power.open_meter`).
        power_interval_s (float): meter polling interval override.
        meter_offset_s (float): clock offset for ``csv:`` meter logs.
        idle_s (float): idle baseline before the first run, seconds (0 = none).
        target (str): target profile name or path (rails, power modes); None = detected.
        source (str): frame source URI for loop mode.
        baselines (tuple): compare-mode baselines: ("auto",), ("none",) or names from
            :data:`edgealex.bench.baselines.BASELINES`.
        torch_weights (str): edgealex checkpoint (or the FP32 ONNX exported from it) for the PyTorch baselines.
        torch_reference (bool): the PyTorch baselines run another model on purpose (the full model a
            compressed engine is compared with): no warning that their weights are not the engine's.
        onnx (str): raw ONNX for the bare ONNX Runtime baseline (default: an FP32 .onnx engine).
        runner_options (dict): passed to ``load_runner`` (e.g. intra_op_num_threads).
        seed (int): seed of the synthetic inputs.
        sysfs_root (str): filesystem root for sysfs meters and environment (tests).
        label (str): a name prefix for the run ids.
        eval_images (str): a labelled image folder (class sub-folders named like the labels):
            each engine's top-1 accuracy on it and its agreement with the first engine are
            recorded. None: accuracy "not measured" (random inputs would prove nothing).
        progress (bool): show a progress line on a terminal (off with --quiet).
    """

    mode: str = "engine"
    batches: Tuple[int, ...] = ()
    warmup_s: float = 2.0
    warmup_iters: Optional[int] = None
    duration_s: float = 10.0
    iterations: Optional[int] = None
    power: str = "auto"
    power_interval_s: Optional[float] = None
    meter_offset_s: float = 0.0
    idle_s: float = 0.0
    target: Optional[str] = None
    source: str = "synthetic://"
    baselines: Tuple[str, ...] = ("auto",)
    torch_weights: Optional[str] = None
    torch_reference: bool = False
    onnx: Optional[str] = None
    runner_options: dict = field(default_factory=dict)
    seed: int = 0
    sysfs_root: str = "/"
    label: Optional[str] = None
    progress: bool = True
    eval_images: Optional[str] = None

    def check(self):
        if self.mode not in MODES:
            raise EdgeAlexError("--mode " + str(self.mode), "unknown mode", "use one of " + ", ".join(MODES))
        if self.iterations is not None and self.iterations < 1:
            raise EdgeAlexError("--iterations", "must be at least 1", "pass --iterations N with N >= 1")
        # checked even when --iterations replaces it: a nan/inf option is refused wherever it is given
        self.duration_s = check_float("--duration", self.duration_s, low=0, low_open=True, example="10")
        if self.warmup_iters is not None and self.warmup_iters < 0:
            raise EdgeAlexError("--warmup-iters", "must not be negative", "pass 0 to skip the warm-up")
        self.warmup_s = check_float("--warmup", self.warmup_s, low=0, example="2")
        self.idle_s = check_float("--idle", self.idle_s, low=0, example="10")
        self.meter_offset_s = check_float("--meter-offset", self.meter_offset_s, example="0")
        if self.power_interval_s is not None:  # checked (and named) in the unit the user typed: ms
            seconds = check_float("--power-interval-ms", self.power_interval_s, example="100")
            self.power_interval_s = check_float("--power-interval-ms", seconds * 1e3, low=0, low_open=True,
                                                example="100") / 1e3
        for b in self.batches:
            if b < 1:
                raise EdgeAlexError("--batch", f"batch sizes must be >= 1, got {b}", "e.g. --batch 1,2,4,8")
        # compare-mode options are checked in every mode: a typo is a user error wherever it is given
        names = list(self.baselines or ())
        if names not in ([], ["auto"], ["none"]):
            from edgealex.bench.baselines import check_baseline_names

            check_baseline_names(names)
        if self.torch_weights:
            check_input_file(self.torch_weights, "checkpoint", "check the --torch-weights path: an edgealex "
                             "checkpoint (.pt) or the FP32 ONNX exported from it")


@dataclass
class Subject:
    """One thing to benchmark: an engine or a baseline."""

    label: str
    factory: Callable  # (batch) -> Runner, not yet active
    engine: dict
    kind: str = "engine"  # "engine" or "baseline"


@dataclass
class Measurement:
    """Timestamps (``time.perf_counter`` seconds) of one measured window."""

    starts: np.ndarray
    ends: np.ndarray
    batch: int
    warmup_iterations: int
    warmup_s: float
    loop: Optional[dict] = None
    frames_override: Optional[int] = None
    window_override: Optional[Tuple[float, float]] = None

    @property
    def window(self):
        if self.window_override is not None:
            return self.window_override
        return float(self.starts[0]), float(self.ends[-1])

    @property
    def frames(self):
        if self.frames_override is not None:
            return self.frames_override
        return int(self.starts.size) * self.batch

    @property
    def latencies_ms(self):
        return (self.ends - self.starts) * 1e3


@dataclass
class BenchSession:
    """What one ``edgealex bench`` invocation produced."""

    out_dir: str
    results: List[dict] = field(default_factory=list)
    paths: List[str] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    power: Optional[dict] = None

    def to_dict(self):
        return {"out_dir": self.out_dir, "results": self.paths, "skipped": [list(s) for s in self.skipped],
                "power": self.power,
                "runs": [{k: r.get(k) for k in ("run_id", "status", "label", "batch", "throughput", "latency_ms",
                                                 "power", "compare")} for r in self.results]}


# -- progress ---------------------------------------------------------------------------------------
class Progress:
    """The benchmark's progress: a :class:`edgealex.progress.ProgressBar` refreshed every 0.5 s by
    its own thread from the iteration counter, so the timed loop itself never draws."""

    def __init__(self, label, total_s=None, total_iters=None, enabled=True):
        self.label = label
        self.total_s = total_s
        self.total_iters = total_iters
        self.enabled = enabled
        self.counter = None
        self.phase = "warm-up"
        self._stop = threading.Event()
        self._thread = None
        self._t0 = None
        self._bar = None

    def start(self, counter):
        from edgealex.progress import ProgressBar

        self.counter = counter
        self._t0 = time.perf_counter()
        self._bar = ProgressBar(None, f"{self.label[:40]} warm-up", enabled=self.enabled, unit="it")
        if self._bar.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def measuring(self):
        self.phase = "measuring"
        self._t0 = time.perf_counter()
        if self._bar is not None and self._bar.enabled:
            self._bar.describe(f"{self.label[:40]} measuring")
            self._bar.reset(total=self.total_iters)

    def _run(self):
        while not self._stop.wait(0.5):
            n = len(self.counter) if self.counter is not None else 0
            elapsed = time.perf_counter() - self._t0
            if self.phase == "measuring" and not self.total_iters and self.total_s:
                self._bar.note(f"{min(elapsed, self.total_s):.1f}/{self.total_s:.0f} s")
            self._bar.set(n)

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._bar is not None:
            self._bar.close()


# -- the timed loop ------------------------------------------------------------------------------
def synthetic_batch(spec, batch, seed=0):
    """A fixed random batch shaped like the runner's input (values like a normalised image)."""
    shape = list(spec.shape)
    if shape and shape[0] is None:
        shape[0] = batch
    if any(d is None for d in shape[1:]):
        raise EdgeAlexError(f"input {spec.name}", f"has dynamic non-batch dimensions {spec.shape}",
                            "export the model with a fixed input size")
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(rng.standard_normal(shape).astype(spec.dtype))


def measure(runner, x, warmup_s=2.0, warmup_iters=None, duration_s=10.0, iterations=None, meter=None,
            progress=None, on_measuring=None):
    """Warm up, then time ``runner.infer(x)`` for a fixed duration or iteration count.

    Args:
        runner (Runner): an active runner.
        x (np.ndarray): the input batch (reused every iteration).
        warmup_s (float): warm-up seconds (ignored when ``warmup_iters`` is set).
        warmup_iters (int): warm-up iterations.
        duration_s (float): measured seconds (ignored when ``iterations`` is set).
        iterations (int): measured iterations.
        meter (PowerMeter): sampled right at the window edges, so energy needs no extrapolation.
        progress (Progress): display (its own thread reads the iteration count).
        on_measuring (callable): called just before the measured window (status update).

    Returns:
        Measurement: start/end of every iteration.
    """
    infer = runner.infer
    clock = time.perf_counter
    infer(x, check_inputs=True)  # one checked call: shape/dtype errors surface here, not in the loop
    n_warm = 1
    w0 = clock()
    if warmup_iters is not None:
        for _ in range(max(0, warmup_iters - 1)):
            infer(x, check_inputs=False)
        n_warm = max(1, warmup_iters)
    else:
        deadline = w0 + warmup_s
        while clock() < deadline:
            infer(x, check_inputs=False)
            n_warm += 1
    warm_time = clock() - w0
    starts, ends = [], []
    if progress is not None:
        progress.counter = starts
        progress.measuring()
    if on_measuring is not None:
        on_measuring()
    if meter is not None:
        meter.sample_now()
    s_append, e_append = starts.append, ends.append
    if iterations is not None:
        for _ in range(iterations):
            s = clock()
            infer(x, check_inputs=False)
            e = clock()
            s_append(s)
            e_append(e)
    else:
        deadline = clock() + duration_s
        e = 0.0
        while e < deadline:
            s = clock()
            infer(x, check_inputs=False)
            e = clock()
            s_append(s)
            e_append(e)
    if meter is not None:
        meter.sample_now()
    return Measurement(np.asarray(starts), np.asarray(ends), int(x.shape[0]), n_warm, warm_time)


# -- subjects ---------------------------------------------------------------------------------------
def engine_info(path, runner=None):
    """Engine section of a result: path, backend, precision, device, target and the sidecar."""
    path = str(path)
    info = {"path": os.path.abspath(path), "name": os.path.basename(path), "backend": None, "precision": None,
            "device": None, "target": None, "sidecar": None, "sidecar_error": None}
    try:
        from edgealex.engine import read_record

        record = read_record(path)
        info["sidecar"] = record.to_dict()
        info.update(backend=record.backend, precision=record.precision, device=record.device, target=record.target)
    except EdgeAlexError as exc:
        info["sidecar_error"] = exc.what
        suffix = os.path.splitext(path)[1].lower()
        info["backend"] = "ort" if suffix == ".onnx" else "tensorrt"
        info["device"] = "cpu" if suffix == ".onnx" else "gpu"
        info["precision"] = _guess_precision(path)
    if runner is not None and hasattr(runner, "describe"):
        try:
            info["runner"] = runner.describe()
        except Exception as exc:  # describe() is informational only
            info["runner"] = {"error": str(exc)}
    return info


def _guess_precision(path):
    """Precision of a plain ONNX: INT8 when it holds QuantizeLinear nodes (cheap byte scan)."""
    if not path.lower().endswith(".onnx"):
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 22)
    except OSError:
        return None
    return "int8" if b"QuantizeLinear" in head else "fp32"


def engine_label(info):
    parts = [os.path.splitext(info["name"])[0]]
    return "-".join(p for p in parts if p)


def engine_subjects(engines, runner_options):
    from edgealex.runtime.registry import load_runner

    subjects = []
    for path in engines:
        path = str(path)
        info = engine_info(path)

        def factory(batch, _path=path):
            return load_runner(_path, **runner_options)

        subjects.append(Subject(engine_label(info), factory, info, "engine"))
    return subjects


def baseline_subjects(options, engines, model_info, engine=None):
    """Baselines for compare mode, and (name, reason) for those that cannot run here.

    ``engine`` (the first engine's result section, with its sidecar) is what ``--torch-weights`` is
    checked against: weights that are provably another model are warned about once and noted in
    the baselines' ``engine`` section (``weights_mismatch``)."""
    from edgealex._optional import available
    from edgealex._sides import workstation_python_problem
    from edgealex.bench.baselines import BASELINES, BareOrtRunner, TorchRunner, check_baseline_names, torch_model_fn

    names = list(options.baselines or ())
    auto = names in (["auto"], [])
    if names == ["none"]:
        return [], []
    wanted = list(BASELINES) if auto else check_baseline_names(names)
    subjects, skipped = [], []
    onnx = options.onnx
    if onnx is None:
        for path in engines:
            if str(path).lower().endswith(".onnx") and _guess_precision(str(path)) == "fp32":
                onnx = str(path)
                break
    shape = tuple([None] + list(model_info.input_shape[1:])) if model_info is not None else None
    for name in wanted:
        if name == "ort":
            if onnx is None:
                skipped.append((name, "no FP32 ONNX to run bare (pass --onnx model.onnx)"))
                continue
            if not available("onnxruntime"):
                skipped.append((name, "onnxruntime is not installed"))
                continue
            info = {"path": os.path.abspath(onnx), "name": os.path.basename(onnx), "backend": "ort-bare",
                    "precision": "fp32", "device": "cpu", "target": None, "sidecar": None,
                    "note": "onnxruntime.InferenceSession(path) with default options"}
            subjects.append(Subject("onnxruntime-bare-fp32", lambda b, _p=onnx: BareOrtRunner(_p), info, "baseline"))
            continue
        problem = workstation_python_problem()
        if problem is not None:  # the PyTorch models are workstation code (edgealex._sides)
            skipped.append((name, "PyTorch (workstation code) " + problem))
            continue
        if not available("torch"):
            skipped.append((name, "PyTorch is not installed (pip install 'edgealex[export]')"))
            continue
        if model_info is None:
            skipped.append((name, "the model architecture is unknown (no edgealex metadata in the engine)"))
            continue
        fn, note, mismatch = torch_model_fn(model_info, options.torch_weights, options.seed, engine=engine)
        if mismatch:
            mismatch = f"--torch-weights {options.torch_weights} is not the engine's model: {mismatch}"
            if options.torch_reference:  # asked for: the baseline is the reference model (demo --compact)
                note += "; the reference model, not the engine's"
            else:
                if name == "torch" or "torch" not in wanted:  # said once for both PyTorch baselines
                    logger.warning("%s; its accuracy and agreement are not the engine's", mismatch)
                note += "; NOT the engine's model"
        int8 = name == "torch-int8"
        threads = options.runner_options.get("intra_op_num_threads")
        info = {"path": os.path.abspath(options.torch_weights) if options.torch_weights else None,
                "name": "pytorch-" + ("int8-dynamic" if int8 else "eager-fp32"),
                "backend": "pytorch", "precision": "int8-dynamic" if int8 else "fp32", "device": "cpu",
                "target": None, "sidecar": None, "note": note + ("; torch.ao.quantization.quantize_dynamic on Linear"
                                                                  if int8 else "; eager mode"),
                "weights_mismatch": mismatch}
        subjects.append(Subject(info["name"], lambda b, _fn=fn, _i=int8, _t=threads: TorchRunner(
            _fn, shape, int8_dynamic=_i, threads=_t), info, "baseline"))
    return subjects, skipped


# -- power ------------------------------------------------------------------------------------------
def integrate(trace, t0, t1):
    if trace.t_s.size == 0:
        return None
    if trace.kind == "energy":
        return E.integrate_counter(trace.t_s, trace.value, t0, t1, trace.max_range_j)
    return E.integrate_power(trace.t_s, trace.value, t0, t1)


def power_section(meter, trace, window, frames, idle):
    """The ``power`` section of a result: energy over exactly the window, gross and net of idle.

    Args:
        meter (PowerMeter): the session's meter.
        trace (Trace): its samples.
        window (tuple): (t0, t1) on the perf_counter clock.
        frames (int): images processed in the window.
        idle (dict): {"power_w", "t0", "t1", ...} or None.

    Returns:
        dict: ``available`` False with ``reason`` and ``display`` "n/a (reason)" when nothing was
        measured; otherwise the figures of :func:`edgealex.bench.energy.per_frame`.
    """
    desc = meter.describe()
    t0, t1 = window
    rel_idle = None
    if idle is not None:
        rel_idle = {"power_w": idle.get("power_w"), "start_s": idle["t0"] - t0, "end_s": idle["t1"] - t0,
                    "samples": idle.get("samples"), "reason": idle.get("reason")}
    if not meter.available:
        reason = getattr(meter, "reason", "no meter")
        return {"available": False, "reason": reason, "display": f"n/a ({reason})", "meter": desc}
    win = integrate(trace, t0, t1)
    if win is None:
        reason = "the meter produced no samples around the measured window"
        if meter.notes:
            reason += " (" + "; ".join(meter.notes[-1:]) + ")"
        return {"available": False, "reason": reason, "display": f"n/a ({reason})", "meter": desc,
                "idle": rel_idle}
    out = {"available": True, "reason": None, "meter": desc}
    out.update(E.per_frame(win, frames, idle.get("power_w") if idle else None))
    out["window"] = {"start_s": 0.0, "end_s": t1 - t0}
    out["idle"] = rel_idle
    if win["extrapolated_s"] > 0:
        out["warning"] = "{:.3f} s of the window lie outside the samples; power held at the nearest sample".format(
            win["extrapolated_s"])
    out["display"] = "{:.2f} W, {:.1f} mJ/frame".format(out["avg_power_w"], out["mj_per_frame_gross"] or float("nan"))
    return out


def measure_idle(meter, idle_s):
    """Sleep ``idle_s`` with the meter running; the idle baseline over exactly that window."""
    if idle_s <= 0:
        return None
    if not meter.available:
        return {"power_w": None, "t0": 0.0, "t1": 0.0, "samples": 0,
                "reason": "not measured: " + getattr(meter, "reason", "no meter")}
    logger.info("idle baseline: %.1f s with the benchmark process sleeping", idle_s)
    meter.sample_now()
    t0 = time.perf_counter()
    time.sleep(idle_s)
    t1 = time.perf_counter()
    meter.sample_now()
    return {"t0": t0, "t1": t1, "power_w": None, "samples": None, "reason": None}


def finish_idle(idle, trace):
    """Fill in the idle power once the samples exist (post-hoc meters: after the session)."""
    if idle is None or idle.get("power_w") is not None or idle.get("reason"):
        return idle
    win = integrate(trace, idle["t0"], idle["t1"])
    if win is None:
        idle["reason"] = "no power samples in the idle window"
    else:
        idle["power_w"] = win["avg_power_w"]
        idle["samples"] = win["samples_in_window"]
    return idle


# -- loop mode --------------------------------------------------------------------------------------
def measure_loop(runner, options, batch, meter, progress, on_measuring):
    """Warm the engine, then run the camera loop for the window.

    Per frame (from ``run_loop``'s ``on_frame``): the stage latencies, the inference time, and the
    end-to-end time from the frame's capture to the end of its sinks.
    """
    from edgealex.camera.source import open_source
    from edgealex.pipeline.loop import STAGES, run_loop

    x = synthetic_batch(runner.input_spec, batch, options.seed)
    warm = measure(runner, x, warmup_s=options.warmup_s, warmup_iters=options.warmup_iters, duration_s=None,
                   iterations=1)
    source = open_source(options.source)
    rows = []
    clock_offset = time.time() - time.perf_counter()

    def on_frame(result):
        end = time.perf_counter()
        lat = result.latency_ms
        start = result.timestamp - clock_offset - lat.get("capture", 0.0) / 1e3
        rows.append((start, end, [lat.get(stage, float("nan")) for stage in STAGES]))

    if progress is not None:
        progress.counter = rows
        progress.measuring()
    if on_measuring is not None:
        on_measuring()
    meter.sample_now()
    t0 = time.perf_counter()
    summary = run_loop(runner, source, model_info=getattr(runner, "model_info", None),
                       duration_s=None if options.iterations else options.duration_s,
                       max_frames=options.iterations * batch if options.iterations else None, batch=batch,
                       on_frame=on_frame, warmup=0)
    t1 = time.perf_counter()
    meter.sample_now()
    data = summary.to_dict() if hasattr(summary, "to_dict") else dict(summary)
    starts = np.asarray([r[0] for r in rows], dtype=np.float64)
    ends = np.asarray([r[1] for r in rows], dtype=np.float64)
    stages = np.asarray([r[2] for r in rows], dtype=np.float64).reshape(len(rows), len(STAGES))
    m = Measurement(starts, ends, batch, warm.warmup_iterations, warm.warmup_s, loop=data,
                    frames_override=int(data.get("frames", len(rows))), window_override=(t0, t1))
    m.stage_columns = {name + "Ms": stages[:, i] for i, name in enumerate(STAGES)}
    return m


# -- the session ------------------------------------------------------------------------------------
def _resolve_target(name):
    try:
        from edgealex.target import resolve_target
    except ImportError:
        return None
    if name:
        return resolve_target(name)
    try:
        return resolve_target(None)
    except EdgeAlexError as exc:
        logger.warning("no target detected (%s); power rails use defaults", exc.what)
        return None


def _run_id(options, subject, batch, stamp, out_dir):
    stem = "{}{}-{}-b{}-{}".format(options.label + "-" if options.label else "", subject.label, options.mode, batch,
                                   stamp)
    return unique_run_id(out_dir, stem)


def _check_batches(name, static, requested):
    if static is not None:
        bad = [b for b in requested if b != static]
        if bad:
            raise EdgeAlexError(name, "the engine has a static batch of {} but --batch asks for {}".format(
                static, ",".join(map(str, requested))),
                "export with --dynamic-batch (ONNX Runtime) or build one engine per batch size")


def _static_batch_of(info):
    """The static batch an engine's sidecar (or its ONNX metadata) records; None if dynamic/unknown."""
    shape = (info.get("sidecar") or {}).get("input_shape")
    if shape and isinstance(shape[0], int) and shape[0] > 0:
        return shape[0]
    model = _model_info_of(info["path"]) if info.get("path") and not info.get("sidecar") else None
    return model.batch if model is not None else None


def _batches_for(runner, requested):
    static = runner.batch_size
    if not requested:
        return [static or 1]
    _check_batches(runner.name, static, requested)
    return list(requested)


def run_bench(engines, options, out_dir, skipped=None):
    """Benchmark engines (and baselines in compare mode); write one result per (subject, batch).

    Args:
        engines (List[str]): engine or ONNX files.
        options (BenchOptions): the protocol.
        out_dir (str): results folder.
        skipped (list): (configuration, reason) pairs decided before (``--matrix``), reported.

    Returns:
        BenchSession: result dicts, their paths, skipped baselines with reasons, the meter.

    Raises:
        EdgeAlexError: bad options, an engine that does not load; the failing run's JSON is marked
            "failed" with the error before the exception propagates.
    """
    from edgealex.bench.environment import collect
    from edgealex.bench.power import open_meter

    options.check()
    if not engines:
        raise EdgeAlexError("edgealex bench", "no engine given", "pass an engine or ONNX file (or --matrix)")
    from edgealex.modelinfo import refuse_pytorch_checkpoint

    for path in engines:
        check_input_file(path, "engine", "build it with `edgealex build`")
        refuse_pytorch_checkpoint(path, "an ONNX model or an engine")  # before the idle window, not after
    subjects = engine_subjects(engines, options.runner_options)
    for subject in subjects:  # a batch outside an engine's profile is refused before anything runs
        if options.batches and subject.engine.get("sidecar"):
            record = EngineRecord.from_dict(subject.engine["sidecar"], source=subject.engine["path"] + ".json")
            for b in options.batches:
                check_batch(record, b)
    out_dir = ensure_dir(out_dir, "results folder")
    target = _resolve_target(options.target)
    session = BenchSession(out_dir)
    session.skipped = list(skipped or [])
    if options.mode == "compare":
        model_info = _model_info_of(engines[0])
        extra, skipped = baseline_subjects(options, engines, model_info, subjects[0].engine)
        subjects += extra
        session.skipped += skipped
        for name, reason in skipped:
            logger.info("baseline %s skipped: %s", name, reason)
    if options.batches:  # plain ONNX files (no sidecar for check_batch above): refused before the idle window too
        for subject in subjects:
            if not subject.engine.get("sidecar"):
                _check_batches(subject.engine["path"], _static_batch_of(subject.engine), options.batches)
    eval_set = None
    if options.eval_images and options.mode != "loop":  # read up front: a bad folder fails before any measuring
        from edgealex.bench.evaluation import load_eval_set

        eval_set = load_eval_set(options.eval_images, _model_info_of(engines[0]))
        logger.info("accuracy and agreement on %d labelled images from %s", eval_set.count, eval_set.source)
    meter = open_meter(options.power, target=target, root=options.sysfs_root, interval_s=options.power_interval_s,
                       offset_s=options.meter_offset_s)
    if not meter.available:
        logger.info("power: n/a (%s)", meter.reason)
    else:
        logger.info("power: %s, %s", meter.name, meter.total)
    env = collect(target, root=options.sysfs_root)
    stamp = session_stamp()
    config = asdict(options)
    config.pop("progress", None)
    records = []  # (record, measurement, subject)
    meter.start()
    clock_offset = time.time() - time.perf_counter()
    session_t0 = time.perf_counter()
    try:
        idle = measure_idle(meter, options.idle_s)
        if meter.live:
            finish_idle(idle, meter.trace())
        for subject in subjects:
            runner = subject.factory(None)
            with runner:
                batches = _batches_for(runner, options.batches) if subject.kind == "engine" or options.batches else \
                    [records[0][1].batch if records else 1]
                for batch in batches:
                    rec = RunRecord(out_dir, _run_id(options, subject, batch, stamp, out_dir), {
                        "label": subject.label, "mode": options.mode, "kind": subject.kind, "batch": batch,
                        "session": {"stamp": stamp, "index": len(records)},
                        "engine": engine_info(subject.engine["path"], runner) if subject.kind == "engine"
                        else dict(subject.engine),
                        "config": config, "environment": env, "power": {"meter": meter.describe()}})
                    rec.set_status("started")
                    try:
                        m = _measure_subject(runner, options, batch, meter, rec, subject)
                        _finish_record(rec, m, meter, idle, session_t0, clock_offset, final=meter.live)
                        rec.data["accuracy"] = _accuracy(runner, rec, m, records, batch, eval_set)
                        rec.write()
                    except BaseException as exc:
                        rec.fail(exc)
                        raise
                    records.append((rec, m, subject))
                    _log_run(rec.data)
    finally:
        meter.stop()
    idle = finish_idle(idle, meter.trace()) if idle is not None else None
    if not meter.live:  # post-hoc meter log: energy now that the log has been read
        for rec, m, _ in records:
            _power_into(rec, m, meter, idle, session_t0, clock_offset)
            rec.write()
    if options.mode == "compare":
        _add_ratios([r for r, _, _ in records])
    for rec, _, _ in records:
        rec.data["environment"]["loadavg_end"] = _loadavg()
        rec.write()
        session.results.append(rec.data)
        session.paths.append(rec.path)
    session.power = meter.describe()
    return session


def _loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _model_info_of(path):
    try:
        from edgealex.engine import read_record
        from edgealex.modelinfo import ModelInfo

        return ModelInfo.from_dict(read_record(path).model)
    except EdgeAlexError:
        pass
    if str(path).lower().endswith(".onnx"):
        try:
            from edgealex.modelinfo import read_model_info

            return read_model_info(str(path), allow_default=False)
        except Exception as exc:  # no metadata / no onnx package: baselines say why they are skipped
            logger.debug("no model info in %s: %s", path, exc)
    return None


def _measure_subject(runner, options, batch, meter, rec, subject):
    total_iters = options.iterations
    progress = Progress(f"{subject.label} b{batch}", total_s=options.duration_s, total_iters=total_iters,
                        enabled=options.progress)

    def on_measuring():
        rec.set_status("measuring")

    progress.start([])
    try:
        if options.mode == "loop":
            return measure_loop(runner, options, batch, meter, progress, on_measuring)
        x = synthetic_batch(runner.input_spec, batch, options.seed)
        return measure(runner, x, warmup_s=options.warmup_s, warmup_iters=options.warmup_iters,
                       duration_s=options.duration_s, iterations=options.iterations, meter=meter, progress=progress,
                       on_measuring=on_measuring)
    finally:
        progress.stop()


def _finish_record(rec, m, meter, idle, session_t0, clock_offset, final):
    t0, t1 = m.window
    extra = None
    if m.loop is not None:
        # Per frame: end-to-end (capture start -> sinks done) is the headline latency of the loop;
        # the inference time alone is kept apart (trtexec's latencyMs meaning).
        extra = dict(m.stage_columns)
        infer_ms = extra.get("inferMs", np.zeros(0))
        stats = summarize(m.latencies_ms, m.frames, t1 - t0, m.batch)
        stats["latency_kind"] = "end-to-end per frame: capture start to sinks done"
        stats["engine_latency_ms"] = latency_stats(infer_ms[np.isfinite(infer_ms)])
        stats["throughput"]["pipeline_fps"] = m.loop.get("pipeline_fps")
        stats["throughput"]["engine_fps"] = m.loop.get("engine_fps")
        rec.data["loop"] = m.loop
    else:
        stats = summarize(m.latencies_ms, m.frames, t1 - t0, m.batch)
        stats["latency_kind"] = "one synchronous inference (trtexec latencyMs)"
    stats["throughput"]["warmup_iterations"] = m.warmup_iterations
    stats["throughput"]["warmup_s"] = m.warmup_s
    rec.data.update(stats)
    if m.starts.size and m.ends.size:
        write_trace_csv(rec.file_path("trace", "trace.csv"), m.starts, m.ends, m.batch, t0, extra=extra,
                        latency_ms=extra.get("inferMs") if extra else None,
                        latency_name="endToEndMs" if extra else None)
    if final:
        _power_into(rec, m, meter, idle, session_t0, clock_offset)
    else:
        rec.data["power"] = {"available": None, "pending": "energy is computed from the meter log when the session ends",
                             "meter": meter.describe()}
    rec.set_status("finished")


def _power_into(rec, m, meter, idle, session_t0, clock_offset):
    """The power section and the power CSV (samples from the idle window to just after the run)."""
    from edgealex.bench.power.base import Trace

    t0, t1 = m.window
    trace = meter.trace()
    rec.data["power"] = power_section(meter, trace, (t0, t1), m.frames, idle)
    if meter.available and trace.t_s.size:
        lo = idle["t0"] if idle and idle.get("t0") else session_t0
        keep = (trace.t_s >= min(lo, t0) - 1.0) & (trace.t_s <= t1 + 1.0)
        part = Trace(trace.kind, trace.t_s[keep], trace.value[keep], {k: v[keep] for k, v in trace.rails.items()},
                     trace.max_range_j)
        write_power_csv(rec.file_path("power", "power.csv"), part, t0, clock_offset)


def _first_with_batch(records, batch):
    for rec, m, _ in records:
        if rec.data.get("batch") == batch:
            return rec
    return None


def _accuracy(runner, rec, m, records, batch, eval_set):
    """The ``accuracy`` section: from the labelled ``--eval-images`` (engine and compare modes), from
    the source's ground truth (loop mode), else "not measured"."""
    from edgealex.bench.evaluation import accuracy_record, not_measured_record, predict

    if m.loop is not None:
        acc = m.loop.get("accuracy") or {}
        if acc.get("top1") is None:
            return {"measured": False, "reason": "not measured: the frame source has no ground truth"}
        return {"measured": True, "source": "ground truth of the frame source ({})".format(
            (m.loop.get("source") or {}).get("uri", "?")), "frames": acc.get("top1_frames"),
            "images": acc.get("distinct_images"), "top1_accuracy": acc.get("top1")}
    if eval_set is None:
        return not_measured_record()
    # a dynamic-batch subject (the PyTorch baselines) evaluates 32 images per call: same predictions,
    # a fraction of the time (batch 1 rereads all of AlexNet's weights per image)
    eval_batch = batch if getattr(runner, "batch_size", None) is not None else max(batch, EVAL_BATCH)
    predicted = predict(runner, eval_set, eval_batch)
    first = _first_with_batch(records, batch)
    reference = None
    if first is not None and (first.data.get("accuracy") or {}).get("predicted") is not None:
        reference = np.asarray(first.data["accuracy"]["predicted"])
    return accuracy_record(predicted, eval_set, reference, first.run_id if reference is not None else None)


def _add_ratios(recs):
    """Ratios to the first subject measured at the same batch size."""
    for rec in recs:
        d = rec.data
        first = next(r.data for r in recs if r.data.get("batch") == d.get("batch"))
        fps, f_fps = (d.get("throughput") or {}).get("fps"), (first.get("throughput") or {}).get("fps")
        p50, f_p50 = (d.get("latency_ms") or {}).get("p50_ms"), (first.get("latency_ms") or {}).get("p50_ms")
        mj, f_mj = (d.get("power") or {}).get("mj_per_frame_gross"), (first.get("power") or {}).get("mj_per_frame_gross")
        d["compare"] = {
            "baseline_run": first["run_id"],
            "fps_ratio": fps / f_fps if fps and f_fps else None,
            "p50_ratio": p50 / f_p50 if p50 and f_p50 else None,
            "mj_per_frame_ratio": mj / f_mj if mj and f_mj else None,
        }


def _log_run(d):
    thr = d.get("throughput") or {}
    lat = d.get("latency_ms") or {}
    pw = d.get("power") or {}
    shown = pw.get("display", "pending") if pw.get("available") is not False else "n/a"
    logger.info("%s b%s: %.1f fps, p50 %.2f ms, p99 %.2f ms, power %s", d.get("label"), d.get("batch"),
                thr.get("fps") or 0.0, lat.get("p50_ms") or float("nan"), lat.get("p99_ms") or float("nan"), shown)


def accuracy_text(d):
    """One result's accuracy as the report's table shows it (:func:`edgealex.report.data.accuracy`):
    "97.0% of 200 img", "98.8% of 240 frames (240 distinct images)", the calibration holdout's
    figure for an INT8 engine built from one, or "not measured"."""
    from edgealex.report.data import accuracy

    return accuracy(d)[0]


def summary_lines(session):
    """A one-screen summary table of a session.

    fps is what the subject delivered (loop rows: frames through the whole pipeline); engine fps is
    inference alone (the same as fps outside loop mode). Latency is one synchronous inference
    ("infer"), except loop rows ("e2e"): capture start to sinks done per frame.
    """
    from edgealex.bench.energy import NET_BELOW_IDLE_REASON, format_net_mj, net_below_idle
    from edgealex.bench.stats import format_ms

    head = "{:<40} {:>5} {:>8} {:>8} {:>8} {:>8} {:>5} {:>7} {:>9} {:>10} {:>7}  {}"
    lines = [head.format("run", "batch", "fps", "eng fps", "p50 ms", "p99 ms", "lat", "W", "mJ/frame", "net mJ/f",
                         "x first", "accuracy")]
    for d in session.results:
        thr, lat, pw = d.get("throughput") or {}, d.get("latency_ms") or {}, d.get("power") or {}
        ratio = (d.get("compare") or {}).get("fps_ratio")
        loop = d.get("mode") == "loop"
        engine_fps = thr.get("engine_fps") if loop else thr.get("fps")
        lines.append(head.format(
            d.get("label", "?")[:40], d.get("batch"), format_ms(thr.get("fps"), 1), format_ms(engine_fps, 1),
            format_ms(lat.get("p50_ms")), format_ms(lat.get("p99_ms")), "e2e" if loop else "infer",
            format_ms(pw.get("avg_power_w")), format_ms(pw.get("mj_per_frame_gross"), 1),
            format_net_mj(pw.get("mj_per_frame_net"), 1), format_ms(ratio), accuracy_text(d)))
    if any(net_below_idle((d.get("power") or {}).get("mj_per_frame_net")) for d in session.results):
        lines.append(NET_BELOW_IDLE_REASON)
    power = session.power or {}
    if session.results and not (session.results[0].get("power") or {}).get("available"):
        lines.append("power: " + (session.results[0].get("power") or {}).get("display", "n/a"))
    elif power:
        lines.append("power: {} - {} ({} samples, {} Hz)".format(power.get("meter"), power.get("total"),
                                                                 power.get("samples"),
                                                                 format_ms(power.get("achieved_rate_hz"), 1)))
    for name, reason in session.skipped:
        lines.append(f"skipped {name}: {reason}")
    lines.append("results: " + session.out_dir)
    return lines
