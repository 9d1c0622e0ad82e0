"""Where verdicts go: ``open_sink(uri)``.

=======================  ==================================================================
URI                      sink
=======================  ==================================================================
``null://``              nothing (benchmarks)
``display://`` (``:0``)  an OpenCV window with the overlay; q or Esc stops the run
``out.mp4`` / ``.avi``   annotated video (mp4v / MJPG), written to a temporary name and
``.mkv`` / ``.mov``      renamed when complete; frames of another size are scaled to the first
``verdicts.jsonl``       one JSON object per frame, flushed every 0.2 s and at the end (Ctrl-C
                         leaves every processed frame in the file)
``http://HOST:PORT``     station sinks: live page, MQTT verdicts, GPIO reject pulse
``mqtt://HOST/TOPIC``    (:mod:`edgealex.station`)
``gpio://PIN``
=======================  ==================================================================

``file://`` prefixes are accepted. Video and JSONL sinks write a provenance sidecar
(``<file>.json``: engine, source, labels, threshold, the run summary) when the run ends.

The overlay shows the verdict (OK / DEFECT / LOW CONFIDENCE) with its colour, the top class and
confidence, the pipeline fps (frames out per wall-clock second) and the frame index.
"""

import json
import os
import sys
import time

from edgealex._optional import require
from edgealex.artifacts import atomic_path, environment_summary, sidecar_path, write_json_atomic
from edgealex.errors import EdgeAlexError
from edgealex.validate import check_float
from edgealex.log import logger

VIDEO_SINK_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
DEFAULT_VIDEO_FPS = 30.0
COLOURS_BGR = {"ok": (60, 180, 60), "defect": (40, 40, 230), "uncertain": (0, 190, 255)}


class StopRequested(Exception):
    """A sink asks the loop to stop (the display window was closed with q/Esc)."""


class FrameSink:
    """Base of every sink.

    The loop calls :meth:`open` once with the run context, :meth:`write` for every frame (in
    order, from one thread) and :meth:`close` once with the run summary (also after Ctrl-C).
    """

    uri = "null://"
    needs_overlay = False

    def open(self, context):
        """Prepare the output. ``context``: engine, source, labels, threshold, ... (dict)."""

    def write(self, item):
        """Consume one :class:`SinkItem`. May raise :class:`StopRequested`."""

    def close(self, summary=None):
        """Finish the output (idempotent). ``summary``: the run summary dict, or None."""


class SinkItem:
    """What a sink receives for one frame: the frame, its verdict and the loop's live fps."""

    __slots__ = ("frame", "result", "pipeline_fps", "_overlay")

    def __init__(self, frame, result, pipeline_fps):
        self.frame = frame
        self.result = result
        self.pipeline_fps = pipeline_fps
        self._overlay = None

    def overlay(self):
        """The annotated BGR image (drawn once, shared by the sinks that show it)."""
        if self._overlay is None:
            self._overlay = draw_overlay(self.frame.image, self.result, self.pipeline_fps)
        return self._overlay


def verdict_kind(result):
    """"defect", "uncertain" (top class is a defect below the threshold) or "ok"."""
    if result.defect:
        return "defect"
    if result.defect_class:
        return "uncertain"
    return "ok"


