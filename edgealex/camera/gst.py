"""Live cameras and streams: ``csi://0`` (Jetson CSI via GStreamer), ``v4l2:///dev/video0`` /
``/dev/video0`` / ``0`` (USB), ``rtsp://...`` (network).

Options::

    width, height, fps      capture mode requested from the camera (CSI default 1280x720@30)
    flip=0                  CSI only: nvvidconv flip-method (0 none, 2 rotate 180, ...)
    latency=200             RTSP jitter buffer in ms (GStreamer pipeline only)
    api=auto                OpenCV backend: auto, gstreamer, v4l2, ffmpeg, any
    backoff=0.5             first reconnect delay in s (doubles up to max_backoff)
    max_backoff=8           longest reconnect delay in s

A camera that stops delivering frames (cable pulled, stream lost) is released and reopened with
exponential backoff; while it is away :meth:`capture` returns None ("no frame yet"), and the gap
is logged and counted in the source's stats. Only the first open fails hard.

``csi://`` needs OpenCV built with GStreamer. PyPI's opencv-python wheels are built without it;
JetPack's own OpenCV has it.
"""

import re
import time

from edgealex._optional import require
from edgealex.camera.source import FrameSource, _option, _reject_extra
from edgealex.errors import EdgeAlexError
from edgealex.log import logger
from edgealex.preprocess import to_bgr_uint8

CSI_DEFAULT = (1280, 720, 30.0)
APIS = ("auto", "gstreamer", "v4l2", "ffmpeg", "any")
FAILED_READS_BEFORE_RECONNECT = 3
_SCHEME_OPTIONS = {"csi": ("flip", "api", "backoff", "max_backoff"),
                   "v4l2": ("api", "backoff", "max_backoff"),
                   "rtsp": ("latency", "api", "backoff", "max_backoff")}


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
    """

    live = True
    resize_output = False
    live_pacing_by_device = True

    def __init__(self, uri, scheme, target, width=None, height=None, fps=None, flip=0, latency_ms=200,
                 api="auto", backoff_s=0.5, max_backoff_s=8.0):
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
        self._cap = None
        self._failed_reads = 0
        self._gap_started = None
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
                   max_backoff_s=_option(extra, "max_backoff", float, 8.0, parsed.uri))

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
        """A working VideoCapture, or None."""
        cv2 = require("cv2", "camera capture")
        what, api, set_props = self._capture_args(cv2)
        from edgealex.calib.images import quiet_opencv

        with quiet_opencv():
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

    def open_impl(self):
        cap = self._try_open()
        if cap is None:
            raise self._open_error()
        self._cap = cap
        self._failed_reads = 0
        self._delay_s = self.backoff_s

    def _open_error(self):
        if self.scheme == "csi":
            return EdgeAlexError(self.uri, "could not open the CSI camera",
                                 "check the ribbon cable and sensor id; restart the daemon (sudo systemctl restart "
                                 "nvargus-daemon); in a container mount /tmp/argus_socket")
        if self.scheme == "rtsp":
            return EdgeAlexError(self.uri, "could not open the stream", "check the URL, credentials and network")
        return EdgeAlexError(self.uri, f"could not open camera {self.target}",
                             "list cameras with ls /dev/video*; check the user is in the 'video' group "
                             "and no other program holds the camera")

    def close_impl(self):
        if self._cap is not None:
            self._cap.release()
        self._cap = None
        if self._gap_started is not None:
            self.stats.reconnect_gap_s += time.perf_counter() - self._gap_started
            self._gap_started = None

    # -- reading with reconnection ------------------------------------------------------------------
    def read_impl(self, timeout_ms):
        if self._cap is None:
            return self._reconnect(timeout_ms)
        ok, image = self._cap.read()
        if ok and image is not None and getattr(image, "size", 0):
            self._failed_reads = 0
            return to_bgr_uint8(image), None, None
        self._failed_reads += 1
        if self._failed_reads >= FAILED_READS_BEFORE_RECONNECT:
            self._cap.release()
            self._cap = None
            self._gap_started = time.perf_counter()
            self._next_attempt = self._gap_started + self._delay_s
            self.note_event(f"no frame after {self._failed_reads} reads (camera disconnected?); reconnecting")
        return None

    def _reconnect(self, timeout_ms):
        now = time.perf_counter()
        wait_s = self._next_attempt - now
        if wait_s > 0:
            time.sleep(min(wait_s, timeout_ms / 1e3))
            if wait_s > timeout_ms / 1e3:
                return None
        cap = self._try_open()
        if cap is None:
            self._delay_s = min(self._delay_s * 2, self.max_backoff_s)
            self._next_attempt = time.perf_counter() + self._delay_s
            logger.debug("%s: reconnect failed; next try in %.1f s", self.uri, self._delay_s)
            return None
        gap_s = time.perf_counter() - self._gap_started
        self._cap = cap
        self._failed_reads = 0
        self._delay_s = self.backoff_s
        self._gap_started = None
        self.stats.reconnects += 1
        self.stats.reconnect_gap_s += gap_s
        self.note_event(f"reconnected after a {gap_s:.2f} s gap")
        return None  # the next capture reads from the reopened camera

    def describe(self):
        info = super().describe()
        info.update({"target": self.target, "api": self.api})
        if self.scheme == "csi":
            info["flip"] = self.flip
        return info
