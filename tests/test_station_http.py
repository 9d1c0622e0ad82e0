"""The live page (http:// sink): endpoints, MJPEG framing, rate cap, token, read-only, slow and
many clients, clean stop, and the page rendered by a real headless Chromium while a run goes."""

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO
from station_helpers import free_port
from test_runtime_models import ort_engine

pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

from edgealex.camera import open_sink, open_source  # noqa: E402
from edgealex.camera.sink import SinkItem  # noqa: E402
from edgealex.camera.source import Frame  # noqa: E402
from edgealex.errors import EdgeAlexError  # noqa: E402
from edgealex.pipeline.loop import run_loop  # noqa: E402
from edgealex.station.http import HttpSink  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ALL_DEFECTS = "ok,scratch,stain,crack,hole"  # every frame a defect: thumbnails for sure


def _runner(path):
    from edgealex.runtime.registry import load_runner

    return load_runner(path)


class Run:
    """A loop running in a thread until :meth:`stop`; ``frames`` counts verdicts as they come."""

    def __init__(self, engine, sinks, source="synthetic://?fps=30&pool=1", **kwargs):
        self.sinks = sinks
        self.frames = 0
        self.summary = None
        self.error = None
        self._stop = threading.Event()
        self._progress = threading.Condition()

        def on_frame(result):
            with self._progress:
                self.frames += 1
                self._progress.notify_all()
            return not self._stop.is_set()

        def go():
            try:
                self.summary = run_loop(_runner(engine), open_source(source), sinks, on_frame=on_frame, **kwargs)
            except BaseException as exc:  # handed to the test
                self.error = exc
            finally:
                with self._progress:
                    self._progress.notify_all()

        self.thread = threading.Thread(target=go, daemon=True)
        self.thread.start()

    def wait_frames(self, count, timeout_s=60.0):
        deadline = time.monotonic() + timeout_s
        with self._progress:
            while self.frames < count and self.error is None and self.thread.is_alive():
                if time.monotonic() > deadline:
                    raise AssertionError(f"only {self.frames} frames in {timeout_s} s")
                self._progress.wait(0.5)
        if self.error is not None:
            raise self.error

    def stop(self):
        self._stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.summary


@contextlib.contextmanager
def running(engine, uri, **kwargs):
    sink = open_sink(uri)
    run = Run(engine, [sink], **kwargs)
    try:
        run.wait_frames(5)
        yield sink, run
    finally:
        if run.thread.is_alive():
            run.stop()


def _get(url, timeout=20):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.headers, response.read()