def draw_overlay(image, result, pipeline_fps=None):
    """A copy of ``image`` with the verdict banner and a coloured border.

    Args:
        image (np.ndarray): HxWx3 uint8 BGR (not modified).
        result (FrameResult): the verdict of this frame.
        pipeline_fps (float): loop throughput to show. Defaults to None (not shown).

    Returns:
        np.ndarray: the annotated image.
    """
    cv2 = require("cv2", "drawing the overlay")
    out = image.copy()
    h, w = out.shape[:2]
    kind = verdict_kind(result)
    colour = COLOURS_BGR[kind]
    scale = max(0.4, min(h, w) / 720.0)
    thick = max(1, int(round(2 * scale)))
    border = max(2, int(round(6 * scale)))
    cv2.rectangle(out, (0, 0), (w - 1, h - 1), colour, border)
    banner_h = int(44 * scale)
    cv2.rectangle(out, (0, 0), (w, banner_h), colour, -1)
    title = {"ok": "OK", "defect": "DEFECT", "uncertain": "LOW CONFIDENCE"}[kind]
    text = f"{title}  {result.top_class} {result.confidence:.2f}"
    cv2.putText(out, text, (int(10 * scale), int(31 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.9 * scale,
                (255, 255, 255), thick, cv2.LINE_AA)
    status = f"frame {result.index}"
    if getattr(result, "truth", None) is not None:
        status = f"truth {result.truth}  " + status
    if pipeline_fps:
        status = f"pipeline {pipeline_fps:.1f} fps  " + status
    size, _ = cv2.getTextSize(status, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, thick)
    cv2.putText(out, status, (w - size[0] - int(10 * scale), h - int(12 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                0.6 * scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def _provenance(path, context, summary, what):
    record = {"artifact": what, "path": os.path.abspath(path)}
    record.update(context or {})
    record["summary"] = summary
    record["environment"] = environment_summary()
    return record


class NullSink(FrameSink):
    """Discards everything."""


class JsonlSink(FrameSink):
    """One JSON object per frame (``FrameResult.to_dict()``).

    The log is appended to a fresh file (an existing file is replaced when the run starts): it is
    a live record, so it is written in place rather than renamed at the end. A write flushes the
    file when the last flush is ``flush_s`` seconds old or more (a flush per line cost ~45 us of
    CPU per frame, taken from the inference threads on a CPU engine), and close flushes the rest;
    the loop closes its sinks on end of stream, errors and Ctrl-C alike, so only a hard kill can
    lose verdicts (those written since the last flush). When station sinks ran (``http://``,
    ``mqtt://``, ``gpio://``), the log ends with one ``{"record": "delivery_ms", ...}`` line holding
    their delivery latencies (mean/p50/p99 ms) and counters; verdict lines are those with ``frame``.
    """

    def __init__(self, path, fsync_every=0, flush_s=0.2):
        self.uri = self.path = str(path)
        self.fsync_every = int(fsync_every)
        self.flush_s = check_float(f"{self.uri} flush_s", flush_s, low=0, example="0.2")
        self._flushed_at = 0.0
        self._handle = None
        self._context = None
        self.lines = 0

    def open(self, context):
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise EdgeAlexError(self.path, "the folder for the JSONL log does not exist", "create it or pick another path")
        try:
            self._handle = open(self.path, "w", encoding="utf-8")
        except OSError as exc:
            raise EdgeAlexError(self.path, f"cannot write the JSONL log ({exc.strerror or exc})", "pick a writable path")
        self._context = context
        self.lines = 0

    def write(self, item):
        self._handle.write(json.dumps(item.result.to_dict(), separators=(",", ":")) + "\n")
        self.lines += 1
        now = time.monotonic()
        sync = bool(self.fsync_every) and self.lines % self.fsync_every == 0
        if sync or now - self._flushed_at >= self.flush_s:
            self._handle.flush()  # an fsync only reaches what has left Python's buffer
            self._flushed_at = now
        if sync:
            os.fsync(self._handle.fileno())

    def close(self, summary=None):
        if self._handle is None:
            return
        if summary and summary.get("delivery_ms"):  # station sinks ran: one closing latency record (issue 14)
            self._handle.write(json.dumps({"record": "delivery_ms", "delivery_ms": summary["delivery_ms"],
                                           "outputs": summary.get("outputs", {})}, separators=(",", ":")) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        write_json_atomic(sidecar_path(self.path), _provenance(self.path, self._context, summary, "verdict-log"))


class VideoSink(FrameSink):
    """Annotated video file; appears under its final name only when complete."""

    needs_overlay = True

    def __init__(self, path, fps=None):
        self.uri = self.path = str(path)
        self.fps = fps
        self._writer = None
        self._size = None
        self._tmp_ctx = None
        self._tmp = None
        self._context = None
        self.frames = 0

    def open(self, context):
        suffix = os.path.splitext(self.path)[1].lower()
        if suffix not in VIDEO_SINK_FOURCC:
            raise EdgeAlexError(self.path, f"unsupported video type '{suffix}'",
                                "use " + ", ".join(sorted(VIDEO_SINK_FOURCC)))
        self._context = context
        self._tmp_ctx = atomic_path(self.path, "annotated video")
        self._tmp = self._tmp_ctx.__enter__()
        source = (context or {}).get("source") or {}
        # A paced source's rate, else a video file's own rate, else 30 fps.
        self.fps = float(self.fps or source.get("fps") or source.get("native_fps") or DEFAULT_VIDEO_FPS)
        self.frames = 0

    def write(self, item):
        cv2 = require("cv2", "writing video")
        image = item.overlay()
        h, w = image.shape[:2]
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_SINK_FOURCC[os.path.splitext(self.path)[1].lower()])
            self._writer = cv2.VideoWriter(self._tmp, fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise EdgeAlexError(self.path, "OpenCV cannot write this video type here",
                                    "try an .avi output (MJPG), or install an OpenCV with FFmpeg")
            self._size = (w, h)
        if (w, h) != self._size:  # a source that changes resolution: keep the file's size
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self, summary=None):
        if self._tmp_ctx is None:
            return
        ctx, self._tmp_ctx = self._tmp_ctx, None
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self.frames == 0:
            logger.warning("%s: no frame was processed; no video written", self.path)
            ctx.__exit__(EdgeAlexError, EdgeAlexError(self.path, "empty"), None)  # removes the temp file
            return
        ctx.__exit__(None, None, None)  # renames the complete file into place
        write_json_atomic(sidecar_path(self.path), _provenance(self.path, self._context, summary, "annotated-video"))


class DisplaySink(FrameSink):
    """An OpenCV window showing the overlay. Pressing q or Esc (or closing it) stops the run."""

    needs_overlay = True
    WINDOW = "edgealex"

    def __init__(self, uri="display://"):
        self.uri = uri
        self._cv2 = None

    def open(self, context):
        cv2 = require("cv2", "the display sink")
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise EdgeAlexError(self.uri, "no display (DISPLAY is not set)",
                                "run on the desktop session, or use a video/JSONL sink: --sink out.mp4")
        try:
            cv2.namedWindow(self.WINDOW, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise EdgeAlexError(self.uri, f"this OpenCV cannot open windows ({str(exc).strip().splitlines()[-1][:120]})",
                                "headless OpenCV builds have no GUI: on a desktop pip install opencv-python; on a "
                                "Jetson use JetPack's OpenCV")
        self._cv2 = cv2

    def write(self, item):
        cv2 = self._cv2
        cv2.imshow(self.WINDOW, item.overlay())
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) or cv2.getWindowProperty(self.WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            raise StopRequested("display closed")

    def close(self, summary=None):
        if self._cv2 is not None:
            try:
                self._cv2.destroyWindow(self.WINDOW)
                self._cv2.waitKey(1)
            except self._cv2.error:
                pass
            self._cv2 = None


def open_sink(uri):
    """A sink for ``uri`` (see the module docstring); not opened yet.

    Raises:
        EdgeAlexError: unsupported URI.
    """
    text = str(uri).strip()
    lowered = text.lower()
    if lowered in ("null://", "null", "none", ""):
        return NullSink()
    if lowered.startswith("display://") or lowered == "display":
        return DisplaySink(text)
    if lowered.startswith(("http://", "mqtt://", "gpio://")):  # the station sinks (issue 14)
        from edgealex.station import open_station_sink

        return open_station_sink(text)
    path = text[len("file://"):] if lowered.startswith("file://") else text
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".jsonl":
        return JsonlSink(path)
    if suffix in VIDEO_SINK_FOURCC:
        return VideoSink(path)
    raise EdgeAlexError(text, "unsupported sink",
                        "use null://, display://, http://HOST:PORT, mqtt://HOST:PORT/TOPIC, gpio://PIN, "
                        "a video file ({}) or a .jsonl verdict log".format(
                            ", ".join(sorted(VIDEO_SINK_FOURCC))))
