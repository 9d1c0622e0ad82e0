"""Frame sources by URI, the ``videoSource`` idea of jetson-utils in plain Python + OpenCV.

URI syntax (options as a query string, or as keyword arguments of :func:`open_source`, which win)::

    synthetic://                      procedural conveyor of surfaces with/without defects (no camera)
    synthetic://?width=1280&height=720&fps=30&defect_rate=0.3&seed=0&count=600&pool=8
    csi://0?width=1920&height=1080&fps=30&flip=0      Jetson CSI camera (nvarguscamerasrc, GStreamer)
    v4l2:///dev/video0?width=640&height=480&fps=30    USB/V4L2 camera; also /dev/video0 or a bare 0
    rtsp://user:pass@host:554/stream?latency=200      network stream (its own query is kept)
    clip.mp4, file:///data/clip.mp4?loop=1&fps=15     video file (.mp4 .avi .mkv .mov ...)
    images/, file:///data/images, 'images/*.png'      image folder (recursive, class sub-folders =
                                                      ground truth) or a glob pattern

Common options: ``width``, ``height`` (capture size for cameras; output size for files, folders
and synthetic frames), ``fps`` (camera rate; pacing for files/folders/synthetic, 0 = as fast as
possible), ``loop`` (restart files/folders/synthetic at the end). A query string is recognised only
when it is made of ``key=value`` pairs, so glob patterns with ``?`` still work.

Capture contract (:meth:`FrameSource.capture`):

- returns a :class:`Frame`, or ``None`` when no frame arrived within ``timeout_ms`` ("no frame
  yet": a slow camera, a reconnect in progress, pacing);
- raises :class:`EndOfStream` at the end of a file, folder or counted synthetic stream;
- raises :class:`edgealex.errors.EdgeAlexError` for errors (unreadable video, camera missing).

Live sources (cameras, RTSP, paced synthetic) have ``live = True``: the loop drops the oldest
queued frame when inference is slower than the source. Files and folders are never dropped.
"""

import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Optional
from urllib.parse import parse_qsl, unquote

from edgealex.errors import EdgeAlexError
from edgealex.limits import check_pixels
from edgealex.validate import check_float
from edgealex.log import logger
from edgealex.preprocess import is_image_file

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".h264", ".h265", ".ts")
COMMON_OPTIONS = ("width", "height", "fps", "loop")
RTSP_OPTIONS = ("latency", "api", "backoff", "max_backoff", "open_timeout")  # ours; other keys stay in the URL
DEFAULT_STALL_TIMEOUT_S = 10.0  # a live source without a new frame this long is disconnected and reopened
MAX_GAPS_KEPT = 1000
_QUERY = re.compile(r"\?([A-Za-z_][A-Za-z0-9_]*=[^&=?]*(?:&[A-Za-z_][A-Za-z0-9_]*=[^&=?]*)*)$")


class EndOfStream(Exception):
    """The source has no more frames (end of a file/folder). Not an error."""


