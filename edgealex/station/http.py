"""``--sink http://HOST:PORT``: the station's live page, read-only, served from the run itself.

Endpoints (GET only; any other method gets 501 from the standard library, so nothing can be
changed through the page)::

    /                   the page: annotated stream, live counters, last defect thumbnails (no
                        external resources: works on a LAN without internet)
    /status.json        the same numbers for scripts (see :meth:`HttpSink.status`)
    /stream.mjpg        MJPEG (multipart/x-mixed-replace), ``?fps=`` lowers the rate per client
    /snapshot.jpg       the latest annotated frame
    /thumbs/<id>.jpg    one defect thumbnail (ids are listed in /status.json)

URI options: ``fps`` (stream cap, default 10), ``width`` (stream width in pixels, default 640;
never upscaled), ``quality`` (JPEG 1-100, default 75), ``thumbs`` (defect thumbnails kept, default
12; one is made per encoder wake at most, so a burst of defects faster than ``fps`` keeps its
newest), ``token`` (then required as ``?token=`` on every request, compared in constant time),
``max_clients`` (concurrent streams, default 8), ``send_timeout_s`` (a client that cannot take a
frame within this time is dropped, default 2). The host defaults to 127.0.0.1: give
``http://0.0.0.0:8080`` to serve the LAN.

Threads: the loop's sink thread only keeps a reference to the newest frame when the capped rate
wants one (and to each defect frame); one encoder thread draws the overlay on a downscaled copy and
JPEG-encodes it at most ``fps`` times a second; each client has its own thread that sends the
newest encoded frame (frames in between are skipped, never queued). A slow or stalled client only
blocks its own thread until ``send_timeout_s``, then it is disconnected and counted.

Server: the standard library's ``http.server.HTTPServer`` with ``socketserver.ThreadingMixIn``
(Python 3.6 has no ``ThreadingHTTPServer``, docs.python.org/3/library/http.server.html, "New in
3.7"). Why the standard library: it ships with every Python the device side runs (3.6 on JetPack
4.6), is maintained with CPython, needs no extra on a Jetson, and a read-only page with a handful
of GET routes needs nothing more; MJPEG framing follows the WHATWG multipart/x-mixed-replace
registration (a boundary right after each part, so the browser shows it at once).
"""

import collections
import errno
import hmac
import json
import os
import select
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

from edgealex._optional import require
from edgealex.camera.sink import FrameSink, draw_overlay, verdict_kind
from edgealex.errors import EdgeAlexError
from edgealex.validate import check_float
from edgealex.log import logger
from edgealex.station import DeliveryLog, capture_start, option, port_of, redacted, split_uri
from edgealex.station.page import PAGE_HTML

OPTIONS = ("fps", "width", "quality", "thumbs", "token", "max_clients", "send_timeout_s")
EXAMPLE = "http://127.0.0.1:8080?fps=10"
DEFAULT_PORT = 8080
BOUNDARY = "edgealexframe"
THUMB_WIDTH = 192


class _Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True  # a client thread never keeps the process alive
    allow_reuse_address = True  # restart on the same port right after a run
    # listen backlog: a page load opens ~15 connections at once (thumbnails, status, stream); the
    # standard library's 5 made the kernel drop the rest while the accept thread waited for the GIL
    # on a busy device, and browsers retry a dropped SYN only after 1 s
    request_queue_size = 64


class _Server6(_Server):
    address_family = socket.AF_INET6


