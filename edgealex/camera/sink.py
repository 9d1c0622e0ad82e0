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

import contextlib
import errno
import json
import os
import sys
import time

from edgealex._optional import require
from edgealex.artifacts import (OutputLock, atomic_path, disk_error, environment_summary, is_disk_error, sidecar_path,
                                write_json_atomic)
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

    def event(self, record):
        """A source event (disconnect, reconnect, skipped frame): ``record`` has ``time``, ``event``
        (the text), ``kind`` and details such as ``gap_start``/``gap_s``. Ignored by default."""

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
    """One JSON object per frame (``FrameResult.to_dict()``), plus one per source event.

    The log is a live record written in place (``tail -f`` works). It is claimed with an advisory
    lock when the run starts (:class:`edgealex.artifacts.OutputLock`: a second run on the same log
    is refused) but an existing file is replaced only when the first line is written, so a run
    that fails before its first frame leaves the previous log and its sidecar as they were.

    Lines are collected and written with ``os.write`` when the last write is ``flush_s`` seconds
    old or more (a flush per line cost ~45 us of CPU per frame, taken from the inference threads on
    a CPU engine), and at close; the loop closes its sinks on end of stream, errors and Ctrl-C
    alike, so only a hard kill can lose verdicts (those written since the last flush). The file
    only ever ends with a complete line: a write the disk refuses (full, quota) is cut back to the
    last complete line, a last ``{"event": "stopped", "reason": ...}`` line is added when it fits,
    and the run stops with one user error.

    Event lines (source disconnects/reconnects) have an ``event`` key and no ``frame`` key:
    ``{"event": "disconnect", "timestamp": ..., "message": ..., "gap_start": ...}``.

    When station sinks ran (``http://``, ``mqtt://``, ``gpio://``), the log ends with one
    ``{"record": "delivery_ms", ...}`` line holding their delivery latencies (mean/p50/p99 ms) and
    counters; verdict lines are those with ``frame``.
    """

    def __init__(self, path, fsync_every=0, flush_s=0.2):
        self.uri = self.path = str(path)
        self.fsync_every = int(fsync_every)
        self.flush_s = check_float("flush_s", flush_s, low=0, example="0.2", uri=self.uri)
        self._flushed_at = 0.0
        self._fd = None
        self._lock = None
        self._context = None
        self._pending = []
        self._held = []  # event lines before the first verdict
        self._created = False
        self._committed = 0  # bytes of complete lines in the file
        self._committed_lines = 0
        self._started = False
        self._failed = None
        self.lines = 0

    def open(self, context):
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise EdgeAlexError(self.path, "the folder for the JSONL log does not exist", "create it or pick another path")
        if os.path.isdir(self.path):
            raise EdgeAlexError(self.path, "the JSONL log would replace an existing folder", "give a file name")
        self._lock = OutputLock(self.path, "verdict log").acquire()
        self._created = not os.path.exists(self.path)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o666)  # not truncated yet
        except OSError as exc:
            self._lock.release()
            raise EdgeAlexError(self.path, f"cannot write the JSONL log ({exc.strerror or exc})", "pick a writable path")
        self._context = context
        self.lines = 0
        self._pending = []
        self._held = []
        self._committed = 0
        self._committed_lines = 0
        self._started = False
        self._failed = None

    def write(self, item):
        self._append(json.dumps(item.result.to_dict(), separators=(",", ":")) + "\n")
        self.lines += 1
        now = time.monotonic()
        sync = bool(self.fsync_every) and self.lines % self.fsync_every == 0
        if sync or now - self._flushed_at >= self.flush_s:
            self._flush()
            self._flushed_at = now
        if sync:
            os.fsync(self._fd)

    def event(self, record):
        line = {"event": record.get("kind", "note"), "timestamp": record.get("time"), "message": record.get("event")}
        line.update({k: v for k, v in record.items() if k not in ("kind", "time", "event")})
        text = json.dumps(line, separators=(",", ":")) + "\n"
        if not self._started:  # held until the first verdict: a run without one replaces no log
            self._held.append(text)
            return
        self._append(text)
        self._flush()  # events are rare and matter: written at once

    def _append(self, text):
        if self._failed is not None:
            raise self._failed
        if not self._started:  # the previous log is replaced only now, with the first verdict
            os.ftruncate(self._fd, 0)
            self._started = True
            self._pending.extend(self._held)
            self._held = []
        self._pending.append(text)

    def _flush(self):
        if not self._pending or self._failed is not None:
            return
        data = "".join(self._pending).encode("utf-8")
        self._pending = []
        done = [0]
        try:
            _write_all(self._fd, data, self._committed, done)
        except OSError as exc:
            if not is_disk_error(exc):
                raise
            fitted = data[:data.rfind(b"\n", 0, done[0]) + 1]  # the complete lines that fitted
            self._committed += len(fitted)
            self._committed_lines += fitted.count(b"\n")
            self._failed = self._stop_at_last_line(exc)
            raise self._failed
        self._committed += len(data)
        self._committed_lines += data.count(b"\n")

    def _stop_at_last_line(self, exc):
        """Cut the file back to its last complete line, add the reason if it fits; the user error."""
        os.ftruncate(self._fd, self._committed)
        reason = f"stopped: {exc.strerror or exc} ({errno.errorcode.get(exc.errno, exc.errno)}) writing this log"
        line = (json.dumps({"event": "stopped", "timestamp": round(time.time(), 3), "reason": reason},
                           separators=(",", ":")) + "\n").encode("utf-8")
        try:
            _write_all(self._fd, line, self._committed)
            self._committed += len(line)
            self._committed_lines += 1
        except OSError:
            os.ftruncate(self._fd, self._committed)
        return disk_error(self.path, exc, "JSONL log",
                          kept=f"the log ends after its last complete line ({self._committed_lines} lines)")

    def close(self, summary=None):
        if self._fd is None:
            return
        reported = self._failed  # raised by write() already
        if self._failed is None:
            try:
                if self._started and summary and summary.get("delivery_ms"):
                    # station sinks ran: one closing latency record (issue 14)
                    self._append(json.dumps({"record": "delivery_ms", "delivery_ms": summary["delivery_ms"],
                                             "outputs": summary.get("outputs", {})}, separators=(",", ":")) + "\n")
                self._flush()
            except EdgeAlexError:
                pass  # raised below; the file ends at a complete line
        fd, lock = self._fd, self._lock
        self._fd = self._lock = None
        try:
            if self._started:
                with contextlib.suppress(OSError):
                    os.fsync(fd)
            deleted = self._started and _unlinked(fd)
            os.close(fd)
            if deleted:  # its lines went into a file nobody can open: say so, write no orphan sidecar
                raise EdgeAlexError(self.path, f"the log was deleted (or its folder removed) while this run wrote it; "
                                               f"its {self._committed_lines} lines are lost",
                                    "leave the log and its folder in place while edgealex runs (rotate logs by "
                                    "starting a new run, or with logrotate's copytruncate)")
            if not self._started:  # no line this run: the previous log (if any) stays, with its sidecar
                if self._created:
                    with contextlib.suppress(OSError):
                        os.remove(self.path)  # the empty file this run created
                return
            try:
                write_json_atomic(sidecar_path(self.path), _provenance(self.path, self._context, summary, "verdict-log"))
            except EdgeAlexError:
                if self._failed is None:
                    raise
        finally:
            lock.release()
        if self._failed is not None and self._failed is not reported:
            raise self._failed


