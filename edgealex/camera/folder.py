"""Image folders and globs as frame sources: ``images/``, ``'shots/*.png'``, a single image.

A folder is listed by :func:`edgealex.imagefolder.scan_images` (recursive, sorted; the first-level
sub-folder is the class, used as ground truth). A glob is expanded with ``**`` support and sorted;
its images have no ground truth. An unreadable image is skipped, counted in the source's
``errors`` and logged; the run goes on.
"""

import glob
import os

from edgealex.camera.source import EndOfStream, FrameSource
from edgealex.errors import EdgeAlexError
from edgealex.preprocess import IMAGE_EXTENSIONS, is_image_file, read_image, to_bgr_uint8


class ImageFolderSource(FrameSource):
    """Images of a folder, a glob pattern or one image file, in sorted order.

    Args:
        target (str): folder, glob pattern or image file.
        uri (str): the URI it was opened from. Defaults to ``target``.
        width, height, fps, loop: see :class:`FrameSource` (``fps`` 0 = as fast as consumed).
    """

    kind = "folder"

    def __init__(self, target, uri=None, width=None, height=None, fps=None, loop=False):
        super().__init__(uri or target, width, height, fps, loop)
        self.target = str(target)
        self.items = []
        self._position = 0
        self._delivered = 0
        self._first_error = None

    def open_impl(self):
        self.items = list_images(self.target)
        self._position = 0
        self._delivered = 0
        self._first_error = None

    def close_impl(self):
        self._position = 0

    def read_impl(self, timeout_ms):
        misses = 0
        while True:
            if self._position >= len(self.items):
                if not self._delivered and self.items:
                    # a run over a folder of undecodable files would process 0 frames and "succeed"
                    what = f"none of its {len(self.items)} image file(s) could be decoded (first: {self._first_error})"
                    raise EdgeAlexError(self.target, what, "check the files; they may be corrupt or truncated")
                if not self.loop or misses >= len(self.items):
                    raise EndOfStream()
                self._position = 0
            path, truth = self.items[self._position]
            self._position += 1
            try:
                frame = to_bgr_uint8(read_image(path)), truth, path
            except EdgeAlexError as err:
                misses += 1
                self.stats.errors += 1
                self._first_error = self._first_error or f"{os.path.basename(path)}: {err.what}"
                self.note_event(f"skipped {path}: {err.what}")
                continue
            self._delivered += 1
            return frame

    def describe(self):
        info = super().describe()
        info.update({"images": len(self.items), "target": self.target})
        return info


def list_images(target):
    """``[(path, class or None), ...]`` for a folder, glob pattern or single image file.

    Raises:
        EdgeAlexError: nothing matches, or the file is not an image.
    """
    from edgealex.imagefolder import scan_images

    if os.path.isdir(target):
        return list(scan_images(target).items)
    if os.path.isfile(target):
        if not is_image_file(target):
            raise EdgeAlexError(target, "is neither a video nor an image file",
                                "pass a video ({}) or an image".format(", ".join(IMAGE_EXTENSIONS)))
        return [(target, None)]
    matches = sorted(p for p in glob.glob(target, recursive=True) if os.path.isfile(p) and is_image_file(p))
    if not matches:
        raise EdgeAlexError(target, "no image file matches" if any(c in target for c in "*?[") else "does not exist",
                            "check the path or pattern (quote globs so the shell leaves them alone)")
    return [(path, None) for path in matches]
