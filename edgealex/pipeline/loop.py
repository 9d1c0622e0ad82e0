"""The camera-to-verdict loop: capture -> preprocess -> infer -> postprocess -> sinks, pipelined.

Three threads::

    capture thread   source.capture() + the model's preprocessing  --> bounded frame queue
    calling thread   batch from the queue, runner.infer, softmax + defect decision --> sink queue
    sink thread      overlay, video/display/JSONL sinks, on_frame callback, statistics

For a live source (camera, stream, paced synthetic) a full frame queue drops its **oldest** frame
(counted as ``dropped``): the line sees the newest part, never a growing backlog. For files and
folders the capture thread waits instead, so nothing is dropped.

Two rates are reported and must not be confused (jetson-inference users' "which FPS is real?"):

- ``pipeline_fps``: frames through the whole loop per wall-clock second (what the line gets);
- ``engine_fps``: frames per second of inference time alone (``runner.last_inference_ms``).

Ctrl-C (KeyboardInterrupt) stops the loop cleanly: every frame already inferred is written to the
sinks, the JSONL log is flushed, sinks and the source are closed, and the summary is returned with
``stopped_by == "interrupted"``.
"""

import collections
import hashlib
import os
import queue
import random
import signal
import sys
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from edgealex.camera.sink import JsonlSink, SinkItem, StopRequested
from edgealex.camera.source import MAX_GAPS_KEPT, EndOfStream
from edgealex.engine import check_batch
from edgealex.errors import EdgeAlexError
from edgealex.validate import check_float
from edgealex.log import logger
from edgealex.pipeline.classify import DEFAULT_THRESHOLD, Classifier

STAGES = ("capture", "preprocess", "queue", "infer", "postprocess", "sink")
DROP_POLICIES = ("oldest", "none")
DEFAULT_QUEUE_SIZE = 4
CAPTURE_TIMEOUT_MS = 100
JOIN_TIMEOUT_S = 10.0
LATENCY_SAMPLES = 100000  # per-frame latencies kept for the percentiles (then a uniform sample)
EVENT_POLL_S = 0.2  # the sink thread copies source events to the sinks at least this often