def _unlinked(fd):
    """True when the file open on ``fd`` has no name left (deleted, or its folder removed)."""
    try:
        return os.fstat(fd).st_nlink == 0
    except OSError:
        return False


def _write_all(fd, data, offset, done=None):
    """Write ``data`` at ``offset``; a short write is retried, a write of 0 bytes is ENOSPC.
    ``done[0]`` counts the bytes written (also when an OSError ends it)."""
    done = done if done is not None else [0]
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]
        offset += written
        done[0] += written


# The video sink stops (one user error, the previous video kept) when the free space on its disk
# falls below this: OpenCV's VideoWriter.write reports no failure (it logs "Failed to write frame"
# and goes on), so a full disk would otherwise end in a file without its index (no moov atom).
VIDEO_MIN_FREE_BYTES = 16 << 20


class VideoSink(FrameSink):
    """Annotated video file; appears under its final name only when complete and readable.

    OpenCV's ``VideoWriter.write`` returns nothing and does not raise when the disk is full, so the
    sink checks the free space of the output's file system before every frame (``os.statvfs``,
    stop below ``min_free_bytes``) and, at close, that the finished file opens and holds every
    frame written. A failure stops the run with one user error; the temporary file is deleted and
    a previous video under the final name is kept.
    """

    needs_overlay = True

    def __init__(self, path, fps=None, min_free_bytes=VIDEO_MIN_FREE_BYTES):
        self.uri = self.path = str(path)
        self.fps = fps
        self.min_free_bytes = int(min_free_bytes)
        self._writer = None
        self._size = None
        self._tmp_ctx = None
        self._tmp = None
        self._lock = None
        self._context = None
        self._failed = None
        self.frames = 0

    def open(self, context):
        suffix = os.path.splitext(self.path)[1].lower()
        if suffix not in VIDEO_SINK_FOURCC:
            raise EdgeAlexError(self.path, f"unsupported video type '{suffix}'",
                                "use " + ", ".join(sorted(VIDEO_SINK_FOURCC)))
        if os.path.isdir(self.path):
            raise EdgeAlexError(self.path, "the video would replace an existing folder", "give a file name")
        self._lock = OutputLock(self.path, "video").acquire()
        self._context = context
        self._failed = None
        try:
            self._tmp_ctx = atomic_path(self.path, "annotated video")
            self._tmp = self._tmp_ctx.__enter__()
        except BaseException:
            self._lock.release()
            raise
        source = (context or {}).get("source") or {}
        # A paced source's rate, else a video file's own rate, else 30 fps.
        self.fps = float(self.fps or source.get("fps") or source.get("native_fps") or DEFAULT_VIDEO_FPS)
        self.frames = 0

    def write(self, item):
        if self._failed is not None:
            raise self._failed
        cv2 = require("cv2", "writing video")
        self._check_space()
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

    def _check_space(self):
        try:
            info = os.statvfs(os.path.dirname(os.path.abspath(self._tmp)))
        except (OSError, AttributeError):  # no statvfs: rely on the check at close
            return
        free = info.f_bavail * info.f_frsize
        if free < self.min_free_bytes:
            self._failed = EdgeAlexError(
                self.path, f"stopped after {self.frames} frames: only {free / 2 ** 20:.1f} MiB free on its disk "
                           f"(the video sink needs {self.min_free_bytes / 2 ** 20:.0f} MiB); the unfinished video "
                           "was discarded and a previous one under this name is unchanged",
                "free space on that disk (df -h) or write the video to another folder")
            raise self._failed

    def close(self, summary=None):
        if self._tmp_ctx is None:
            return
        ctx, self._tmp_ctx = self._tmp_ctx, None
        lock, self._lock = self._lock, None
        reported = self._failed  # raised by write() already
        try:
            if self._writer is not None:
                self._writer.release()
                self._writer = None
            if self._failed is None and self.frames and summary is None:
                # The run failed (the loop closes its sinks with no summary then): its video does
                # not replace the previous one; the JSONL log holds what was processed.
                logger.warning("%s: the run failed; the video was not written", self.path)
                self.frames = 0
            if self._failed is None and self.frames and not self._complete():
                self._failed = EdgeAlexError(
                    self.path, f"the finished video does not hold the {self.frames} frames written (disk full or "
                               "write error while encoding); it was discarded and a previous one under this name is "
                               "unchanged", "free space on that disk (df -h) or write the video to another folder")
            if self._failed is not None or self.frames == 0:
                if self.frames == 0 and summary is not None:
                    logger.warning("%s: no frame was processed; no video written", self.path)
                ctx.__exit__(EdgeAlexError, EdgeAlexError(self.path, "discarded"), None)  # removes the temp file
                if self._failed is not None and self._failed is not reported:
                    raise self._failed
                return
            ctx.__exit__(None, None, None)  # renames the complete file into place
            write_json_atomic(sidecar_path(self.path), _provenance(self.path, self._context, summary, "annotated-video"))
        finally:
            if lock is not None:
                lock.release()

    def _complete(self):
        """The temporary file opens and its container counts the frames written (index present)."""
        cv2 = require("cv2", "writing video")
        cap = cv2.VideoCapture(self._tmp)
        try:
            if not cap.isOpened():
                return False
            counted = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            return counted >= self.frames or (counted == 0 and cap.read()[0])
        finally:
            cap.release()


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
    from edgealex.station import is_station_uri, open_station_sink  # light: stdlib only

    if is_station_uri(text):  # the station sinks (issue 14): http://, mqtt://, gpio://
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