def _status_code(url, method="GET"):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=20) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def _read_parts(port, count, query="", timeout=30):
    """The first ``count`` JPEG parts of /stream.mjpg, checked against the multipart framing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(f"GET /stream.mjpg{query} HTTP/1.0\r\n\r\n".encode())
    data = b""
    parts = []
    try:
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, data = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.0 200")
        boundary = re.search(rb"boundary=(\S+)", head).group(1)
        assert b"multipart/x-mixed-replace" in head and b"no-cache" in head
        while len(parts) < count:
            match = re.match(rb"--" + boundary + rb"\r\nContent-Type: image/jpeg\r\nContent-Length: (\d+)\r\n\r\n", data)
            if match is None or len(data) < match.end() + int(match.group(1)) + 2:
                chunk = sock.recv(65536)
                assert chunk, "the stream ended"
                data += chunk
                continue
            size = int(match.group(1))
            jpeg = data[match.end():match.end() + size]
            assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
            assert data[match.end() + size:match.end() + size + 2] == b"\r\n"
            parts.append(jpeg)
            data = data[match.end() + size + 2:]
    finally:
        sock.close()
    return parts


def test_page_status_snapshot_thumbs_and_read_only(tmp_path):
    engine = ort_engine(tmp_path)
    port = free_port()
    with running(engine, f"http://127.0.0.1:{port}?fps=20", defect_classes=ALL_DEFECTS, threshold=0.0) as (sink, run):
        base = f"http://127.0.0.1:{port}"
        code, headers, page = _get(base + "/")
        text = page.decode()
        assert code == 200 and "text/html" in headers["Content-Type"] and "edgealex station" in text
        assert not re.search(r"(src|href)=\"(https?:)?//", text) and "cdn" not in text.lower()  # works offline
        run.wait_frames(run.frames + 3)
        status = json.loads(_get(base + "/status.json")[2])
        for key in ("frames", "defects", "defect_rate", "pipeline_fps", "engine_fps", "dropped", "reconnects",
                    "stalls", "errors", "last", "defects_recent", "station", "stream"):
            assert key in status
        assert status["frames"] >= 5 and status["defects"] == status["frames"] and status["defect_rate"] == 1.0
        assert status["dropped"] == 0 and status["station"]["threshold"] == 0.0
        assert status["last"]["verdict"] == "defect"
        code, headers, jpeg = _get(base + "/snapshot.jpg")
        assert code == 200 and headers["Content-Type"] == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
        recent = status["defects_recent"]
        assert recent and {"id", "frame", "time", "class", "confidence", "url"} <= set(recent[0])
        assert _get(base + recent[0]["url"])[2][:2] == b"\xff\xd8"
        assert _status_code(base + "/thumbs/999999.jpg") == 404 and _status_code(base + "/nothing") == 404
        for method in ("POST", "PUT", "DELETE"):
            assert _status_code(base + "/status.json", method) == 501  # no endpoint changes anything
    summary = run.stop()
    assert summary.delivery_ms["http"]["count"] >= 0 and "verdict" in summary.delivery_ms


def test_mjpeg_stream_framing_several_clients_and_latency(tmp_path):
    engine = ort_engine(tmp_path)
    port = free_port()
    with running(engine, f"http://127.0.0.1:{port}?fps=15") as (sink, run):
        results = {}

        def client(i):
            results[i] = _read_parts(port, 3, "?fps=5" if i == 0 else "")

        threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(results) == [0, 1, 2] and all(len(parts) == 3 for parts in results.values())
        assert sink.counters["clients_max"] >= 2
    summary = run.stop()
    out = summary.outputs[f"http://127.0.0.1:{port}?fps=15"]
    assert out["frames_sent"] >= 9 and out["clients_dropped"] == 0
    http = summary.delivery_ms["http"]
    assert http["count"] == out["frames_sent"] and http["p99"] >= http["p50"] > 0
    assert summary.delivery_ms["verdict"]["count"] == summary.frames


def test_frame_rate_cap_grabs_frames_at_the_capped_rate():
    """A clock driven by the test: 100 frames over 1 s at fps=5 hand exactly 5 to the encoder."""
    import numpy as np

    sink = HttpSink(port=0, fps=5)
    sink.open({})
    try:
        now = [0.0]
        sink._clock = lambda: now[0]
        image = np.zeros((48, 64, 3), np.uint8)
        for i in range(100):
            now[0] = i * 0.01
            frame = Frame(image=image, index=i, timestamp=time.time(), source="t", captured_at=time.perf_counter())
            sink.write(SinkItem(frame, _FakeResult(i), None))
        assert sink.counters["frames_grabbed"] == 5
    finally:
        sink.close()


class _FakeResult:
    def __init__(self, index):
        self.index, self.defect, self.defect_class, self.top_class = index, False, False, "ok"
        self.confidence, self.timestamp, self.latency_ms, self.truth = 0.9, time.time(), {}, None


def test_stalled_client_is_dropped_while_the_loop_and_other_clients_go_on(tmp_path):
    engine = ort_engine(tmp_path)
    port = free_port()
    uri = f"http://127.0.0.1:{port}?fps=30&width=1280&quality=100&send_timeout_s=0.5"
    with running(engine, uri, source="synthetic://?fps=30&pool=2") as (sink, run):
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", port))
        stalled.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")  # and never reads
        try:
            deadline = time.monotonic() + 90
            while sink.counters["clients_dropped"] < 1:
                assert time.monotonic() < deadline, "the stalled client was never dropped"
                time.sleep(0.1)
            frames = run.frames
            run.wait_frames(frames + 10)  # the loop never waited for it
            assert len(_read_parts(port, 2)) == 2  # and a live client is served
        finally:
            stalled.close()
    summary = run.stop()
    assert summary.outputs[uri]["clients_dropped"] >= 1


def test_token_required_on_every_request(tmp_path):
    engine = ort_engine(tmp_path)
    port = free_port()
    with running(engine, f"http://127.0.0.1:{port}?token=s3cret") as (sink, run):
        base = f"http://127.0.0.1:{port}"
        for path in ("/", "/status.json", "/stream.mjpg", "/snapshot.jpg", "/thumbs/1.jpg"):
            assert _status_code(base + path) == 401
            assert _status_code(base + path + "?token=wrong") == 401
        assert _status_code(base + "/status.json?token=s3cret") == 200
        assert len(_read_parts(port, 1, "?token=s3cret")) == 1
        assert sink.url.endswith("?token=s3cret")
    hashed = open_sink("http://127.0.0.1:0?token=ab%23cd")
    assert hashed.token == "ab#cd" and hashed.url.endswith("?token=ab%23cd")  # the logged link works


def test_max_clients_refused_with_503(tmp_path):
    engine = ort_engine(tmp_path)
    port = free_port()
    with running(engine, f"http://127.0.0.1:{port}?max_clients=1") as (sink, run):
        first = socket.create_connection(("127.0.0.1", port))
        first.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
        assert first.recv(12).startswith(b"HTTP/1.0 200")
        assert _status_code(f"http://127.0.0.1:{port}/stream.mjpg") == 503
        first.close()


def test_binds_loopback_by_default_and_stops_cleanly(tmp_path):
    engine = ort_engine(tmp_path)
    sink = open_sink("http://:0")
    assert sink.host == "127.0.0.1"
    run = Run(engine, [sink])
    run.wait_frames(3)
    port = sink.port
    assert sink._server.server_address[0] == "127.0.0.1"
    viewer = socket.create_connection(("127.0.0.1", port), timeout=30)
    viewer.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
    assert viewer.recv(12).startswith(b"HTTP/1.0 200")
    run.stop()
    data = b"x"
    while data:  # the open stream is closed by the server, not left hanging
        data = viewer.recv(65536)
    viewer.close()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("edgealex-http")]
    with socket.socket() as again:  # the port is free again
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


def test_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        sink = open_sink(f"http://127.0.0.1:{busy.getsockname()[1]}")
        with pytest.raises(EdgeAlexError) as err:
            sink.open({})
        assert "already in use" in str(err.value)


@pytest.mark.parametrize("uri, what", [
    ("http://127.0.0.1:8080/live", "served at the root"),
    ("http://127.0.0.1:8080?fps=0", "out of range"),
    ("http://127.0.0.1:8080?fps=ten", "not a valid float"),
    ("http://127.0.0.1:8080?colour=1", "unknown option 'colour'"),
    ("http://[::1:8080", "not a valid address"),  # an unclosed IPv6 bracket was a traceback
    ("http://0.0.0.0:8080?token=", "token is empty"),  # ?token=$UNSET must not serve an open page
    ("http://127.0.0.1:port", "e.g. http://127.0.0.1:8080"),
    ("http://0.0.0.0:8080?token=ab#cd", "fragment"),  # the token silently became 'ab'
])
def test_bad_uris(uri, what):
    with pytest.raises(EdgeAlexError) as err:
        open_sink(uri)
    assert what in str(err.value)


def _chromium(args, timeout=90):
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", "--virtual-time-budget=3000"] + args,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _rendered(dom, name):
    match = re.search(rf'id="{name}"[^>]*>([^<]*)<', dom)
    assert match, f"no #{name} in the rendered page"
    return match.group(1)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium; "
                                             ".ci/run installs it)")
def test_headless_chromium_renders_counters_that_advance(tmp_path):
    engine = ort_engine(tmp_path)
    port = free_port()
    with running(engine, f"http://127.0.0.1:{port}?fps=10&token=t0k", source="synthetic://?fps=30&pool=2",
                 threshold=0.0, drop_policy="none") as (sink, run):  # no drops, however loaded the CPU
        deadline = time.monotonic() + 60
        while not sink.status()["defects_recent"]:  # a defect thumbnail exists before the page is read
            assert time.monotonic() < deadline, "no defect thumbnail in 60 s"
            run.wait_frames(run.frames + 1)
        url = f"http://127.0.0.1:{port}/?token=t0k"
        first = _chromium(["--dump-dom", url])
        frames_1, defects_1 = int(_rendered(first, "frames")), int(_rendered(first, "defects"))
        assert _rendered(first, "state") == "live" and frames_1 >= 5 and 1 <= defects_1 <= frames_1
        assert _rendered(first, "defect_rate").endswith(" %")
        assert _rendered(first, "pipeline_fps") != "-" and _rendered(first, "engine_fps") != "-"
        assert _rendered(first, "dropped") == "0" and _rendered(first, "reconnects").endswith(" / 0")
        assert "<figure>" in first  # defect thumbnails rendered by the page's script
        run.wait_frames(frames_1 + 15)  # the loop has moved on: the page must show it
        second = _chromium(["--dump-dom", url])
        assert int(_rendered(second, "frames")) > frames_1
        assert int(_rendered(second, "defects")) >= defects_1
        shot = tmp_path / "station.png"
        _chromium(["--window-size=1280,860", f"--screenshot={shot}", url])
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("EDGEALEX_STATION_SCREENSHOT"):  # how docs/station.png is made
            shutil.copyfile(str(shot), os.environ["EDGEALEX_STATION_SCREENSHOT"])


def test_station_modules_are_python_3_6_code():
    """The station sinks are device-side code: Python 3.6 (JetPack 4.6) must be enough (vermin)."""
    import sys

    vermin = os.path.join(os.path.dirname(sys.executable), "vermin")
    if not os.path.exists(vermin):
        vermin = shutil.which("vermin")
    if vermin is None:
        pytest.skip("vermin not installed (pip install 'edgealex[test]')")
    proc = subprocess.run([vermin, "-t=3.6-", "--no-tips", "--violations", "--eval-annotations", "--backport",
                           "typing_extensions", "--no-parse-comments", os.path.join(REPO, "edgealex", "station")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ipv6_address():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    sink = open_sink("http://[::1]:0")
    try:
        sink.open({})
    except EdgeAlexError as err:
        pytest.skip(f"no IPv6 loopback here ({err})")
    try:
        assert sink.url.startswith("http://[::1]:")
        assert json.loads(_get(sink.url + "status.json")[2])["frames"] == 0
    finally:
        sink.close()


def test_a_burst_of_connections_is_queued_not_dropped():
    """A page load opens ~15 connections at once (page, status, stream, 12 thumbnails), several viewers
    more; while the accept thread is busy (a loaded Jetson) the kernel must queue them. With the
    standard library's backlog of 5 the rest of the SYNs were dropped (the browser retries after 1 s)."""
    sink = open_sink("http://127.0.0.1:0")
    sink.open({})
    server = sink._server
    try:
        server.shutdown()  # the accept thread stops; the listening socket stays: the kernel's queue only
        clients = []
        try:
            for _ in range(40):
                clients.append(socket.create_connection(("127.0.0.1", sink.port), timeout=3))
        except socket.timeout:
            pass
        finally:
            for client in clients:
                client.close()
        assert len(clients) == 40, f"only {len(clients)} connections queued"
    finally:
        sink._server = server
        sink.close()


