"""Live cameras and streams: ``csi://0`` (Jetson CSI via GStreamer), ``v4l2:///dev/video0`` /
``/dev/video0`` / ``0`` (USB), ``rtsp://...`` (network).

Options::

    width, height, fps      capture mode requested from the camera (CSI default 1280x720@30)
    flip=0                  CSI only: nvvidconv flip-method (0 none, 2 rotate 180, ...)
    latency=200             RTSP jitter buffer in ms (GStreamer pipeline only)
    api=auto                OpenCV backend: auto, gstreamer, v4l2, ffmpeg, any
    backoff=0.5             first reconnect delay in s (doubles up to max_backoff)
    max_backoff=8           longest reconnect delay in s
    open_timeout=10         longest wait for one open in s (cut to the run's --duration)

A camera that stops delivering frames (cable pulled, stream lost, a server that freezes: no new
frame for the stall timeout, ``edgealex run --stall-timeout``, 10 s by default) is released and
reopened with exponential backoff; while it is away :meth:`capture` returns None ("no frame
yet"), and the gap (start, length, reason) is logged as a disconnect and a reconnect event and
counted in the source's stats. Only the first open fails hard. No OpenCV call can hang the
caller: opens and reads run in a worker thread with a bounded wait (FFmpeg's own open/read
timeouts are set too where this OpenCV has them).

``csi://`` needs OpenCV built with GStreamer. PyPI's opencv-python wheels are built without it;
JetPack's own OpenCV has it.
"""

import atexit
import re
import threading
import time

from edgealex._optional import require
from edgealex.camera.source import RTSP_OPTIONS, FrameSource, _option, _reject_extra
from edgealex.errors import EdgeAlexError
from edgealex.log import logger
from edgealex.preprocess import to_bgr_uint8

CSI_DEFAULT = (1280, 720, 30.0)
APIS = ("auto", "gstreamer", "v4l2", "ffmpeg", "any")
FAILED_READS_BEFORE_RECONNECT = 3
DEFAULT_OPEN_TIMEOUT_S = 10.0
_SCHEME_OPTIONS = {"csi": ("flip", "api", "backoff", "max_backoff", "open_timeout"),
                   "v4l2": ("api", "backoff", "max_backoff", "open_timeout"),
                   "rtsp": RTSP_OPTIONS}


def gstreamer_available(cv2=None):
    """True when this OpenCV was built with GStreamer ("GStreamer: YES" in its build information)."""
    cv2 = cv2 or require("cv2", "camera capture")
    match = re.search(r"GStreamer:\s*(\S+)", cv2.getBuildInformation())
    return bool(match) and match.group(1).upper().startswith("YES")


def gstreamer_missing_error(uri, cv2):
    version = getattr(cv2, "__version__", "?")
    return EdgeAlexError(
        uri, f"this OpenCV ({version}, at {getattr(cv2, '__file__', '?')}) was built without GStreamer, which "
             "CSI cameras need (nvarguscamerasrc)",
        "use JetPack's OpenCV, not a pip wheel: pip uninstall opencv-python opencv-python-headless "
        "(in this environment), then sudo apt install python3-opencv; check with "
        "python3 -c \"import cv2; print(cv2.getBuildInformation())\" | grep GStreamer")


def csi_pipeline(sensor_id=0, width=CSI_DEFAULT[0], height=CSI_DEFAULT[1], fps=CSI_DEFAULT[2], flip=0):
    """The nvarguscamerasrc -> BGR appsink pipeline for ``cv2.VideoCapture(..., cv2.CAP_GSTREAMER)``.

    ``drop=true max-buffers=1 sync=false`` keeps only the newest frame in the appsink, so a slow
    consumer sees fresh frames instead of a growing backlog.
    """
    rate = max(1, int(round(fps)))
    return (f"nvarguscamerasrc sensor-id={int(sensor_id)} ! "
            f"video/x-raw(memory:NVMM), width=(int){int(width)}, height=(int){int(height)}, "
            f"framerate=(fraction){rate}/1 ! nvvidconv flip-method={int(flip)} ! "
            f"video/x-raw, width=(int){int(width)}, height=(int){int(height)}, format=(string)BGRx ! "
            "videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false")


def rtsp_pipeline(url, latency_ms=200):
    """A generic RTSP -> BGR appsink GStreamer pipeline (decodebin picks the decoder)."""
    return (f"rtspsrc location={url} latency={int(latency_ms)} ! decodebin ! videoconvert ! "
            "video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false")