@dataclass
class Frame:
    """One captured image.

    Args:
        image (np.ndarray): HxWx3 uint8 BGR (OpenCV order). Treat as read-only: sources may reuse it.
        index (int): 0-based position in the stream (counts frames delivered by this source).
        timestamp (float): wall-clock capture time, seconds since the epoch.
        source (str): where it came from (the URI, or the file of a folder item).
        truth (str): ground-truth label when the source knows it (synthetic, class folders).
        capture_ms (float): time spent obtaining the frame (read/decode/render).
        captured_at (float): ``time.perf_counter()`` when the frame was ready (for latencies).
    """

    image: object
    index: int
    timestamp: float
    source: str
    truth: Optional[str] = None
    capture_ms: float = 0.0
    captured_at: float = 0.0

    @property
    def size(self):
        """(width, height)."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass
class SourceStats:
    """What happened while capturing: frames delivered, bad frames skipped, reconnects.

    ``events`` holds every event of the run in order (the loop copies new ones into the JSONL
    log as they happen); ``gaps`` every span without frames of a live source: ``start`` (seconds
    since the epoch, the last frame before the gap), ``length_s`` and ``reason``.
    """

    frames: int = 0
    errors: int = 0
    reconnects: int = 0
    reconnect_gap_s: float = 0.0
    events: list = field(default_factory=list)
    gaps: list = field(default_factory=list)
    events_total: int = 0
    stalls: Optional[int] = None  # live sources: disconnects for want of a new frame (None: not counted)

    def events_since(self, seen):
        """(events recorded after the first ``seen``, the new total); the oldest may have been trimmed."""
        total = self.events_total
        missing = total - int(seen)
        return (list(self.events[-missing:]) if missing > 0 else []), total

    def to_dict(self):
        return {"frames": self.frames, "errors": self.errors, "reconnects": self.reconnects,
                "reconnect_gap_s": round(self.reconnect_gap_s, 3), "events": list(self.events[-20:]),
                "gaps": list(self.gaps[-MAX_GAPS_KEPT:])}


@dataclass
class SourceURI:
    """A parsed source URI: ``scheme`` ("synthetic", "csi", "v4l2", "rtsp", "file", "folder",
    "glob"), ``target`` (device, path or URL) and ``options`` (strings, from the query)."""

    scheme: str
    target: str
    options: Dict[str, str] = field(default_factory=dict)
    uri: str = ""


def split_query(text):
    """``"clip.mp4?loop=1"`` -> ``("clip.mp4", {"loop": "1"})``; non key=value queries stay in the text."""
    match = _QUERY.search(text)
    if not match:
        return text, {}
    return text[:match.start()], dict(parse_qsl(match.group(1), keep_blank_values=True))


def parse_uri(uri):
    """Classify a source URI (see the module docstring for the syntax).

    Raises:
        EdgeAlexError: empty or unsupported URI.
    """
    text = str(uri).strip()
    if not text:
        raise EdgeAlexError("--source", "empty source", "pass e.g. synthetic://, csi://0, /dev/video0 or clip.mp4")
    lowered = text.lower()
    if lowered.startswith("rtsp://") or lowered.startswith("rtsps://"):
        base, query = text.split("?", 1) if "?" in text else (text, "")
        ours, theirs = {}, []
        for key, value in parse_qsl(query, keep_blank_values=True):
            (ours.__setitem__(key, value) if key in COMMON_OPTIONS + RTSP_OPTIONS else theirs.append(f"{key}={value}"))
        return SourceURI("rtsp", base + ("?" + "&".join(theirs) if theirs else ""), ours, text)
    rest, options = split_query(text)
    scheme, sep, target = rest.partition("://")
    if not sep:
        scheme, target = "", rest
    scheme = scheme.lower()
    if scheme == "synthetic":
        return SourceURI("synthetic", target, options, text)
    if scheme == "csi":
        return SourceURI("csi", target or "0", options, text)
    if scheme == "v4l2":
        return SourceURI("v4l2", target or "/dev/video0", options, text)
    if scheme == "file":
        target = unquote(target)
        if target.startswith("localhost/"):
            target = target[len("localhost"):]
    elif scheme:
        raise EdgeAlexError(text, f"unsupported source scheme '{scheme}://'",
                            "use synthetic://, csi://, v4l2://, rtsp://, file:// or a path")
    if re.fullmatch(r"\d+", target):
        return SourceURI("v4l2", target, options, text)
    if target.startswith("/dev/video"):
        return SourceURI("v4l2", target, options, text)
    if os.path.isdir(target):
        return SourceURI("folder", target, options, text)
    if any(ch in target for ch in "*?[") and not os.path.exists(target):
        return SourceURI("glob", target, options, text)
    return SourceURI("file", target, options, text)


def _option(options, key, cast, default, uri):
    if key not in options or options[key] in (None, ""):
        return default
    value = options[key]
    try:
        if cast is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return cast(value)
    except (TypeError, ValueError):
        raise EdgeAlexError(uri, f"option {key}={value!r} is not a valid {cast.__name__}",
                            f"fix the value of '{key}' in the source URI")


class FrameSource:
    """Base of every source: open/close (context manager), paced :meth:`capture`, statistics.

    Subclasses implement ``open_impl``, ``close_impl`` and ``read_impl`` (returning
    ``(image, truth, source_name)``, ``None`` for "no frame yet", or raising :class:`EndOfStream`).

    Args:
        uri (str): the URI the source was opened from (used in records).
        width (int): requested width. Defaults to None (native).
        height (int): requested height. Defaults to None (native).
        fps (float): camera rate, or pacing for non-camera sources (0 or None = unpaced).
        loop (bool): restart at the end (files, folders, counted synthetic). Defaults to False.
    """

    kind = "source"
    live = False
    resize_output = True  # files/folders/synthetic: width/height resize the frames
    live_pacing_by_device = False  # cameras pace themselves; other sources are paced by ``fps``

    def __init__(self, uri, width=None, height=None, fps=None, loop=False):
        self.uri = str(uri)
        self.width = int(width) if width else None
        self.height = int(height) if height else None
        check_pixels(self.width, self.height, self.uri, "frame size")
        fps = check_float("fps", fps, low=0, allow_none=True, example="0", uri=self.uri)
        self.fps = float(fps) if fps else 0.0
        self.loop = bool(loop)
        self.stats = SourceStats()
        self.stall_timeout_s = DEFAULT_STALL_TIMEOUT_S
        self.deadline = None  # time.perf_counter() by which open() and capture() must return
        self.is_open = False
        self._next_due = None
        self._index = 0
        self._lock = threading.Lock()

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def set_limits(self, stall_timeout_s=None, deadline=None):
        """Liveness limits (used by live sources).

        Args:
            stall_timeout_s (float): seconds without a new frame after which a live source counts
                as disconnected and is reopened. Defaults to None (keep the current value, 10 s).
            deadline (float): ``time.perf_counter()`` value by which opening must have finished
                (a run's ``--duration``). Defaults to None (no deadline).

        Raises:
            EdgeAlexError: a stall timeout that is not > 0.
        """
        if stall_timeout_s is not None:
            self.stall_timeout_s = check_float("--stall-timeout", stall_timeout_s, low=0, low_open=True,
                                               example=f"{DEFAULT_STALL_TIMEOUT_S:g}")
        self.deadline = deadline

    def open(self):
        """Open the device/file. Idempotent."""
        if self.is_open:
            return
        self.open_impl()
        self.is_open = True
        self._next_due = None

    def close(self):
        """Release the device/file. Idempotent."""
        if not self.is_open:
            return
        try:
            self.close_impl()
        finally:
            self.is_open = False
            logger.debug("closed source %s", self.uri)

    def capture(self, timeout_ms=1000):
        """The next frame, or None when none arrived within ``timeout_ms``.

        Raises:
            EndOfStream: no more frames.
            EdgeAlexError: the source failed.
        """
        if not self.is_open:
            raise EdgeAlexError(self.uri, "capture() on a closed source", "open it first (use `with source:`)")
        if self.fps > 0 and not self.live_pacing_by_device:
            now = time.perf_counter()
            if self._next_due is None:
                self._next_due = now
            wait_s = self._next_due - now
            if wait_s > timeout_ms / 1e3:
                time.sleep(timeout_ms / 1e3)
                return None
            if wait_s > 0:
                time.sleep(wait_s)
            # Schedule from the due time, not from now, so the average rate is exact; after a long
            # stall restart the schedule instead of bursting.
            self._next_due = max(self._next_due + 1.0 / self.fps, time.perf_counter() - 1.0 / self.fps)
        start = time.perf_counter()
        got = self.read_impl(timeout_ms)
        if got is None:
            return None
        image, truth, name = got
        if self.resize_output and (self.width or self.height):
            image = self._resize(image)
        end = time.perf_counter()
        frame = Frame(image=image, index=self._index, timestamp=time.time(), source=name or self.uri,
                      truth=truth, capture_ms=(end - start) * 1e3, captured_at=end)
        self._index += 1
        self.stats.frames += 1
        return frame

    def _resize(self, image):
        from edgealex._optional import require

        cv2 = require("cv2", "resizing frames")
        h, w = image.shape[:2]
        width = self.width or max(1, int(round(w * self.height / float(h))))
        height = self.height or max(1, int(round(h * self.width / float(w))))
        if (width, height) == (w, h):
            return image
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)

    def describe(self):
        """Kind, URI and settings, for summaries and provenance."""
        return {"kind": self.kind, "uri": self.uri, "live": self.live, "width": self.width,
                "height": self.height, "fps": self.fps, "loop": self.loop}

    def note_event(self, text, kind="note", **fields):
        """Record an event (kept in the stats, copied into the JSONL log, logged as a warning).

        Args:
            text (str): what happened, for people.
            kind (str): "note", "disconnect" or "reconnect". Defaults to "note".
            **fields: structured details (e.g. ``gap_start`` in seconds since the epoch, ``gap_s``).
        """
        record = {"time": round(time.time(), 3), "event": text, "kind": kind}
        record.update(fields)
        stats = self.stats
        stats.events.append(record)
        stats.events_total += 1
        if len(stats.events) > 2 * MAX_GAPS_KEPT:
            del stats.events[:MAX_GAPS_KEPT]
        logger.warning("%s: %s", self.uri, text)

    def finish_gap(self):
        """Record a gap still open at the end of a run (live sources); nothing for others."""

    def note_gap(self, start, length_s, reason):
        """Record a span without frames (``start`` in seconds since the epoch)."""
        self.stats.gaps.append({"start": round(start, 3), "length_s": round(length_s, 3), "reason": reason})
        if len(self.stats.gaps) > 2 * MAX_GAPS_KEPT:
            del self.stats.gaps[:MAX_GAPS_KEPT]

    # -- implemented by sources -------------------------------------------------------------------
    def open_impl(self):
        raise NotImplementedError

    def close_impl(self):
        raise NotImplementedError

    def read_impl(self, timeout_ms):
        raise NotImplementedError


def open_source(uri, width=None, height=None, fps=None, loop=None, **options):
    """A :class:`FrameSource` for ``uri`` (not yet opened; use it as a context manager).

    Args:
        uri (str): see the module docstring.
        width (int): overrides the URI's ``width``. Defaults to None.
        height (int): overrides the URI's ``height``. Defaults to None.
        fps (float): overrides the URI's ``fps``. Defaults to None.
        loop (bool): overrides the URI's ``loop``. Defaults to None.
        **options: source-specific options (e.g. ``defect_rate``, ``seed``, ``flip``) overriding
            the URI's.

    Returns:
        FrameSource: the source.

    Raises:
        EdgeAlexError: unsupported URI or invalid option.
    """
    parsed = parse_uri(uri)
    merged = dict(parsed.options)
    for key, value in dict(options, width=width, height=height, fps=fps, loop=loop).items():
        if value is not None:
            merged[key] = value
    common = {
        "width": _option(merged, "width", int, None, parsed.uri),
        "height": _option(merged, "height", int, None, parsed.uri),
        "fps": _option(merged, "fps", float, None, parsed.uri),
        "loop": _option(merged, "loop", bool, False, parsed.uri),
    }
    extra = {k: v for k, v in merged.items() if k not in COMMON_OPTIONS}
    if parsed.scheme == "synthetic":
        from edgealex.camera.synthetic import SyntheticSource

        return SyntheticSource.from_options(parsed.uri, common, extra)
    if parsed.scheme == "file" and not is_image_file(parsed.target):
        from edgealex.camera.file import VideoFileSource

        _reject_extra(parsed.uri, extra, ())
        return VideoFileSource(parsed.target, uri=parsed.uri, **common)
    if parsed.scheme in ("file", "folder", "glob"):  # a single image file is a one-image folder
        from edgealex.camera.folder import ImageFolderSource

        _reject_extra(parsed.uri, extra, ())
        return ImageFolderSource(parsed.target, uri=parsed.uri, **common)
    from edgealex.camera.gst import CameraSource

    return CameraSource.from_uri(parsed, common, extra)


def check_source(uri):
    """Refuse a source URI that can never open, without opening a device or a stream.

    Checks what :func:`open_source` checks (scheme, options) and that a local file named by the URI
    exists. Cameras and streams are not touched (opening ``csi://`` starts nvargus-daemon's session).

    Args:
        uri (str): see the module docstring.

    Raises:
        EdgeAlexError: unsupported scheme, invalid option, or a missing local file.
    """
    open_source(uri)
    parsed = parse_uri(uri)
    if parsed.scheme == "file" and not os.path.exists(parsed.target):
        raise EdgeAlexError(parsed.target, "the source file does not exist", "check the path")


def _reject_extra(uri, extra, allowed):
    unknown = sorted(set(extra) - set(allowed))
    if unknown:
        raise EdgeAlexError(uri, "unknown source option(s): " + ", ".join(unknown),
                            "options here: " + ", ".join(COMMON_OPTIONS + tuple(allowed)))
