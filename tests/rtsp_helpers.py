"""Start and freeze the loopback RTSP server of tests/rtsp_server.py (not a test module)."""

import functools
import os
import select
import signal
import socket
import subprocess
import threading

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rtsp_server.py")


@functools.lru_cache(maxsize=None)
def probe_rtsp_server():
    """(ok, reason): Debian's python3 imports GStreamer's RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0)."""
    if not os.path.exists(SYSTEM_PYTHON):
        return False, SYSTEM_PYTHON + " does not exist"
    code = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
            "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
            "assert all(Gst.ElementFactory.find(e) for e in ('videotestsrc', 'jpegenc', 'rtpjpegpay'))")
    proc = subprocess.run([SYSTEM_PYTHON, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)
    if proc.returncode != 0:
        return False, "GStreamer RTSP server not usable: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    return True, ""


class RtspServer:
    """A running server: ``url``, :meth:`freeze` (SIGSTOP), :meth:`resume` (SIGCONT), :meth:`stop`."""

    def __init__(self, width=64, height=48, fps=10):
        self.proc = subprocess.Popen([SYSTEM_PYTHON, SERVER, str(width), str(height), str(fps)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.isdigit():
            self.stop()
            raise RuntimeError("the RTSP server did not start: " + self.proc.stderr.read()[-2000:])
        self.port = int(line)
        self.url = f"rtsp://127.0.0.1:{self.port}/test"
        self.frozen = False

    def freeze(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


class SilentServer:
    """A TCP server on loopback that accepts connections and never sends a byte."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.url = f"rtsp://127.0.0.1:{self.port}/silent"
        self.accepted = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.accepted:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
