"""Video files (``clip.mp4``, ``file:///data/clip.avi?loop=1``) through OpenCV's FFmpeg backend.

Files are not live: the loop never drops their frames. ``fps`` paces delivery (0 = as fast as
possible, the default); ``loop`` restarts at the end; ``width``/``height`` resize the frames.
"""

import os

from edgealex._optional import require
from edgealex.camera.source import EndOfStream, FrameSource
from edgealex.errors import EdgeAlexError
from edgealex.preprocess import to_bgr_uint8


class VideoFileSource(FrameSource):
    """Frames of a video file.

    Args:
        path (str): the video file.
        uri (str): the URI it was opened from. Defaults to ``path``.
        width, height, fps, loop: see :class:`FrameSource`.

    Raises (on open):
        EdgeAlexError: missing file, or a file OpenCV cannot decode (corrupt, truncated, codec).
    """

    kind = "file"

    def __init__(self, path, uri=None, width=None, height=None, fps=None, loop=False):
        super().__init__(uri or path, width, height, fps, loop)
        self.path = str(path)
        self._cap = None
        self._pending = None
        self._decoded = 0
        self.frame_count = 0
        self.native_fps = 0.0

    def open_impl(self):
        if not os.path.isfile(self.path):
            raise EdgeAlexError(self.path, "the video file does not exist", "check the path")
        self._open_capture()

    def _open_capture(self):
        cv2 = require("cv2", "reading video files")
        from edgealex.calib.images import quiet_opencv

        with quiet_opencv():
            cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            cap.release()
            raise EdgeAlexError(self.path, "OpenCV cannot open this video (corrupt, truncated or an unsupported codec)",
                                "check that it plays (ffprobe FILE) or re-encode it, e.g. ffmpeg -i FILE -c:v libx264 out.mp4")
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            raise EdgeAlexError(self.path, "the video holds no decodable frame (corrupt or truncated)",
                                "re-encode or replace the file")
        self._cap = cap
        self._pending = image
        self._decoded = 0
        self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.native_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)

    def close_impl(self):
        if self._cap is not None:
            self._cap.release()
        self._cap = None
        self._pending = None

    def read_impl(self, timeout_ms):
        if self._pending is not None:
            image, self._pending = self._pending, None
        else:
            ok, image = self._cap.read()
            if not ok or image is None:
                self._at_end()
                return self.read_impl(timeout_ms)
        self._decoded += 1
        return to_bgr_uint8(image), None, self.path

    def _at_end(self):
        # FFmpeg cannot tell a truncated file from a finished one; compare with the container's
        # frame count (which can be off by a frame or two) and say so when much is missing.
        if self.frame_count > 2 and self._decoded < self.frame_count - 2:
            self.stats.errors += 1
            self.note_event(f"video ended after {self._decoded} of {self.frame_count} frames (truncated or corrupt tail)")
        if not self.loop:
            raise EndOfStream()
        self._cap.release()
        self._open_capture()

    def describe(self):
        info = super().describe()
        info.update({"path": self.path, "frame_count": self.frame_count, "native_fps": self.native_fps})
        return info