class CameraSource(FrameSource):
    """A live camera or stream read through ``cv2.VideoCapture``, with reconnection.

    Args:
        uri (str): the URI, for records and messages.
        scheme (str): "csi", "v4l2" or "rtsp".
        target (str): sensor id, device path/index, or stream URL.
        width, height, fps: requested capture mode (None = the camera's default; CSI 1280x720@30).
        flip (int): CSI flip-method. Defaults to 0.
        latency_ms (int): RTSP jitter buffer (GStreamer). Defaults to 200.
        api (str): "auto", "gstreamer", "v4l2", "ffmpeg" or "any". Defaults to "auto".
        backoff_s (float): first reconnect delay. Defaults to 0.5.
        max_backoff_s (float): longest reconnect delay. Defaults to 8.
        open_timeout_s (float): longest wait for one open (cut to a run's deadline). Defaults to 10.

    Every OpenCV call (open, read) runs in a :class:`_Worker` thread and the caller waits at most
    its ``timeout_ms``: :meth:`capture` never blocks longer, whatever the backend does. No new
    frame for ``stall_timeout_s`` (see :meth:`FrameSource.set_limits`) is a disconnect.
    """

    live = True
    resize_output = False
    live_pacing_by_device = True

    def __init__(self, uri, scheme, target, width=None, height=None, fps=None, flip=0, latency_ms=200,
                 api="auto", backoff_s=0.5, max_backoff_s=8.0, open_timeout_s=DEFAULT_OPEN_TIMEOUT_S):
        if scheme == "csi":
            width, height = width or CSI_DEFAULT[0], height or CSI_DEFAULT[1]
            fps = fps or CSI_DEFAULT[2]
        super().__init__(uri, width, height, fps, loop=False)
        if api not in APIS:
            raise EdgeAlexError(uri, f"unknown api={api!r}", "use one of: " + ", ".join(APIS))
        if backoff_s <= 0 or max_backoff_s < backoff_s:
            raise EdgeAlexError(uri, "backoff must be > 0 and max_backoff >= backoff", "e.g. backoff=0.5&max_backoff=8")
        self.kind = scheme
        self.scheme = scheme
        self.target = str(target)
        self.flip = int(flip)
        self.latency_ms = int(latency_ms)
        self.api = api
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.open_timeout_s = float(open_timeout_s)
        if not self.open_timeout_s > 0:
            raise EdgeAlexError(uri, f"open_timeout must be > 0 seconds, got {open_timeout_s}", "e.g. open_timeout=10")
        self._cap = None
        self._worker = None
        self._backend_timeouts = False
        self._failed_reads = 0
        self._last_frame_at = 0.0
        self._last_frame_wall = 0.0
        self._gap_started = None
        self._gap_start_wall = 0.0
        self._gap_reason = ""
        self._attempt_budget_s = 0.0
        self.stats.stalls = 0
        self._next_attempt = 0.0
        self._delay_s = self.backoff_s

    @classmethod
    def from_uri(cls, parsed, common, extra):
        _reject_extra(parsed.uri, extra, _SCHEME_OPTIONS[parsed.scheme])
        if common["loop"]:
            logger.warning("%s: loop applies to files and folders only; ignored for a live source", parsed.uri)
        return cls(parsed.uri, parsed.scheme, parsed.target, common["width"], common["height"], common["fps"],
                   flip=_option(extra, "flip", int, 0, parsed.uri),
                   latency_ms=_option(extra, "latency", int, 200, parsed.uri),
                   api=str(extra.get("api", "auto")).lower(),
                   backoff_s=_option(extra, "backoff", float, 0.5, parsed.uri),
                   max_backoff_s=_option(extra, "max_backoff", float, 8.0, parsed.uri),
                   open_timeout_s=_option(extra, "open_timeout", float, DEFAULT_OPEN_TIMEOUT_S, parsed.uri))

    # -- opening ----------------------------------------------------------------------------------
    def _capture_args(self, cv2):
        """(what to open, OpenCV api id, whether to set width/height/fps properties)."""
        gst = getattr(cv2, "CAP_GSTREAMER", 1800)
        if self.scheme == "csi":
            if self.api not in ("auto", "gstreamer"):
                raise EdgeAlexError(self.uri, "CSI cameras open only through GStreamer", "drop the api option")
            if not gstreamer_available(cv2):
                raise gstreamer_missing_error(self.uri, cv2)
            return csi_pipeline(self.target, self.width, self.height, self.fps, self.flip), gst, False
        if self.scheme == "rtsp":
            if self.api == "gstreamer":
                if not gstreamer_available(cv2):
                    raise gstreamer_missing_error(self.uri, cv2)
                return rtsp_pipeline(self.target, self.latency_ms), gst, False
            api = {"auto": cv2.CAP_FFMPEG, "ffmpeg": cv2.CAP_FFMPEG}.get(self.api, cv2.CAP_ANY)
            return self.target, api, False
        # /dev/videoN opens by index: not every OpenCV build's V4L2 backend opens by file name.
        match = re.fullmatch(r"(?:/dev/video)?(\d+)", self.target)
        device = int(match.group(1)) if match else self.target
        api = {"auto": getattr(cv2, "CAP_V4L2", cv2.CAP_ANY), "v4l2": getattr(cv2, "CAP_V4L2", cv2.CAP_ANY),
               "ffmpeg": cv2.CAP_FFMPEG, "gstreamer": gst}.get(self.api, cv2.CAP_ANY)
        return device, api, True

    def _try_open(self):
        """A working VideoCapture, or None. Runs in a :class:`_Worker` (it may block)."""
        cv2 = require("cv2", "camera capture")
        what, api, set_props = self._capture_args(cv2)
        from edgealex.calib.images import quiet_opencv

        cap = None
        params = self._timeout_params(cv2, api)
        with quiet_opencv():
            if params:
                try:
                    cap = cv2.VideoCapture(what, api, params)
                except (TypeError, cv2.error):  # OpenCV < 4.5.2: no parameters at open
                    cap = None
                    self._backend_timeouts = False
            if cap is None:
                cap = cv2.VideoCapture(what, api)
        if not cap.isOpened():
            cap.release()
            return None
        if set_props:
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                                (cv2.CAP_PROP_FPS, self.fps)):
                if value:
                    cap.set(prop, float(value))
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a stale driver queue (where supported)
        return cap

    def _timeout_params(self, cv2, api):
        """OpenCV's open/read timeouts for the FFmpeg backend (OpenCV >= 4.5.2), else [].

        Source: OpenCV videoio flags CAP_PROP_OPEN_TIMEOUT_MSEC / CAP_PROP_READ_TIMEOUT_MSEC, honoured
        by the FFmpeg backend only (https://docs.opencv.org/4.x/d4/d15/group__videoio__flags__base.html).
        """
        if api != getattr(cv2, "CAP_FFMPEG", None) or not hasattr(cv2, "CAP_PROP_READ_TIMEOUT_MSEC"):
            self._backend_timeouts = False
            return []
        self._backend_timeouts = True
        # FFmpeg gives up a little before the watchdog would, so its thread ends on its own.
        return [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(max(0.1, 0.8 * self._open_budget_s()) * 1e3),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.stall_timeout_s * 1e3)]

    def _open_budget_s(self):
        """How long one open may take: ``open_timeout``, cut to what is left before the deadline."""
        budget = self.open_timeout_s
        if self.deadline is not None:
            budget = min(budget, max(0.05, self.deadline - time.perf_counter()))
        return budget

    def open_impl(self):
        budget = self._open_budget_s()
        worker = _Worker(f"edgealex-{self.scheme}-open")
        worker.submit(self._try_open)
        outcome = worker.wait(budget)
        if outcome is None:  # still blocked inside OpenCV: leave it behind, release whatever it opens
            worker.abandon(_release_cap)
            raise self._open_error(f"no answer within {budget:.1f} s")
        cap = _result(outcome)
        if cap is None:
            worker.stop()
            timed_out = self._backend_timeouts and worker.running_for() >= 0.75 * budget
            raise self._open_error(f"no answer within {budget:.1f} s" if timed_out else None)
        self._started(cap, worker)
        self._delay_s = self.backoff_s

    def _started(self, cap, worker):
        self._cap = cap
        self._worker = worker
        self._failed_reads = 0
        self._last_frame_at = time.perf_counter()
        self._last_frame_wall = time.time()

    def _open_error(self, why=None):
        suffix = f" ({why})" if why else ""
        if self.scheme == "csi":
            return EdgeAlexError(self.uri, "could not open the CSI camera" + suffix,
                                 "check the ribbon cable and sensor id; restart the daemon (sudo systemctl restart "
                                 "nvargus-daemon); in a container mount /tmp/argus_socket")
        if self.scheme == "rtsp":
            return EdgeAlexError(self.uri, "could not open the stream" + suffix,
                                 "check the URL, credentials and network; a slow server may need "
                                 "open_timeout=30 in the URI")
        return EdgeAlexError(self.uri, f"could not open camera {self.target}" + suffix,
                             "list cameras with ls /dev/video*; check the user is in the 'video' group "
                             "and no other program holds the camera")

    def close_impl(self):
        cap, worker = self._cap, self._worker
        self._cap = self._worker = None
        if worker is not None:
            if worker.busy:  # a read or open still blocked in OpenCV: it releases its capture when it returns
                worker.abandon(_release_cap if cap is None else (lambda _value: cap.release()))
                cap = None
            else:
                worker.stop()
        if cap is not None:
            cap.release()
        self.finish_gap()

    def finish_gap(self):
        """Record a gap still open when the run ends (its start, its length so far) as an event."""
        if self._gap_started is None:
            return
        gap_s = time.perf_counter() - self._gap_started
        self._gap_started = None
        self.stats.reconnect_gap_s += gap_s
        reason = self._gap_reason + "; still disconnected at the end"
        self.note_gap(self._gap_start_wall, gap_s, reason)
        self.note_event(f"{reason} ({gap_s:.2f} s gap)", kind="disconnected_at_end",
                        gap_start=round(self._gap_start_wall, 3), gap_s=round(gap_s, 3))

    # -- reading with stall detection and reconnection ------------------------------------------------
    def _watchdog_s(self):
        # With FFmpeg's own read timeout (= stall_timeout) the read normally returns first; the
        # watchdog is the backstop for backends that can block without limit (V4L2, GStreamer).
        return self.stall_timeout_s + (1.0 if self._backend_timeouts else 0.0)

    def read_impl(self, timeout_ms):
        if self._cap is None:
            return self._reconnect(timeout_ms)
        worker = self._worker
        if not worker.busy:
            worker.submit(self._cap.read)
        outcome = worker.wait(timeout_ms / 1e3)
        now = time.perf_counter()
        if outcome is None:
            stalled_s = now - self._last_frame_at
            if stalled_s >= self._watchdog_s():
                self._disconnect(f"no new frame for {stalled_s:.1f} s (stream stalled)", abandon=True, stall=True)
            return None
        ok, image = outcome
        if ok:
            ok, image = image if isinstance(image, tuple) else (False, None)
        if ok and image is not None and getattr(image, "size", 0):
            self._failed_reads = 0
            self._last_frame_at = now
            self._last_frame_wall = time.time()
            return to_bgr_uint8(image), None, None
        self._failed_reads += 1
        stalled_s = now - self._last_frame_at
        if stalled_s >= self.stall_timeout_s:
            self._disconnect(f"no new frame for {stalled_s:.1f} s (stream stalled)", stall=True)
        elif self._failed_reads >= FAILED_READS_BEFORE_RECONNECT:
            self._disconnect(f"no frame after {self._failed_reads} reads (camera disconnected?)")
        return None

    def _disconnect(self, reason, abandon=False, stall=False):
        """Drop the capture (a stall or failed reads), log the gap's start, schedule a reopen."""
        cap, worker = self._cap, self._worker
        self._cap = self._worker = None
        if abandon:
            worker.abandon(lambda _value: cap.release())
        else:
            worker.stop()
            cap.release()
        self._gap_started = self._last_frame_at
        self._gap_start_wall = self._last_frame_wall
        self._gap_reason = reason
        if stall:
            self.stats.stalls += 1
        self._next_attempt = time.perf_counter() + self._delay_s
        self.note_event(f"{reason}; reconnecting", kind="disconnect", gap_start=round(self._gap_start_wall, 3))

    def _reconnect(self, timeout_ms):
        worker = self._worker
        if worker is None:  # no attempt in flight: wait out the backoff, then start one
            wait_s = self._next_attempt - time.perf_counter()
            if wait_s > 0:
                time.sleep(min(wait_s, timeout_ms / 1e3))
                if wait_s > timeout_ms / 1e3:
                    return None
            worker = self._worker = _Worker(f"edgealex-{self.scheme}-reopen")
            worker.submit(self._try_open)
            self._attempt_budget_s = self.open_timeout_s
        outcome = worker.wait(timeout_ms / 1e3)
        if outcome is None:
            if worker.running_for() < self._attempt_budget_s + (1.0 if self._backend_timeouts else 0.0):
                return None
            worker.abandon(_release_cap)
            self._worker = None
            cap = None
        else:
            cap = _result(outcome, default=None)
        if cap is None:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None
            self._delay_s = min(self._delay_s * 2, self.max_backoff_s)
            self._next_attempt = time.perf_counter() + self._delay_s
            logger.debug("%s: reconnect failed; next try in %.1f s", self.uri, self._delay_s)
            return None
        gap_s = time.perf_counter() - self._gap_started
        self._started(cap, worker)
        self._delay_s = self.backoff_s
        self._gap_started = None
        self.stats.reconnects += 1
        self.stats.reconnect_gap_s += gap_s
        self.note_gap(self._gap_start_wall, gap_s, self._gap_reason)
        self.note_event(f"reconnected after a {gap_s:.2f} s gap", kind="reconnect",
                        gap_start=round(self._gap_start_wall, 3), gap_s=round(gap_s, 3))
        return None  # the next capture reads from the reopened camera

    def describe(self):
        info = super().describe()
        info.update({"target": self.target, "api": self.api})
        if self.scheme == "csi":
            info["flip"] = self.flip
        return info