class HttpSink(FrameSink):
    """The live page (see the module docstring).

    Args:
        host (str): address to bind. Defaults to "127.0.0.1" (this machine only).
        port (int): TCP port; 0 picks a free one (see :attr:`port` after open). Defaults to 8080.
        fps (float): stream frame-rate cap, frames/s. Defaults to 10.
        width (int): stream width, pixels (frames are never upscaled). Defaults to 640.
        quality (int): JPEG quality 1-100. Defaults to 75.
        thumbs (int): defect thumbnails kept. Defaults to 12.
        token (str): access token required on every request. Defaults to None (none).
        max_clients (int): concurrent streams. Defaults to 8.
        send_timeout_s (float): a client that takes longer to accept a frame is dropped. Defaults to 2.
    """

    delivery_name = "http"

    def __init__(self, host="127.0.0.1", port=DEFAULT_PORT, fps=10.0, width=640, quality=75, thumbs=12, token=None,
                 max_clients=8, send_timeout_s=2.0, uri=None):
        self.host = host
        self.port = int(port)
        self.fps = check_float("http sink fps", fps, low=0, low_open=True, example="10")
        self.width = int(width)
        self.quality = int(quality)
        self.thumb_count = int(thumbs)
        self.token = token or None
        self.max_clients = int(max_clients)
        self.send_timeout_s = check_float("http sink send_timeout_s", send_timeout_s, low=0, low_open=True,
                                          example="2")
        self.uri = uri or f"http://{host}:{port}"
        self._delivery = DeliveryLog()
        self.deliveries_ms = self._delivery.deliveries_ms
        self._server = None
        self._threads = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._cond = threading.Condition()
        self._latest = None  # (seq, jpeg bytes, capture start) of the newest encoded frame
        # one-slot hand-overs to the encoder (append replaces, popleft takes: both atomic)
        self._pending = collections.deque(maxlen=1)  # (frame, result, pipeline_fps)
        self._pending_thumbs = collections.deque(maxlen=1)  # (image, brief) of the newest defect
        self._thumbs = collections.deque(maxlen=max(1, self.thumb_count))
        self._next_grab = 0.0
        self._thumb_seq = 0
        self._seq = 0
        self._last = None
        self._status_fn = None
        self._context = {}
        self._connections = set()
        self._lock = threading.Lock()
        self.frames = self.defects = 0
        self._clock = time.perf_counter  # seconds; tests drive the rate cap with their own clock
        self.counters = {"frames_grabbed": 0, "frames_encoded": 0, "frames_sent": 0, "clients": 0, "clients_max": 0,
                         "clients_dropped": 0, "clients_refused": 0, "requests": 0, "unauthorized": 0}

    @classmethod
    def from_uri(cls, uri):
        """Parse ``http://HOST:PORT[/]?fps=..&token=..``.

        Raises:
            EdgeAlexError: a path, an unknown option or a value out of range.
        """
        parts, opts = split_uri(uri, OPTIONS, EXAMPLE)
        if parts.fragment or str(uri).strip().endswith("#"):  # ?token=ab#cd would silently become 'ab'
            raise EdgeAlexError(uri, "'#' starts a URL fragment, which a sink URI cannot have",
                                "write '#' in a token as %23, e.g. ?token=ab%23cd")
        if "token" in opts and not opts["token"]:  # e.g. ?token=$TOKEN with the variable unset: never serve open
            raise EdgeAlexError(uri, "the access token is empty, so the page would be open to anyone",
                                "give a token, e.g. http://0.0.0.0:8080?token=CHANGE-ME, or leave ?token= out")
        if parts.path not in ("", "/"):
            raise EdgeAlexError(uri, f"the live page is served at the root, not at '{parts.path}'", "use " + EXAMPLE)
        return cls(host=parts.hostname or "127.0.0.1", port=port_of(uri, parts, DEFAULT_PORT, EXAMPLE),
                   fps=option(uri, opts, "fps", float, 10.0, 0.1, 60.0),
                   width=option(uri, opts, "width", int, 640, 32, 7680),
                   quality=option(uri, opts, "quality", int, 75, 1, 100),
                   thumbs=option(uri, opts, "thumbs", int, 12, 0, 100),
                   token=opts.get("token") or None,
                   max_clients=option(uri, opts, "max_clients", int, 8, 1, 256),
                   send_timeout_s=option(uri, opts, "send_timeout_s", float, 2.0, 0.1, 60.0),
                   uri=redacted(uri, parts, ("token",)))  # the summary and the JSONL name it: no token

    @property
    def url(self):
        """The page's address (with the token, when one is set)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/" + (f"?token={quote(self.token, safe='')}" if self.token else "")

    # -- FrameSink ------------------------------------------------------------------------------
    def open(self, context):
        require("cv2", "the live page (JPEG encoding)")
        self._context = dict(context or {})
        self._stop.clear()
        try:
            self._server = (_Server6 if ":" in self.host else _Server)((self.host, self.port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EdgeAlexError(self.uri, f"port {self.port} is already in use",
                                    f"stop what serves it, or pick another port: http://{self.host}:{self.port + 1}")
            if exc.errno == errno.EACCES:
                raise EdgeAlexError(self.uri, f"no permission to listen on port {self.port}",
                                    "ports below 1024 need root: use e.g. 8080")
            raise EdgeAlexError(self.uri, f"cannot listen on {self.host}:{self.port} ({exc.strerror or exc})",
                                "use an address of this machine, 127.0.0.1 or 0.0.0.0")
        self._server.station = self
        self.port = self._server.server_address[1]
        self._threads = [threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                          name="edgealex-http", daemon=True),
                         threading.Thread(target=self._encode_worker, name="edgealex-http-encoder", daemon=True)]
        for thread in self._threads:
            thread.start()
        logger.info("live view on %s%s", self.url, " (LAN)" if self.host in ("0.0.0.0", "::") else "")

    def bind_status(self, status_fn):
        """Use the loop's live counters (``run_loop`` calls this with ``_Loop.live_status``)."""
        self._status_fn = status_fn

    def write(self, item):
        result = item.result
        self.frames += 1
        self.defects += int(result.defect)
        self._last = result
        now = self._clock()
        wake = False
        if now >= self._next_grab:  # only as often as the capped rate needs a frame
            self._pending.append((item.frame, result, item.pipeline_fps))
            period = 1.0 / self.fps
            # from the due time, so the average rate is the cap; after a gap, from now (no burst)
            self._next_grab = now + period if now - self._next_grab > period else self._next_grab + period
            self.counters["frames_grabbed"] += 1
            wake = True
        if result.defect and self.thumb_count:  # made on the encoder's next wake (at most fps a second)
            self._pending_thumbs.append((item.frame.image, _brief(result)))
        if wake:
            self._wake.set()

    def finish(self):
        """Counters for the run summary."""
        return {"frames_encoded": self.counters["frames_encoded"], "frames_sent": self.counters["frames_sent"],
                "clients_max": self.counters["clients_max"], "clients_dropped": self.counters["clients_dropped"]}

    def close(self, summary=None):
        if self._server is None:
            return
        server, self._server = self._server, None
        self._stop.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # unblock client threads stuck in a send
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        for thread in self._threads:
            thread.join(5.0)
        self._threads = []

    # -- encoder thread -------------------------------------------------------------------------
    def _encode_worker(self):
        cv2 = require("cv2", "the live page (JPEG encoding)")
        params = [int(cv2.IMWRITE_JPEG_QUALITY), self.quality]
        self._seq = 0
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._encode_pending(cv2, params)
            except Exception as exc:  # one frame the page cannot show must not end the live view
                self.counters["encode_errors"] = self.counters.get("encode_errors", 0) + 1
                logger.warning("live view: cannot encode a frame (%s)", exc)

    def _encode_pending(self, cv2, params):
        pending = _take(self._pending)
        if pending is not None:
            frame, result, fps = pending
            image = _fit(cv2, frame.image, self.width)
            ok, jpeg = cv2.imencode(".jpg", draw_overlay(image, result, fps), params)
            if ok:
                self._seq += 1
                with self._cond:
                    self._latest = (self._seq, jpeg.tobytes(), capture_start(frame))
                    self._cond.notify_all()
                self.counters["frames_encoded"] += 1
        thumb = _take(self._pending_thumbs)  # the newest defect: a burst faster than the cap keeps its last
        if thumb is not None:
            image, brief = thumb
            ok, jpeg = cv2.imencode(".jpg", _fit(cv2, image, THUMB_WIDTH), params)
            if ok:
                self._thumb_seq += 1
                brief["id"] = self._thumb_seq
                self._thumbs.append((brief, jpeg.tobytes()))

    def wait_frame(self, after_seq, timeout_s):
        """The newest encoded frame with a sequence number above ``after_seq``, or None."""
        with self._cond:
            if (self._latest is None or self._latest[0] <= after_seq) and not self._stop.is_set():
                self._cond.wait(timeout_s)
            latest = self._latest
        if latest is None or latest[0] <= after_seq:
            return None
        return latest

    # -- status ---------------------------------------------------------------------------------
    def status(self):
        """The numbers of the page, as a JSON-ready dict.

        Keys: ``frames``, ``defects``, ``defect_rate`` (0..1), ``pipeline_fps`` and
        ``engine_fps`` (frames/s), ``dropped``, ``errors``, ``reconnects``, ``stalls`` (None when
        the source does not count them), ``elapsed_s``, ``last`` (the newest verdict),
        ``defects_recent`` (newest first: id, frame, time, class, confidence, thumbnail url),
        ``station`` (model, engine, threshold, defect classes), ``stream`` (fps cap, clients,
        frames encoded/sent, clients dropped), ``time`` (server epoch seconds).
        """
        live = dict(self._status_fn()) if self._status_fn is not None else {
            "frames": self.frames, "defects": self.defects, "dropped": None, "errors": None, "reconnects": None,
            "stalls": None, "pipeline_fps": None, "engine_fps": None, "elapsed_s": None}
        frames = live.get("frames") or 0
        live["defect_rate"] = round(live.get("defects", 0) / frames, 4) if frames else None
        last = self._last
        live["last"] = _brief(last) if last is not None else None
        live["defects_recent"] = [dict(brief, url=f"/thumbs/{brief['id']}.jpg") for brief, _ in reversed(list(self._thumbs))]
        engine = self._context.get("engine") or {}
        path = self._context.get("engine_path")
        model = engine.get("model") or engine.get("name") or path
        live["station"] = {"model": os.path.basename(str(model)) if model else None,
                           "engine_path": path,
                           "engine": engine, "threshold": self._context.get("threshold"),
                           "defect_classes": self._context.get("defect_classes"),
                           "source": (self._context.get("source") or {}).get("uri")}
        live["stream"] = {"fps_cap": self.fps, "width": self.width, "clients": self.counters["clients"],
                          "frames_encoded": self.counters["frames_encoded"],
                          "frames_sent": self.counters["frames_sent"],
                          "clients_dropped": self.counters["clients_dropped"]}
        live["time"] = round(time.time(), 3)
        return live

    def thumbnail(self, thumb_id):
        for brief, jpeg in list(self._thumbs):
            if brief["id"] == thumb_id:
                return jpeg
        return None

    def authorized(self, query):
        if self.token is None:
            return True
        given = dict(parse_qsl(query)).get("token", "")
        return hmac.compare_digest(given.encode("utf-8"), self.token.encode("utf-8"))