@dataclass
class FrameResult:
    """The record of one processed frame (one JSONL line).

    Args:
        index (int): frame index in the source.
        timestamp (float): capture time, seconds since the epoch.
        source (str): the URI or file the frame came from.
        top_class (str): top-1 label.
        class_index (int): its index.
        confidence (float): its softmax probability.
        defect (bool): the verdict (defect class with confidence >= threshold).
        defect_class (bool): the top class is a defect class (any confidence).
        truth (str): ground-truth label when the source knows it, else None.
        width (int): frame width.
        height (int): frame height.
        latency_ms (dict): per-stage latency: capture, preprocess, queue, infer, postprocess, sink.
            In the JSONL line, ``sink`` covers the sinks that ran before the JSONL write.
            ``verdict`` is cumulative: from the start of the capture to the verdict (ms).
        batch (int): frames in the inference batch this frame was part of.
    """

    index: int
    timestamp: float
    source: str
    top_class: str
    class_index: int
    confidence: float
    defect: bool
    defect_class: bool
    truth: Optional[str]
    width: int
    height: int
    latency_ms: Dict[str, float] = field(default_factory=dict)
    batch: int = 1

    def to_dict(self):
        data = {"timestamp": round(self.timestamp, 6), "frame": self.index, "source": self.source,
                "top_class": self.top_class, "confidence": round(self.confidence, 6), "defect": self.defect,
                "width": self.width, "height": self.height,
                "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()}}
        if self.truth is not None:
            data["truth"] = self.truth
        if self.batch != 1:
            data["batch"] = self.batch
        return data


def _thread_cpu_s():
    """CPU seconds of the calling thread: ``time.thread_time()`` (3.7+) is this clock on Linux; read it
    directly so the loop runs on Python 3.6. Falls back to process time where there is no thread clock."""
    clock = getattr(time, "CLOCK_THREAD_CPUTIME_ID", None)
    if clock is not None:
        return time.clock_gettime(clock)
    return time.process_time()


def _stats(values):
    if not len(values):
        return {"mean": None, "p50": None, "p99": None}
    data = np.frombuffer(values, dtype=np.float64) if isinstance(values, array) else np.asarray(values, np.float64)
    return {"mean": round(float(data.mean()), 3), "p50": round(float(np.percentile(data, 50)), 3),
            "p99": round(float(np.percentile(data, 99)), 3)}


NO_SINK_WARNING = ("no --sink given: verdicts are counted but not written anywhere (add --sink verdicts.jsonl, "
                   "--sink annotated.mp4 or --sink display://)")
RUN_SUMMARY_ARTIFACT = "edgealex-run-summary"  # marks a saved summary for `edgealex report`


@dataclass
class LoopSummary:
    """What a run did. :meth:`to_dict` for JSON, :meth:`format` for people.

    ``latency_ms`` maps each stage to mean/p50/p99 in ms; ``end_to_end_ms`` runs from the start of a
    frame's capture to the end of its sinks. ``cpu_ms_per_frame`` is the CPU time of each of the
    three threads (capture, inference, sinks) per processed frame: on a CPU backend they share
    the cores with the engine. ``accuracy`` is None unless the source provides ground
    truth (synthetic, class folders). With station sinks (:mod:`edgealex.station`),
    ``delivery_ms`` maps "verdict" (capture start -> verdict) and each such sink ("http", "mqtt",
    "gpio": capture start -> delivered) to mean/p50/p99/count in ms, and ``outputs`` maps each such
    sink's URI to its counters (e.g. MQTT sent/dropped); both are empty otherwise.
    """

    frames: int = 0
    defects: int = 0
    dropped: int = 0
    errors: int = 0
    reconnects: int = 0
    reconnect_gap_s: float = 0.0
    duration_s: float = 0.0
    pipeline_fps: Optional[float] = None
    engine_fps: Optional[float] = None
    batch: int = 1
    drop_policy: str = "none"
    queue_size: int = DEFAULT_QUEUE_SIZE
    latency_ms: Dict[str, dict] = field(default_factory=dict)
    end_to_end_ms: dict = field(default_factory=dict)
    accuracy: Optional[dict] = None
    class_counts: Dict[str, int] = field(default_factory=dict)
    threshold: float = DEFAULT_THRESHOLD
    defect_classes: List[str] = field(default_factory=list)
    stopped_by: str = ""
    source: dict = field(default_factory=dict)
    engine: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    cpu_ms_per_frame: Dict[str, float] = field(default_factory=dict)
    gaps: list = field(default_factory=list)
    # station sinks (edgealex.station, issue 14): capture -> verdict and capture -> each sink's
    # delivery (mean/p50/p99/count, ms), and each such sink's own counters (sent, dropped, ...)
    delivery_ms: Dict[str, dict] = field(default_factory=dict)
    outputs: Dict[str, dict] = field(default_factory=dict)

    @property
    def interrupted(self):
        return self.stopped_by == "interrupted"

    def to_dict(self):
        return {
            "artifact": RUN_SUMMARY_ARTIFACT,
            "frames": self.frames, "defects": self.defects, "dropped": self.dropped, "errors": self.errors,
            "reconnects": self.reconnects, "reconnect_gap_s": round(self.reconnect_gap_s, 3),
            "duration_s": round(self.duration_s, 3),
            "pipeline_fps": _round(self.pipeline_fps), "engine_fps": _round(self.engine_fps),
            "batch": self.batch, "drop_policy": self.drop_policy, "queue_size": self.queue_size,
            "latency_ms": self.latency_ms, "end_to_end_ms": self.end_to_end_ms, "accuracy": self.accuracy,
            "class_counts": self.class_counts, "threshold": self.threshold, "defect_classes": self.defect_classes,
            "stopped_by": self.stopped_by, "interrupted": self.interrupted, "source": self.source,
            "engine": self.engine, "events": self.events, "cpu_ms_per_frame": self.cpu_ms_per_frame,
            "gaps": self.gaps,
            "delivery_ms": self.delivery_ms, "outputs": self.outputs,
        }

    def format(self):
        """A human summary; pipeline and engine-only fps are labelled apart on purpose."""
        src = self.source.get("uri", "?")
        lines = [f"{self.frames} frames from {src} in {self.duration_s:.2f} s (stopped: {self.stopped_by})"]
        lines.append(f"  pipeline fps  {_num(self.pipeline_fps):>8}   frames through the whole loop per wall-clock second")
        lines.append(f"  engine fps    {_num(self.engine_fps):>8}   inference calls alone (engine-only), batch {self.batch}")
        share = f" ({100.0 * self.defects / self.frames:.1f}%)" if self.frames else ""
        lines.append("  defects       {:>8}{}   threshold {:.2f}; defect classes: {}".format(
            self.defects, share, self.threshold, ", ".join(self.defect_classes) or "-"))
        lines.append(f"  dropped {self.dropped} (policy {self.drop_policy}), errors {self.errors}, "
                     f"reconnects {self.reconnects} (gap {self.reconnect_gap_s:.1f} s)")
        for gap in self.gaps[-5:]:
            lines.append("  gap at {} for {:.1f} s: {}".format(
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(gap["start"])), gap["length_s"], gap["reason"]))
        lines.append("  latency ms        mean      p50      p99")
        for stage in STAGES + ("end_to_end",):
            row = self.end_to_end_ms if stage == "end_to_end" else self.latency_ms.get(stage, {})
            lines.append("    {:<12} {:>8} {:>8} {:>8}".format(stage.replace("_", "-"), _num(row.get("mean"), 2),
                                                               _num(row.get("p50"), 2), _num(row.get("p99"), 2)))
        if self.accuracy:
            acc = self.accuracy
            parts = []
            if acc.get("top1") is not None:
                parts.append("top-1 {:.1%} of {}".format(acc["top1"], acc["top1_frames"]))
            det = acc.get("defect_detection") or {}
            if det.get("accuracy") is not None:
                parts.append("defect decision {:.1%} (recall {}, precision {})".format(
                    det["accuracy"], _pct(det.get("recall")), _pct(det.get("precision"))))
            distinct = acc.get("distinct_images")
            if distinct is not None:
                parts.append("{} distinct images among {} frames".format(distinct, acc.get("frames_with_truth")))
            lines.append("  vs ground truth: " + "; ".join(parts))
        lines.extend(_format_station(self.delivery_ms, self.outputs))
        return "\n".join(lines)