def _release_cap(cap):
    if cap is not None:
        cap.release()


def _result(outcome, default=None):
    """The value of a finished worker call; an exception inside OpenCV counts as ``default``."""
    ok, value = outcome
    if ok:
        return value
    if isinstance(value, EdgeAlexError):  # a settings problem found while opening: the user's to fix
        raise value
    logger.debug("capture call failed: %r", value)
    return default


class _Worker:
    """A daemon thread that runs one call at a time for a caller that waits a bounded time.

    OpenCV's capture calls can block without limit on backends without timeout properties (V4L2,
    GStreamer, FFmpeg before OpenCV 4.5.2). The caller stays responsive and may :meth:`abandon`
    a worker stuck in a call: the thread then hands the call's result to a cleanup function
    (release the capture) when the call returns, and ends.
    """

    def __init__(self, name):
        self._cond = threading.Condition()
        self._call = None
        self._outcome = None
        self._started_at = None
        self._cleanup = None
        self._stopping = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    @property
    def busy(self):
        """A call is running or its outcome has not been collected."""
        return self._call is not None or self._outcome is not None

    def running_for(self):
        started = self._started_at
        return 0.0 if started is None else time.perf_counter() - started

    def submit(self, call):
        with self._cond:
            self._call = call
            self._outcome = None
            self._started_at = time.perf_counter()
            self._cond.notify_all()

    def wait(self, timeout_s):
        """(True, value) or (False, exception) once the call finished; None if still running."""
        with self._cond:
            if self._outcome is None and self._call is not None:
                self._cond.wait(max(0.0, timeout_s))
            outcome, self._outcome = self._outcome, None
            return outcome

    def abandon(self, cleanup):
        """Stop waiting for this worker; ``cleanup(value)`` runs on the result of a call in flight."""
        with self._cond:
            if self._call is None:
                outcome, self._outcome = self._outcome, None
                self._stopping = True
                self._cond.notify_all()
            else:
                self._cleanup = cleanup
                with _ABANDONED_LOCK:
                    _ABANDONED.add(self)
                return
        if outcome is not None and outcome[0]:
            cleanup(outcome[1])

    def stop(self):
        with self._cond:
            self._stopping = True
            self._outcome = None
            self._cond.notify_all()

    def _run(self):
        try:
            self._serve()
        finally:
            with _ABANDONED_LOCK:
                _ABANDONED.discard(self)

    def _serve(self):
        while True:
            with self._cond:
                while self._call is None and not self._stopping:
                    self._cond.wait()
                if self._call is None:
                    return
                call = self._call
            try:
                outcome = (True, call())
            except Exception as exc:  # handed to the caller
                outcome = (False, exc)
            with self._cond:
                self._call = None
                cleanup = self._cleanup
                if cleanup is None:
                    self._outcome = outcome
                    self._cond.notify_all()
                    continue
            if outcome[0]:
                try:
                    cleanup(outcome[1])
                except Exception as exc:  # a late release must not kill anything
                    logger.debug("releasing an abandoned capture: %r", exc)
            return


# Workers abandoned inside an OpenCV call. At exit they get a bounded time to return: tearing the
# interpreter down while a thread is inside FFmpeg can abort the process ("terminate called
# without an active exception").
_ABANDONED = set()
_ABANDONED_LOCK = threading.Lock()
EXIT_JOIN_S = 15.0


def _join_abandoned():
    deadline = time.perf_counter() + EXIT_JOIN_S
    with _ABANDONED_LOCK:
        workers = list(_ABANDONED)
    for worker in workers:
        worker.thread.join(max(0.0, deadline - time.perf_counter()))


atexit.register(_join_abandoned)