def _take(slot):
    try:
        return slot.popleft()
    except IndexError:
        return None


def _brief(result):
    return {"frame": result.index, "time": round(result.timestamp, 3), "class": result.top_class,
            "confidence": round(float(result.confidence), 4), "defect": bool(result.defect),
            "verdict": verdict_kind(result)}


def _fit(cv2, image, width):
    h, w = image.shape[:2]
    if w <= width:
        return image
    size = (width, max(1, int(round(h * width / float(w)))))
    step = w // (2 * width)  # a large reduction: decimate first (INTER_AREA's cost grows with the factor)
    if step >= 2:
        image = image[::step, ::step]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _peer_closed(sock):
    """True when the client closed its end (readable with nothing to read); never blocks."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class _Handler(BaseHTTPRequestHandler):
    server_version = "edgealex-station"
    protocol_version = "HTTP/1.0"

    def setup(self):
        self.station = self.server.station
        self.request.settimeout(self.station.send_timeout_s)
        super().setup()

    def log_message(self, format, *args):  # noqa: A002 (the standard library's name)
        logger.debug("http %s: " + format, self.client_address[0], *args)

    def do_GET(self):
        station = self.station
        station.counters["requests"] += 1
        parts = urlsplit(self.path)
        if not station.authorized(parts.query):
            station.counters["unauthorized"] += 1
            return self._send(401, "text/plain; charset=utf-8", b"token required: add ?token=... to the address\n")
        path = parts.path
        try:
            if path in ("/", "/index.html"):
                return self._send(200, "text/html; charset=utf-8", PAGE_HTML.encode("utf-8"))
            if path == "/status.json":
                body = json.dumps(station.status(), separators=(",", ":"), default=str).encode("utf-8")
                return self._send(200, "application/json", body)
            if path == "/snapshot.jpg":
                latest = station.wait_frame(0, 2.0)
                if latest is None:
                    return self._send(503, "text/plain; charset=utf-8", b"no frame yet\n")
                return self._send(200, "image/jpeg", latest[1])
            if path.startswith("/thumbs/") and path.endswith(".jpg"):
                try:
                    jpeg = station.thumbnail(int(path[len("/thumbs/"):-len(".jpg")]))
                except ValueError:
                    jpeg = None
                if jpeg is None:
                    return self._send(404, "text/plain; charset=utf-8", b"no such thumbnail (only the last ones are kept)\n")
                return self._send(200, "image/jpeg", jpeg)
            if path == "/stream.mjpg":
                return self._stream(dict(parse_qsl(parts.query)))
            return self._send(404, "text/plain; charset=utf-8", b"not found: try / /status.json /stream.mjpg\n")
        except (socket.timeout, OSError):  # the client went away or stopped reading
            return None

    def _send(self, code, content_type, body):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, query):
        station = self.station
        try:
            fps = min(station.fps, max(0.1, float(query.get("fps", station.fps))))
        except ValueError:
            return self._send(400, "text/plain; charset=utf-8", b"fps must be a number\n")
        with station._lock:
            if station.counters["clients"] >= station.max_clients:
                station.counters["clients_refused"] += 1
                refused = True
            else:
                refused = False
                station.counters["clients"] += 1
                station.counters["clients_max"] = max(station.counters["clients_max"], station.counters["clients"])
                station._connections.add(self.request)
        if refused:
            return self._send(503, "text/plain; charset=utf-8", b"too many viewers\n")
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-cache, no-store")
            self.send_header("Pragma", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(f"--{BOUNDARY}\r\n".encode("ascii"))
            # at the sink's cap the encoder already paces the frames: send each one as soon as it
            # exists; a viewer asking for less waits out its own period first
            period = 1.0 / fps if fps < station.fps else 0.0
            seq = 0
            next_at = 0.0
            while not station._stop.is_set():
                wait = next_at - time.monotonic()
                if wait > 0 and station._stop.wait(wait):
                    break
                latest = station.wait_frame(seq, 1.0)
                if latest is None:
                    if _peer_closed(self.request):  # no frames flow (a stall): only a read tells who left
                        break
                    continue
                seq, jpeg, started = latest
                next_at = time.monotonic() + period
                head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode("ascii")
                # the boundary right after the part: the browser shows the frame without waiting for the next
                self.wfile.write(head + jpeg + f"\r\n--{BOUNDARY}\r\n".encode("ascii"))
                station._delivery.record(started)
                station.counters["frames_sent"] += 1
        except socket.timeout:
            station.counters["clients_dropped"] += 1  # too slow or stalled: dropped, never waited for
            logger.info("live view: dropped a client that took over %.1f s to accept a frame (%s)",
                        station.send_timeout_s, self.client_address[0])
        except OSError:
            pass  # the viewer left, or the run is stopping
        finally:
            with station._lock:
                station.counters["clients"] -= 1
                station._connections.discard(self.request)
        self.close_connection = True
