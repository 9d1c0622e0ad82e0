"""A real RTSP server on loopback for the liveness tests and the soak benchmark (not a test module).

Run with Debian's /usr/bin/python3 (PyGObject + gir1.2-gst-rtsp-server-1.0, installed by .ci/run):

    /usr/bin/python3 tests/rtsp_server.py [WIDTH HEIGHT FPS]

Serves a live test pattern (videotestsrc, JPEG over RTP, RFC 2435) at rtsp://127.0.0.1:PORT/test
and prints PORT on stdout once it listens. Freeze it with SIGSTOP, resume it with SIGCONT.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main(argv):
    width, height, fps = (int(v) for v in (argv[1:4] if len(argv) >= 4 else (64, 48, 10)))
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service("0")  # any free port
    factory = GstRtspServer.RTSPMediaFactory()
    # rtpjpegpay takes 4:2:0 JPEG only, hence I420 before jpegenc.
    factory.set_launch(
        "( videotestsrc is-live=true pattern=smpte ! "
        f"video/x-raw,format=I420,width={width},height={height},framerate={fps}/1 ! "
        "jpegenc quality=85 ! rtpjpegpay name=pay0 pt=26 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        sys.stderr.write("could not attach the RTSP server\n")
        return 1
    sys.stdout.write(f"{server.get_bound_port()}\n")
    sys.stdout.flush()
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