def _format_station(delivery_ms, outputs):
    """Summary lines of the station sinks (issue 14): delivery latencies, then their counters."""
    if len(delivery_ms) <= 1 and not outputs:
        return []
    lines = ["  delivery ms       p50      p99   (from the start of capture)"]
    for name, row in delivery_ms.items():
        lines.append("    {:<12} {:>8} {:>8}   {} frames".format(name, _num(row.get("p50"), 2), _num(row.get("p99"), 2),
                                                              row.get("count", 0)))
    for uri, counts in outputs.items():
        lines.append("  {}: {}".format(uri, ", ".join(f"{k} {v}" for k, v in counts.items())))
    return lines


def _round(value, digits=2):
    return None if value is None else round(float(value), digits)


def _num(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value):
    return "-" if value is None else f"{value:.0%}"


# -- queues ------------------------------------------------------------------------------------
class _Item:
    __slots__ = ("frame", "tensor", "preprocess_ms", "enqueued_at")

    def __init__(self, frame, tensor, preprocess_ms, enqueued_at):
        self.frame = frame
        self.tensor = tensor
        self.preprocess_ms = preprocess_ms
        self.enqueued_at = enqueued_at


class _EndMarker:
    pass


class _Failure:
    def __init__(self, exc):
        self.exc = exc


