"""``edgealex selftest``: one command that exercises every device path a board supports and leaves one
shareable bundle.

Steps, in order (a failed step does not stop the later ones that do not depend on it):

1. ``doctor`` - every environment check (``doctor.json``);
2. ``build <precision>[ dla<N>]`` - every precision the target allows (INT8 only with ``calib``; INT8
   is skipped on a board without fast INT8, e.g. the Nano), then each DLA core where the board has
   one (FP16, and INT8 with ``calib``) - engines in ``engines/``;
3. ``run`` - the camera-to-verdict loop on ``source`` (default: the synthetic conveyor) for
   ``seconds`` with every sink that works headless (JSONL verdicts, annotated video, null; a window
   when ``$DISPLAY`` is set; more with ``sinks``) - in ``run/``;
4. ``bench`` - every engine built, with the best power reader bench's ``auto`` finds and an idle
   window first - results in ``bench/``;
5. ``report`` - Markdown + HTML from those results - in ``report/``.

Everything goes into ``selftest-<board>-<UTC date>/`` with ``selftest.json`` / ``selftest.md`` (the
pass/fail/skip of each step, with the reason of every skip and failure) and a ``.tar.gz`` of the
folder next to it, for bug reports. On this CPU machine the path is ONNX Runtime end to end; with
TensorRT present the TensorRT builders and runtimes are used (``edgealex.build.api``).
"""

import datetime
import os
import re
import signal
import tarfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import List, Optional

from edgealex.artifacts import atomic_path, check_input_file, ensure_dir, environment_summary, write_json_atomic, write_text_atomic
from edgealex.errors import EdgeAlexError
from edgealex.log import logger

STATUSES = ("pass", "fail", "skip")
DEFAULT_SECONDS = 10.0
DEFAULT_BENCH_SECONDS = 5.0
DEFAULT_IDLE_SECONDS = 5.0


@dataclass
class Step:
    """One step of the self-test.

    Args:
        name (str): e.g. "doctor", "build fp16", "build fp16 dla0", "run", "bench", "report".
        status (str): "pass", "fail" or "skip".
        detail (str): what happened (figures for a pass, the reason for a skip or failure).
        seconds (float): wall time of the step.
        outputs (list): files it wrote, relative to the bundle.
    """

    name: str
    status: str
    detail: str = ""
    seconds: float = 0.0
    outputs: List[str] = field(default_factory=list)

    def to_dict(self):
        return asdict(self)


@dataclass
class SelftestResult:
    """The bundle folder, its archive and every step."""

    bundle: str
    archive: Optional[str]
    board: str
    steps: List[Step]
    bundle_error: Optional[EdgeAlexError] = None  # writing selftest.json/md or the archive failed


    @property
    def ok(self):
        return self.bundle_error is None and not any(s.status == "fail" for s in self.steps)

    def to_dict(self):
        return {"ok": self.ok, "bundle": self.bundle, "archive": self.archive, "board": self.board,
                "steps": [s.to_dict() for s in self.steps]}

    def format(self):
        lines = []
        for step in self.steps:
            lines.append(f"{step.status.upper():4}  {step.name:<18} {step.detail}")
        verdict = "PASS" if self.ok else "FAIL"
        lines.append(f"selftest {verdict}: {self.bundle}" + (f" (+ {self.archive})" if self.archive else ""))
        return "\n".join(lines)


def _slug(text):
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-").lower() or "board"


