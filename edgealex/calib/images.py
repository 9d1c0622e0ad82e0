"""Reading an image set for calibration and evaluation: decode, convert, preprocess, count.

Unreadable files (corrupt, truncated, not an image, no permission) are skipped and counted with
their reason. Grayscale, BGRA/RGBA, 16-bit and palette images are converted (not skipped) by
:func:`edgealex.preprocess.preprocess`; images smaller than the crop are upscaled. Both are
counted so the report says what happened to the data.
"""

import contextlib
import os
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from edgealex._optional import require
from edgealex.errors import EdgeAlexError
from edgealex.limits import PNG_SIGNATURE
from edgealex.preprocess import preprocess, read_image

MAX_LISTED_SKIPS = 50  # the report lists this many skipped files by name, and counts the rest


@dataclass
class ReadStats:
    """What happened to the images of one set.

    Args:
        listed (int): image files in the set.
        used (int): decoded and preprocessed.
        skipped (list): ``(path, reason)`` of files that could not be used.
        converted (dict): kind ("grayscale", "alpha", "16-bit", "palette") -> count.
        upscaled (int): images whose crop was smaller than the model input (enlarged).
    """

    listed: int = 0
    used: int = 0
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    converted: Dict[str, int] = field(default_factory=dict)
    upscaled: int = 0

    def to_dict(self, relpath=None):
        name = relpath or (lambda p: p)
        return {
            "listed": self.listed, "used": self.used, "skipped": len(self.skipped),
            "skipped_files": [{"path": name(p), "reason": r} for p, r in self.skipped[:MAX_LISTED_SKIPS]],
            "converted": dict(sorted(self.converted.items())), "upscaled": self.upscaled,
        }


def _is_palette_png(path):
    # PNG colour type 3 (indexed) is byte 25 of the file (8-byte signature + IHDR length/type + 9).
    try:
        with open(path, "rb") as handle:
            head = handle.read(26)
    except OSError:
        return False
    return len(head) == 26 and head[:8] == PNG_SIGNATURE and head[25] == 3


@contextlib.contextmanager
def quiet_opencv():
    """Silence OpenCV's and FFmpeg's own stderr messages while opening or decoding.

    Corrupt files are reported as skips, and a source that cannot open is reported as one user
    error; the libraries' log lines ("moov atom not found", "[ WARN:0] global cap.cpp ...") would
    otherwise appear before that line. FFmpeg's level comes from ``OPENCV_FFMPEG_LOGLEVEL``
    (read by OpenCV's FFmpeg backend; -8 = AV_LOG_QUIET), set unless the user set it.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cv2 = require("cv2", "image reading")
    logging_mod = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_mod is None or not hasattr(logging_mod, "setLogLevel"):
        yield
        return
    previous = logging_mod.getLogLevel()
    logging_mod.setLogLevel(logging_mod.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging_mod.setLogLevel(previous)


def iter_preprocessed(items, spec, stats, out_factory=None):
    """Yield ``(path, class, array)`` for every usable image of ``items``, in order.

    Args:
        items (list): ``(path, class or None)`` tuples (an ImageSet's items).
        spec (Preprocess): the model's preprocessing.
        stats (ReadStats): updated in place (listed, used, skipped, converted, upscaled).
        out_factory (callable): returns a float32 (3, S, S) buffer to preprocess into; None
            allocates one per image.

    Yields:
        tuple: (path, class name or None, float32 (3, S, S)).
    """
    np = require("numpy")
    for path, cls in items:
        stats.listed += 1
        try:
            image = read_image(path)
        except EdgeAlexError as err:
            stats.skipped.append((path, err.what))
            continue
        kinds = []
        if image.dtype == np.uint16:
            kinds.append("16-bit")
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
            kinds.append("grayscale")
        elif image.ndim == 3 and image.shape[2] == 4:
            kinds.append("alpha")
        if str(path).lower().endswith(".png") and _is_palette_png(path):
            kinds.append("palette")
        try:
            height, width = image.shape[:2]
            _, _, crop_h, crop_w = spec.crop_box(height, width)
            array = preprocess(image, spec, out=out_factory() if out_factory else None)
        except EdgeAlexError as err:  # e.g. an unsupported pixel type
            stats.skipped.append((path, err.what))
            continue
        for kind in kinds:
            stats.converted[kind] = stats.converted.get(kind, 0) + 1
        if crop_h < spec.input_size or crop_w < spec.input_size:
            stats.upscaled += 1
        stats.used += 1
        yield path, cls, array