class FrameQueue:
    """Bounded queue between capture and inference.

    Args:
        maxsize (int): capacity in frames.
        drop_oldest (bool): when full, drop the oldest frame (live sources) instead of waiting.
    """

    def __init__(self, maxsize, drop_oldest):
        self.maxsize = int(maxsize)
        self.drop_oldest = bool(drop_oldest)
        self.dropped = 0
        self._items = collections.deque()
        self._cond = threading.Condition()

    def __len__(self):
        return len(self._items)

    def put(self, item, stop_event):
        """Add a frame; False when ``stop_event`` was set while waiting for room."""
        with self._cond:
            while len(self._items) >= self.maxsize:
                if self.drop_oldest:
                    self._items.popleft()
                    self.dropped += 1
                    break
                if stop_event.is_set():
                    return False
                self._cond.wait(0.05)
            self._items.append(item)
            self._cond.notify_all()
            return True

    def put_final(self, marker):
        """End-of-stream or failure marker: never dropped, never waits."""
        with self._cond:
            self._items.append(marker)
            self._cond.notify_all()

    def get_batch(self, max_items, timeout_s):
        """Up to ``max_items`` queued frames (waiting up to ``timeout_s`` for the first); a marker
        comes alone. [] on timeout."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout_s)
            out = []
            while self._items and len(out) < max_items:
                head = self._items[0]
                if not isinstance(head, _Item):
                    if not out:
                        out.append(self._items.popleft())
                    break
                out.append(self._items.popleft())
            if out:
                self._cond.notify_all()
            return out


class _Tally:
    """Statistics gathered by the sink thread (its only writer).

    Per-frame latencies (for the percentiles) are kept for the first ``max_samples`` frames, then
    as a uniform random sample of that size (reservoir sampling, Vitter's algorithm R), so a
    station that runs for weeks holds a bounded amount of memory (56 bytes a frame would be
    ~145 MB a day at 30 fps).
    """

    def __init__(self, classifier, max_samples=LATENCY_SAMPLES):
        self.classifier = classifier
        self.max_samples = int(max_samples)
        self._rng = random.Random(0)
        self.frames = 0
        self.defects = 0
        self.errors = 0
        self.stage = {name: array("d") for name in STAGES}
        self.e2e = array("d")
        self.verdict_ms = array("d")  # capture start -> verdict (station latency, issue 14)
        self.class_counts = collections.Counter()
        self.top1_frames = 0
        self.top1_correct = 0
        self.confusion = collections.Counter()  # (truth defect, verdict defect)
        self.distinct = set()  # content fingerprints of the frames judged against ground truth
        self.engine_ms = 0.0
        self.first_done = None
        self.last_done = None
        self.recent = collections.deque(maxlen=30)

    def add(self, result, e2e_ms, done_at, image=None):
        self.frames += 1
        self.defects += int(result.defect)
        row = [(self.stage[name], result.latency_ms.get(name, 0.0)) for name in STAGES]
        row += [(self.e2e, e2e_ms), (self.verdict_ms, result.latency_ms.get("verdict", 0.0))]
        if len(self.e2e) < self.max_samples:
            for values, value in row:
                values.append(value)
        else:
            slot = self._rng.randrange(self.frames)
            if slot < self.max_samples:
                for values, value in row:
                    values[slot] = value
        self.class_counts[result.top_class] += 1
        if result.truth is not None:
            if result.truth in self.classifier.labels:
                self.top1_frames += 1
                self.top1_correct += int(result.truth == result.top_class)
            self.confusion[(self.classifier.truth_is_defect(result.truth), result.defect)] += 1
            if image is not None:
                self.distinct.add(image_fingerprint(image))
        self.first_done = self.first_done or done_at
        self.last_done = done_at
        self.recent.append(done_at)

    def live_fps(self):
        if len(self.recent) < 2 or self.recent[-1] <= self.recent[0]:
            return None
        return (len(self.recent) - 1) / (self.recent[-1] - self.recent[0])

    def accuracy(self):
        judged = sum(self.confusion.values())
        if not judged:
            return None
        tp, fn = self.confusion[(True, True)], self.confusion[(True, False)]
        fp, tn = self.confusion[(False, True)], self.confusion[(False, False)]
        return {
            "frames_with_truth": judged,
            "distinct_images": len(self.distinct) if self.distinct else None,
            "top1": (self.top1_correct / self.top1_frames) if self.top1_frames else None,
            "top1_frames": self.top1_frames,
            "defect_detection": {
                "accuracy": (tp + tn) / judged, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
                "recall": tp / (tp + fn) if tp + fn else None,
                "precision": tp / (tp + fp) if tp + fp else None,
            },
        }


def image_fingerprint(image):
    """A 64-bit content fingerprint of a frame (blake2b of every 8th pixel of every 8th row).

    Counts distinct images behind an accuracy figure: a source that repeats frames (a looped
    clip, a small pool) judges fewer distinct images than frames. Two frames that differ only
    between the sampled pixels count once, so the count errs low, never high. Runs on the sink
    thread for every frame with ground truth: ~0.08 ms for 1280x720 on the 2-vCPU AMD EPYC (the
    every-4th sampling took 0.30-0.36 ms there, 15% of a 2 ms INT8 frame).

    Args:
        image (np.ndarray): HxWxC uint8.

    Returns:
        bytes: 8-byte digest.
    """
    sample = np.ascontiguousarray(np.asarray(image)[::8, ::8])
    return hashlib.blake2b(sample.tobytes(), digest_size=8).digest()


# -- the loop ------------------------------------------------------------------------------------
def run_loop(runner, source, sinks=(), model_info=None, threshold=DEFAULT_THRESHOLD, defect_classes=None,
             duration_s=None, max_frames=None, batch=1, queue_size=DEFAULT_QUEUE_SIZE, drop_policy=None,
             on_frame=None, warmup=1, context=None, stall_timeout_s=None):
    """Classify frames from ``source`` until it ends, a limit is reached or Ctrl-C.

    The runner and source are activated/opened here when they are not already (and then released
    here); sinks are always opened and closed here.

    Args:
        runner (Runner): the engine (``edgealex.load(...)``).
        source (FrameSource): the frames (``open_source(uri)``).
        sinks (sequence): :class:`FrameSink` objects (``open_sink(uri)``). Defaults to none.
        model_info (ModelInfo): labels and preprocessing. Defaults to ``runner.model_info``.
        threshold (float): minimum confidence of a defect verdict. Defaults to 0.5.
        defect_classes (list or str): classes counted as defects. Defaults to all but ok/good.
        duration_s (float): stop after this many seconds. Defaults to None (no limit).
        max_frames (int): stop after this many processed frames. Defaults to None (no limit).
        batch (int): frames per inference; takes what is queued, up to ``batch``. Defaults to 1.
        queue_size (int): frame queue capacity (raised to ``batch`` if smaller). Defaults to 4.
        drop_policy (str): "oldest" (drop the oldest queued frame when full) or "none" (capture
            waits). Defaults to None: "oldest" for live sources, "none" for files and folders.
        on_frame (callable): called with each :class:`FrameResult` in order, from the sink
            thread; returning False stops the loop. Defaults to None.
        warmup (int): untimed inferences before the loop starts. Defaults to 1.
        context (dict): extra provenance for the sinks' sidecars. Defaults to None.
        stall_timeout_s (float): a live source without a new frame for this long is disconnected
            and reopened. Defaults to None (the source's default, 10 s).

    ``duration_s`` bounds the whole call from its start, opening the source included.

    Returns:
        LoopSummary: the run's figures.

    Raises:
        EdgeAlexError: bad settings, a source or sink that fails, an engine error.
    """
    batch, queue_size = int(batch), int(queue_size)
    if batch < 1:
        raise EdgeAlexError("--batch", f"must be >= 1, got {batch}", "use --batch 1 for lowest latency")
    if queue_size < 1:
        raise EdgeAlexError("--queue-size", f"must be >= 1, got {queue_size}", "e.g. --queue-size 4")
    queue_size = max(queue_size, batch)
    if drop_policy is not None and drop_policy not in DROP_POLICIES:
        raise EdgeAlexError("--drop", f"unknown value {drop_policy!r}", "use --drop oldest or --drop none")
    duration_s = check_float("--duration", duration_s, low=0, low_open=True, allow_none=True)
    check_batch(getattr(runner, "record", None), batch)
    if max_frames is not None and int(max_frames) <= 0:
        raise EdgeAlexError("--max-frames", f"must be > 0, got {max_frames}", "omit it to run until the source ends")

    deadline = None if duration_s is None else time.perf_counter() + float(duration_s)
    source.set_limits(stall_timeout_s=stall_timeout_s, deadline=deadline)
    activated = opened = False
    opened_sinks = []
    try:
        if not runner.is_active:
            runner.activate()
            activated = True
        classifier = Classifier(runner, model_info, threshold, defect_classes)
        if runner.batch_size is not None and batch > runner.batch_size:
            raise EdgeAlexError("--batch", f"{batch} but the engine takes batches of {runner.batch_size}",
                                f"use --batch {runner.batch_size} or build an engine with a dynamic batch")
        if not source.is_open:
            source.open()
            opened = True
        policy = drop_policy or ("oldest" if source.live else "none")
        run_context = {"engine": _describe(runner), "source": source.describe(), "labels": classifier.labels,
                       "threshold": classifier.threshold, "defect_classes": classifier.defect_classes,
                       "batch": batch, "drop_policy": policy}
        run_context.update(context or {})
        _warm_up(classifier, warmup)
        # Sinks open only now that the engine and the source work: a run that fails before its
        # first frame leaves existing outputs alone. The JSONL log goes last (closed last too, so
        # it still gets its final lines when another sink's failure freed the disk).
        ordered = sorted(sinks, key=lambda s: isinstance(s, JsonlSink))
        for sink in ordered:
            sink.open(run_context)
            opened_sinks.append(sink)
        cv2_threads = _cv2_single_threaded()
        try:
            loop = _Loop(runner, source, ordered, classifier, policy, batch, queue_size, deadline, max_frames,
                         on_frame)
            for sink in ordered:  # station sinks show the loop's live counters (issue 14)
                if hasattr(sink, "bind_status"):
                    sink.bind_status(loop.live_status)
            summary = loop.run()
        finally:
            _cv2_restore_threads(cv2_threads)
        summary.engine = run_context["engine"]
        _station_figures(summary, ordered, loop.tally)
    except BaseException:
        for sink, problem in _close_all(opened_sinks, None):  # the error on its way out is the one reported
            _log_close_problem(sink, problem)
        _release(runner if activated else None, source if opened else None)
        raise
    problems = _close_all(opened_sinks, summary.to_dict())
    _release(runner if activated else None, source if opened else None)
    if problems:
        for sink, problem in problems[1:]:  # the first is raised (and said once, by the CLI)
            _log_close_problem(sink, problem)
        raise problems[0][1]
    return summary


def _station_figures(summary, sinks, tally):
    """Delivery latencies and counters of the station sinks into ``summary`` (issue 14).

    Each station sink's ``finish()`` waits (bounded) for deliveries still in flight, e.g. MQTT
    acknowledgements, and returns its counters."""
    stations = [sink for sink in sinks if hasattr(sink, "deliveries_ms")]
    if not stations:
        return
    delivery = {"verdict": dict(_stats(tally.verdict_ms), count=tally.frames)}
    for sink in stations:
        counts = sink.finish()
        name = sink.delivery_name
        if name in delivery:  # two sinks of one kind
            name = sink.uri
        delivery[name] = dict(_stats(sink.deliveries_ms), count=len(sink.deliveries_ms))
        summary.outputs[sink.uri] = counts
    summary.delivery_ms = delivery


def _describe(runner):
    info = runner.describe() if hasattr(runner, "describe") else {"runner": getattr(runner, "name", "runner")}
    record = getattr(runner, "record", None)
    if record is not None:
        info.update({"precision": record.precision, "device": record.device, "target": record.target,
                     "sha256": record.sha256})
    return info


def _warm_up(classifier, count):
    if not count:
        return
    spec = classifier.runner.input_spec
    shape = tuple(d if d is not None else 1 for d in spec.shape)
    dummy = np.zeros(shape, dtype=spec.dtype)
    for _ in range(int(count)):
        classifier.runner.infer(dummy)


def _close_all(sinks, summary):
    """Close every sink (the others too when one fails). Returns ``(sink, exception)`` pairs, in sink order."""
    problems = []
    for sink in sinks:
        try:
            sink.close(summary)
        except Exception as exc:  # close the others anyway
            problems.append((sink, exc))
    return problems


def _log_close_problem(sink, exc):
    logger.error("closing sink %s: %s", getattr(sink, "uri", sink), exc)


def _release(runner, source):
    if source is not None:
        source.close()
    if runner is not None:
        runner.deactivate()


class _Loop:
    """One run of the pipelined loop (see the module docstring)."""

    def __init__(self, runner, source, sinks, classifier, policy, batch, queue_size, deadline, max_frames,
                 on_frame):
        self.runner = runner
        self.source = source
        self.sinks = sinks
        self.classifier = classifier
        self.policy = policy
        self.batch = batch
        self.queue_size = queue_size
        self.deadline = deadline
        self.max_frames = int(max_frames) if max_frames else None
        self.on_frame = on_frame
        self.frames_q = FrameQueue(queue_size, drop_oldest=policy == "oldest")
        self.sink_q = queue.Queue(maxsize=max(8, 2 * batch))
        self.stop = threading.Event()
        self.tally = _Tally(classifier)
        self.stop_reason = None
        self.sink_error = None
        self.frame_errors = 0
        self.engine_s = 0.0
        self.inferred = 0
        self.thread_cpu_s = {}
        self.events_seen = 0
        self.started_at = None

    def live_status(self):
        """The loop's counters now (read from any thread; for the station's live page, issue 14)."""
        stats = self.source.stats
        elapsed = time.perf_counter() - self.started_at if self.started_at else 0.0
        return {"frames": self.tally.frames, "defects": self.tally.defects, "dropped": self.frames_q.dropped,
                "errors": stats.errors + self.frame_errors, "reconnects": stats.reconnects,
                "stalls": getattr(stats, "stalls", None), "pipeline_fps": _round(self.tally.live_fps()),
                "engine_fps": _round(self.inferred / self.engine_s) if self.engine_s > 0 else None,
                "elapsed_s": round(elapsed, 1), "events": len(stats.events)}

    # capture thread
    def _produce(self):
        cpu_start = _thread_cpu_s()
        try:
            while not self.stop.is_set():
                try:
                    frame = self.source.capture(timeout_ms=CAPTURE_TIMEOUT_MS)
                except EndOfStream:
                    self.frames_q.put_final(_EndMarker())
                    return
                if frame is None:
                    continue
                start = time.perf_counter()
                try:
                    tensor = self.classifier.preprocess(frame.image)
                except EdgeAlexError as err:  # one bad frame does not stop the line
                    self.frame_errors += 1
                    self.source.note_event(f"frame {frame.index} skipped: {err.what}")
                    continue
                end = time.perf_counter()
                self.frames_q.put(_Item(frame, tensor, (end - start) * 1e3, end), self.stop)
        except BaseException as exc:  # hand it to the calling thread, which raises it
            self.frames_q.put_final(_Failure(exc))
        finally:
            self.thread_cpu_s["capture"] = _thread_cpu_s() - cpu_start

    # sink thread
    def _sink_worker(self):
        cpu_start = _thread_cpu_s()
        while True:
            try:
                job = self.sink_q.get(timeout=EVENT_POLL_S)
            except queue.Empty:
                job = False  # no frame (a stalled source): its events still reach the log now
            if self.sink_error is None:
                self._events_to_sinks()
            if job is None:
                self.thread_cpu_s["sinks"] = _thread_cpu_s() - cpu_start
                return
            if self.sink_error is not None or job is False:
                continue  # drain without writing after a failure
            frame, result = job
            try:
                start = time.perf_counter()
                item = SinkItem(frame, result, self.tally.live_fps())
                for sink in self.sinks:
                    if isinstance(sink, JsonlSink):
                        result.latency_ms["sink"] = (time.perf_counter() - start) * 1e3
                    sink.write(item)
                done = time.perf_counter()
                result.latency_ms["sink"] = (done - start) * 1e3
                self.tally.add(result, (done - frame.captured_at) * 1e3 + frame.capture_ms, done, frame.image)
                if self.on_frame is not None and self.on_frame(result) is False:
                    self.stop_reason = self.stop_reason or "on_frame"
                    self.stop.set()
            except StopRequested as req:
                self.stop_reason = self.stop_reason or str(req)
                self.stop.set()
            except BaseException as exc:
                self.sink_error = exc
                self.stop.set()

    def _events_to_sinks(self):
        """Copy the source's new events (disconnects, reconnects, skips) to the sinks, in order."""
        events, self.events_seen = self.source.stats.events_since(self.events_seen)
        for event in events:
            for sink in self.sinks:
                try:
                    sink.event(event)
                except BaseException as exc:
                    self.sink_error = exc
                    self.stop.set()
                    return

    def _to_sinks(self, job):
        while True:
            if self.sink_error is not None:
                return
            try:
                self.sink_q.put(job, timeout=0.1)
                return
            except queue.Full:
                continue

    def run(self):
        producer = threading.Thread(target=self._produce, name="edgealex-capture", daemon=True)
        sinker = threading.Thread(target=self._sink_worker, name="edgealex-sinks", daemon=True)
        started = self.started_at = time.perf_counter()
        sinker.start()
        producer.start()
        failure = None
        processed = 0
        cpu_start = _thread_cpu_s()
        try:
            while True:
                if self.stop.is_set():
                    break
                if self.deadline is not None and time.perf_counter() >= self.deadline:
                    self.stop_reason = "duration"
                    break
                if self.max_frames is not None and processed >= self.max_frames:
                    self.stop_reason = "max_frames"
                    break
                want = self.batch if self.max_frames is None else min(self.batch, self.max_frames - processed)
                items = self.frames_q.get_batch(want, 0.05)
                if not items:
                    continue
                if isinstance(items[0], _EndMarker):
                    self.stop_reason = "end of stream"
                    break
                if isinstance(items[0], _Failure):
                    failure = items[0].exc
                    break
                processed += self._infer(items)
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
        finally:
            self.thread_cpu_s["inference"] = _thread_cpu_s() - cpu_start
            previous = _ignore_sigint()
            try:
                self.stop.set()
                producer.join(JOIN_TIMEOUT_S)
                if producer.is_alive():
                    logger.warning("the capture thread is still blocked in %s after %.0f s; releasing the source "
                                   "anyway", self.source.uri, JOIN_TIMEOUT_S)
                if not producer.is_alive():
                    self.source.finish_gap()  # a gap still open at the end is logged too
                self.sink_q.put(None)
                sinker.join(JOIN_TIMEOUT_S * 3)
            finally:
                _restore_sigint(previous)
        if failure is not None:
            raise failure
        if self.sink_error is not None:
            raise self.sink_error
        return self._summary(time.perf_counter() - started)

    def _infer(self, items):
        dequeued = time.perf_counter()
        batch, n = self.classifier.make_batch([item.tensor for item in items])
        logits = self.runner.infer(batch)
        infer_ms = self.runner.last_inference_ms
        start = time.perf_counter()
        verdicts = self.classifier.postprocess(logits, n)
        verdict_at = time.perf_counter()
        post_ms = (verdict_at - start) * 1e3
        self.engine_s += infer_ms / 1e3
        self.inferred += n
        for item, verdict in zip(items, verdicts):
            frame = item.frame
            width, height = frame.size
            result = FrameResult(
                index=frame.index, timestamp=frame.timestamp, source=frame.source, top_class=verdict.top_class,
                class_index=verdict.class_index, confidence=verdict.confidence, defect=verdict.defect,
                defect_class=verdict.defect_class, truth=frame.truth, width=width, height=height, batch=n,
                latency_ms={"capture": frame.capture_ms, "preprocess": item.preprocess_ms,
                            "queue": (dequeued - item.enqueued_at) * 1e3, "infer": infer_ms,
                            "postprocess": post_ms,
                            "verdict": (verdict_at - frame.captured_at) * 1e3 + frame.capture_ms})
            self._to_sinks((frame, result))
        return n

    def _summary(self, wall_s):
        tally = self.tally
        stats = self.source.stats
        # Pipeline rate over the frames that came out; the wall time runs from the loop's start.
        summary = LoopSummary(
            frames=tally.frames, defects=tally.defects, dropped=self.frames_q.dropped,
            errors=stats.errors + self.frame_errors, reconnects=stats.reconnects,
            reconnect_gap_s=stats.reconnect_gap_s, duration_s=wall_s,
            pipeline_fps=(tally.frames / wall_s) if wall_s > 0 and tally.frames else None,
            engine_fps=(self.inferred / self.engine_s) if self.engine_s > 0 else None,
            batch=self.batch, drop_policy=self.policy, queue_size=self.queue_size,
            latency_ms={name: _stats(tally.stage[name]) for name in STAGES},
            end_to_end_ms=_stats(tally.e2e), accuracy=tally.accuracy(),
            class_counts=dict(sorted(tally.class_counts.items())), threshold=self.classifier.threshold,
            defect_classes=list(self.classifier.defect_classes), stopped_by=self.stop_reason or "stopped",
            source=self.source.describe(), events=list(stats.events[-20:]), gaps=list(stats.gaps[-MAX_GAPS_KEPT:]),
            cpu_ms_per_frame={name: round(1e3 * sec / tally.frames, 3) for name, sec in self.thread_cpu_s.items()}
            if tally.frames else {})
        return summary


def _cv2_single_threaded():
    """OpenCV's own worker threads off while the loop runs; returns the previous count.

    A 224x224 resize is too small to gain from them (measured: slower with 2 threads than 1 on a
    2-core CPU), and on a CPU engine they take cores from the inference threads."""
    cv2 = sys.modules.get("cv2")
    if cv2 is None or not hasattr(cv2, "setNumThreads"):
        return None
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    return previous


def _cv2_restore_threads(previous):
    cv2 = sys.modules.get("cv2")
    if previous is not None and cv2 is not None:
        cv2.setNumThreads(previous)


def _ignore_sigint():
    """Ignore Ctrl-C and SIGTERM while the loop shuts down (main thread only); returns the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return [(sig, signal.signal(sig, signal.SIG_IGN)) for sig in (signal.SIGINT, signal.SIGTERM)]
    except (ValueError, OSError):
        return None


def _restore_sigint(previous):
    for sig, handler in previous or ():
        if handler is not None:
            signal.signal(sig, handler)


def run_inspection(engine, source="synthetic://", sinks=(), threshold=DEFAULT_THRESHOLD, defect_classes=None,
                   duration_s=None, max_frames=None, batch=1, queue_size=DEFAULT_QUEUE_SIZE, drop_policy=None,
                   runner_options=None, source_options=None, stall_timeout_s=None):
    """``edgealex run``: load the engine, open the source and sinks, run the loop.

    Through the CLI, SIGTERM is handled like Ctrl-C (:func:`edgealex.interrupts.sigterm_as_interrupt`).

    Args:
        engine (str): engine or ONNX path (see :func:`edgealex.runtime.registry.load_runner`).
        source (str): source URI. Defaults to "synthetic://".
        sinks (sequence): sink URIs. Defaults to none.
        runner_options (dict): options for the runner (e.g. ``intra_op_num_threads``).
        source_options (dict): options for :func:`open_source` (e.g. ``width``, ``loop``).
        stall_timeout_s (float): seconds without a new frame before a live source is reopened.
        Other arguments: see :func:`run_loop`.

    Returns:
        LoopSummary: the run's figures.
    """
    from edgealex.artifacts import check_output_paths, sidecar_path
    from edgealex.camera.sink import open_sink
    from edgealex.camera.source import open_source
    from edgealex.runtime.registry import load_runner

    duration_s = check_float("--duration", duration_s, low=0, low_open=True, allow_none=True)
    started = time.perf_counter()
    outputs = [open_sink(uri) for uri in sinks]
    frames = open_source(source, **(source_options or {}))
    # Conflicting outputs are refused before anything loads (a second lock check runs at open).
    files = [s.path for s in outputs if getattr(s, "path", None)]
    check_output_paths([(path, "sink") for path in files] + [(sidecar_path(path), "sink's sidecar") for path in files],
                       inputs=[(str(engine), "engine"), (getattr(frames, "path", None), "source")])
    runner = load_runner(engine, **(runner_options or {}))
    if duration_s is not None:  # --duration counts from the start of the command's work
        duration_s = max(0.001, float(duration_s) - (time.perf_counter() - started))
    return run_loop(runner, frames, outputs, threshold=threshold, defect_classes=defect_classes,
                    duration_s=duration_s, max_frames=max_frames, batch=batch, queue_size=queue_size,
                    drop_policy=drop_policy, context={"engine_path": os.path.abspath(str(engine))},
                    stall_timeout_s=stall_timeout_s)