def bundle_name(board, when=None):
    """``selftest-<board>-<YYYYmmdd-HHMMSS>`` in UTC."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    return f"selftest-{_slug(board)}-{when.strftime('%Y%m%d-%H%M%S')}"


def build_plan(target, calib=None):
    """(precision, dla core or None, skip reason or None) for every build the target allows.

    Args:
        target (Target): the board's profile.
        calib (str or None): calibration for INT8 builds.

    Returns:
        list[tuple]: in build order (GPU/CPU precisions first, then each DLA core).
    """
    plan = []

    def int8_reason():
        if not target.fast_int8:
            return f"{target.title} has no fast INT8 (build --force-int8 builds it anyway)"
        if calib is None:
            return "INT8 needs --calib (a folder from `edgealex calibrate`, a TensorRT cache or an image folder)"
        return None

    for precision in target.precisions:
        plan.append((precision, None, int8_reason() if precision == "int8" else None))
    for core in range(int(target.dla_cores or 0)):
        for precision in ("fp16", "int8"):
            if precision in target.precisions:
                plan.append((precision, core, int8_reason() if precision == "int8" else None))
    return plan


def default_sinks(run_dir, environ=None, extra=()):
    """(sink URIs, [(sink, skip reason)]) for the run step: every sink that works here without setup.

    JSONL verdicts, annotated video, null, the HTTP live view on a free loopback port, and a window
    when ``$DISPLAY`` is set. MQTT needs a broker and GPIO drives a real pin, so they run only when
    given in ``extra`` (``--sink mqtt://HOST:1883/TOPIC``, ``--sink gpio://PIN``).
    """
    environ = os.environ if environ is None else environ
    extra = list(extra)
    sinks = [os.path.join(run_dir, "verdicts.jsonl"), os.path.join(run_dir, "annotated.mp4"), "null://",
             "http://127.0.0.1:0"]
    skipped = []
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        sinks.append("display://")
    else:
        skipped.append(("display://", "no $DISPLAY (headless)"))
    given = {str(uri).split("://", 1)[0].lower() for uri in extra if "://" in str(uri)}
    if "mqtt" not in given:
        skipped.append(("mqtt://", "needs a broker: pass --sink mqtt://HOST:1883/TOPIC"))
    if "gpio" not in given:
        skipped.append(("gpio://", "drives a real pin: pass --sink gpio://PIN to include it"))
    return sinks + extra, skipped


class _Steps:
    def __init__(self, bundle):
        self.bundle = bundle
        self.steps = []

    def rel(self, path):
        return os.path.relpath(str(path), self.bundle)

    def run(self, name, func):
        """Run ``func() -> (status, detail, outputs)``; any error becomes a failed step with its reason."""
        logger.info("selftest: %s", name)
        start = time.perf_counter()
        try:
            status, detail, outputs = func()
        except EdgeAlexError as err:
            status, detail, outputs = "fail", err.format().replace("\n", " "), []
        except KeyboardInterrupt:
            self.steps.append(Step(name, "fail", "interrupted", round(time.perf_counter() - start, 2)))
            raise
        except Exception as exc:  # a bug: keep the traceback in the bundle
            tb = os.path.join(self.bundle, _slug(name) + "-traceback.txt")
            write_text_atomic(tb, traceback.format_exc())
            status, detail, outputs = "fail", f"{type(exc).__name__}: {exc}", [tb]
        step = Step(name, status, detail, round(time.perf_counter() - start, 2), [self.rel(p) for p in outputs])
        self.steps.append(step)
        return step

    def skip(self, name, reason):
        self.steps.append(Step(name, "skip", reason))


def _check_inputs(model, source, calib, tgt, sinks=()):
    """Refuse a source, extra sink or ``--calib`` that can never work before anything is built
    (building every precision takes minutes on a Nano; a typo must not cost that)."""
    from edgealex.camera.sink import open_sink
    from edgealex.camera.source import check_source

    check_source(source)
    for uri in sinks:
        open_sink(uri)  # not opened: the scheme and its settings (e.g. the GPIO pin) are checked
    if calib is not None and any(p == "int8" and not reason for p, _, reason in build_plan(tgt, calib)):
        from edgealex.artifacts import sha256_file
        from edgealex.build.calibinput import read_calib_arg

        read_calib_arg(calib, sha256_file(model))


def run_selftest(model, out_dir=".", source="synthetic://", seconds=DEFAULT_SECONDS, calib=None, target=None,
                 bench_seconds=DEFAULT_BENCH_SECONDS, idle_s=DEFAULT_IDLE_SECONDS, sinks=(), power="auto",
                 archive=True, when=None):
    """Run the self-test and write the bundle.

    Args:
        model (str): the FP32 ONNX from ``edgealex export`` (labels and preprocessing in its metadata).
        out_dir (str): where the bundle folder and archive go. Defaults to ".".
        source (str): frame source URI for the run step. Defaults to "synthetic://".
        seconds (float): length of the run step, seconds. Defaults to 10.
        calib (str or None): calibration for INT8 (see ``edgealex build --calib``).
        target (str or None): target profile; None detects this machine.
        bench_seconds (float): measured seconds per engine in the bench step. Defaults to 5.
        idle_s (float): idle power window before the bench, seconds. Defaults to 5.
        sinks (sequence): extra sink URIs for the run step (e.g. an MQTT broker).
        power (str): bench power reader. Defaults to "auto" (the best one found).
        archive (bool): also write ``<bundle>.tar.gz``. Defaults to True.
        when (datetime or None): the bundle's UTC timestamp (default: now).

    Returns:
        SelftestResult: bundle path, archive path, steps; ``bundle_error`` when the summary files or
        the archive could not be written (e.g. a full disk) - the caller shows the steps, then raises it.

    Raises:
        EdgeAlexError: the model is missing, the target is unknown, the source can never open (unknown
            scheme or option, missing file), ``calib`` is unreadable or made for another model, or the
            output folder is not writable (before anything is written). Step failures do not raise: they are recorded.
    """
    from edgealex.target import resolve_target

    model = check_input_file(model, "ONNX model", "pass the FP32 ONNX from `edgealex export`",
                             folder_fix="pass the .onnx file itself")
    if seconds <= 0 or bench_seconds <= 0 or idle_s < 0:
        raise EdgeAlexError("--seconds/--bench-seconds/--idle", "must be positive (idle may be 0)",
                            "e.g. --seconds 10 --bench-seconds 5 --idle 5")
    tgt = resolve_target(target)
    _check_inputs(model, source, calib, tgt, sinks)
    ensure_dir(out_dir)
    bundle = os.path.join(os.path.abspath(str(out_dir)), bundle_name(tgt.name, when))
    if os.path.exists(bundle):
        raise EdgeAlexError(bundle, "already exists", "wait a second or pick another --out")
    ensure_dir(bundle, "self-test folder")
    steps = _Steps(bundle)
    started = datetime.datetime.now(datetime.timezone.utc)
    heavy = {}  # path -> why it stays in the folder but not in the archive (size: bug trackers cap uploads)

    def all_steps():
        def doctor_step():
            from edgealex.doctor import doctor

            report = doctor(target=tgt.name if target is None else target)
            path = os.path.join(bundle, "doctor.json")
            write_json_atomic(path, report.to_dict())
            counts = {s: sum(1 for c in report.checks if c.status == s) for s in ("ok", "warn", "fail", "skip")}
            detail = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            if report.failed:
                detail += "; failed: " + "; ".join(f"{c.name}: {c.detail}" for c in report.failed)
            return ("fail" if report.failed else "pass"), detail, [path]

        steps.run("doctor", doctor_step)

        engines = []
        engine_dir = os.path.join(bundle, "engines")
        for precision, core, reason in build_plan(tgt, calib):
            name = f"build {precision}" + (f" dla{core}" if core is not None else "")
            if reason:
                steps.skip(name, reason)
                continue

            def build_step(precision=precision, core=core):
                from edgealex.build.api import build_engine

                result = build_engine(model, target=target, precision=precision, dla_core=core,
                                      calib=calib if precision == "int8" else None, out_dir=engine_dir)
                engines.append(result.engine_path)
                heavy[result.engine_path] = "engine: only runs on this board's TensorRT/device; its sidecar stays"
                if precision == tgt.default_precision and core is None:
                    engines.insert(0, engines.pop())  # run and bench the target's default engine first
                outputs = [p for p in (result.engine_path, result.sidecar_path, result.log_path) if p]
                detail = f"{result.builder} ({result.backend} {result.backend_version}) in {result.seconds:.1f} s"
                if result.warnings:
                    detail += "; " + "; ".join(result.warnings)
                return "pass", detail, outputs

            steps.run(name, build_step)

        run_dir = os.path.join(bundle, "run")
        if not engines:
            steps.skip("run", "no engine was built")
        else:
            def run_step():
                from edgealex.pipeline.loop import run_inspection

                ensure_dir(run_dir)
                uris, skipped = default_sinks(run_dir, extra=sinks)
                heavy[os.path.join(run_dir, "annotated.mp4")] = "annotated video: verdicts.jsonl holds every frame's verdict; its sidecar stays"
                summary = run_inspection(engines[0], source=source, sinks=uris, duration_s=seconds)
                path = os.path.join(run_dir, "summary.json")
                data = summary.to_dict()
                data["sinks"] = uris
                data["sinks_skipped"] = [list(s) for s in skipped]
                write_json_atomic(path, data)
                write_text_atomic(os.path.join(run_dir, "summary.txt"), summary.format() + "\n")
                outputs = [path] + [u for u in uris if "://" not in u and os.path.exists(u)]
                detail = (f"{os.path.basename(engines[0])} on {source} for {seconds:g} s: {summary.frames} frames, "
                          f"{summary.errors} errors")
                detail += "; sinks " + ", ".join(os.path.basename(u) if "://" not in u else u for u in uris)
                if skipped:
                    detail += "; skipped " + ", ".join(f"{s} ({why})" for s, why in skipped)
                if summary.stopped_by == "interrupted":  # the loop ends cleanly on Ctrl-C/SIGTERM; stop here too
                    stop["interrupted"] = True
                    return "fail", "interrupted: " + detail, outputs
                if not summary.frames:  # a loop that never produced a verdict proves nothing
                    return "fail", (f"no frame reached a verdict (stopped by {summary.stopped_by}; --seconds counts "
                                    f"from loading the engine, which can take longer on a big model): "
                                    + detail), outputs
                return "pass", detail, outputs

            stop = {}
            steps.run("run", run_step)
            if stop:
                raise KeyboardInterrupt()

        bench_dir = os.path.join(bundle, "bench")
        bench_paths = []
        if not engines:
            steps.skip("bench", "no engine was built")
        else:
            def bench_step():
                from edgealex.bench.harness import BenchOptions, run_bench

                options = BenchOptions(mode="engine", warmup_s=min(2.0, bench_seconds), duration_s=bench_seconds,
                                       power=power, idle_s=idle_s, target=tgt.name if target is None else target,
                                       baselines=("none",), label="selftest")
                session = run_bench(list(engines), options, bench_dir)
                bench_paths.extend(session.paths)
                power_info = session.power or {}
                if power_info.get("available"):
                    reader = f"{power_info.get('meter')} ({power_info.get('total') or power_info.get('source') or ''})"
                else:
                    reader = "none (" + str(power_info.get("reason") or "no power sensor readable") + ")"
                detail = f"{len(session.paths)} result(s); power reader: {reader}"
                if idle_s:
                    detail += f"; idle window {idle_s:g} s"
                if session.skipped:
                    detail += "; skipped " + ", ".join(f"{n} ({why})" for n, why in session.skipped)
                return ("pass" if session.paths else "fail"), detail, list(session.paths)

            steps.run("bench", bench_step)

        report_dir = os.path.join(bundle, "report")
        from edgealex._optional import available

        if not bench_paths:
            steps.skip("report", "no bench result")
        elif not available("matplotlib"):  # no cp36 aarch64 wheel: the Nano renders reports on the workstation
            steps.skip("report", "matplotlib is not installed (pip install 'edgealex[report]'); on a Jetson Nano "
                                 "render it on the workstation: edgealex report bench/ -o report/")
        else:
            def report_step():
                from edgealex.report import render_report

                result = render_report(bench_paths, report_dir, title=f"edgealex selftest: {tgt.title}")
                return "pass", f"{result.runs} run(s)", [result.html, result.markdown]

            steps.run("report", report_step)


    from edgealex.interrupts import sigterm_as_interrupt

    interrupted = False
    previous = sigterm_as_interrupt()  # a service stop or kill ends the self-test like Ctrl-C
    try:
        all_steps()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    board = tgt.name
    result = SelftestResult(bundle=bundle, archive=None, board=board, steps=steps.steps)
    summary = result.to_dict()
    summary.update({"artifact": "selftest", "interrupted": interrupted, "started_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "model": os.path.abspath(model), "source": source, "seconds": seconds, "calib": calib,
                    "target": tgt.name, "environment": environment_summary()})
    left_out = [{"path": steps.rel(p), "bytes": os.path.getsize(p), "why": why}
                for p, why in sorted(heavy.items()) if os.path.isfile(p)] if archive else []
    summary["left_out_of_archive"] = left_out
    try:
        write_json_atomic(os.path.join(bundle, "selftest.json"), summary)
        write_text_atomic(os.path.join(bundle, "selftest.md"), _markdown(result, summary))
        if archive:
            result.archive = write_archive(bundle, exclude=[os.path.join(bundle, item["path"]) for item in left_out])
    except EdgeAlexError as err:  # e.g. a full disk: the steps' results are still shown, then this error
        result.bundle_error = err
    if interrupted:  # the bundle holds what ran; the caller still sees the interruption
        if result.bundle_error is not None:
            logger.error("%s", result.bundle_error.format())
        logger.warning("selftest interrupted: what ran is in %s", result.archive or bundle)
        raise KeyboardInterrupt()
    return result


def _markdown(result, summary):
    lines = [f"# edgealex selftest: {result.board}", "",
             f"Started {summary['started_utc']}; model `{os.path.basename(summary['model'])}`; source "
             f"`{summary['source']}`; verdict **{'PASS' if result.ok else 'FAIL'}**.", "",
             "| step | status | seconds | detail |", "|---|---|---|---|"]
    for step in result.steps:
        detail = step.detail.replace("|", "\\|")
        lines.append(f"| {step.name} | {step.status} | {step.seconds:.1f} | {detail} |")
    if summary.get("left_out_of_archive"):
        lines.append("")
    for item in summary.get("left_out_of_archive") or []:
        lines.append(f"- `{item['path']}` ({item['bytes'] / 2 ** 20:.1f} MiB) is in the folder but not in the "
                     f".tar.gz ({item['why']})")
    lines += ["", "Attach the `.tar.gz` of this folder to bug reports."]
    return "\n".join(lines) + "\n"


def write_archive(bundle, exclude=()):
    """``<bundle>.tar.gz`` holding the bundle folder (written atomically). Returns its path.

    ``exclude`` names files left out (engines and the annotated video: an AlexNet bundle with them is
    over 200 MB, past what bug trackers accept; GitHub caps attachments at 25 MB,
    docs.github.com/en/get-started/writing-on-github/working-with-advanced-formatting/attaching-files).
    """
    path = bundle.rstrip(os.sep) + ".tar.gz"
    skip = {os.path.abspath(p) for p in exclude}
    root = bundle.rstrip(os.sep)
    arc_root = os.path.basename(root)

    def keep(info):
        rel = os.path.relpath(info.name, arc_root)
        return None if os.path.abspath(os.path.join(root, rel)) in skip else info

    with atomic_path(path, "self-test archive") as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(root, arcname=arc_root, filter=keep)
    return path