def test_token_is_not_in_the_summary_or_the_jsonl(tmp_path):
    """The MQTT password is redacted where the sink is named; the page's token must be as well (the
    verdict log and the run summary travel further than the station)."""
    log = tmp_path / "v.jsonl"
    sink = open_sink("http://127.0.0.1:0?fps=5&token=s3cret")
    assert sink.token == "s3cret" and sink.uri == "http://127.0.0.1:0?fps=5&token=***"
    summary = run_loop(_runner(ort_engine(tmp_path)), open_source("synthetic://?fps=0&pool=1&count=3"),
                       [sink, open_sink(str(log))])
    assert list(summary.outputs) == ["http://127.0.0.1:0?fps=5&token=***"]
    assert "s3cret" not in log.read_text() and '"outputs"' in log.read_text()
    with pytest.raises(EdgeAlexError) as err:  # errors name it the same way
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            open_sink(f"http://127.0.0.1:{busy.getsockname()[1]}?token=s3cret").open({})
    assert "s3cret" not in str(err.value)


def test_a_viewer_that_left_during_a_source_stall_frees_its_slot():
    """No frames flow (camera unplugged, a stall): viewers who reload the page leave streams that
    send nothing, so nothing used to notice they were gone and after max_clients reloads the stream
    answered 503 until frames came back."""
    sink = open_sink("http://127.0.0.1:0?max_clients=1")
    sink.open({})  # no frame is ever written: a stalled source
    try:
        first = socket.create_connection(("127.0.0.1", sink.port), timeout=10)
        first.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
        assert first.recv(12).startswith(b"HTTP/1.0 200")
        first.close()  # the viewer reloads the page
        codes = []
        deadline = time.monotonic() + 20  # a bound, not a speed check: the slot frees within seconds
        while time.monotonic() < deadline:
            again = socket.create_connection(("127.0.0.1", sink.port), timeout=10)
            again.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
            codes.append(again.recv(12)[9:12])
            again.close()
            if codes[-1] == b"200":
                break
            time.sleep(0.2)
        assert codes[-1] == b"200", codes
    finally:
        sink.close()
