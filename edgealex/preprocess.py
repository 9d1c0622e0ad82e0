"""The single preprocessing function, shared by export metadata, calibration, training eval,
the live loop and the benchmark harness.

A :class:`Preprocess` spec is stored in every exported ONNX (``metadata_props``) and copied into
every engine sidecar, so each stage reads one source of truth.

Geometry: the short side is scaled to ``resize`` and the centre ``input_size`` square is cropped
(torchvision's ``Resize(256) + CenterCrop(224)``). It is computed as one crop in source
coordinates followed by one resize, which gives the same field of view at a fraction of the cost
of resizing the whole frame first.
"""

import math
import numbers
import os
from dataclasses import asdict, dataclass, field
from typing import Tuple

from edgealex._optional import require
from edgealex.errors import EdgeAlexError
from edgealex.limits import PNG_SIGNATURE, check_image_header, check_pixels, jpeg_segments, png_chunks

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_INPUT_SIZE = 224
DEFAULT_RESIZE = 256
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
INTERPOLATIONS = ("linear", "area", "nearest", "cubic", "pil-bilinear")
# "pil-bilinear" reproduces torchvision's ``Resize(resize) + CenterCrop(input_size)`` on a PIL image:
# the whole frame is scaled (short side = resize) with Pillow's antialiased bilinear filter, then the
# centre is cropped. This is what torchvision-trained weights (ImageNet checkpoints) saw.
TORCHVISION_INTERPOLATION = "pil-bilinear"


def _finite_numbers(values):
    """True when every value is a real number (not bool, not a string) and finite (no NaN/inf)."""
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            return False
    return True


@dataclass(frozen=True)
class Preprocess:
    """How a frame becomes the model input.

    Args:
        input_size (int): side of the square model input. Defaults to 224.
        resize (int): short side before the centre crop; 0 resizes the whole frame to the input
            (no crop). Defaults to 256.
        channel_order (str): "RGB" or "BGR" order the model expects. Defaults to "RGB".
        mean (tuple): per-channel mean in [0, 1] units, in ``channel_order``. Defaults to ImageNet's.
        std (tuple): per-channel std in [0, 1] units. Defaults to ImageNet's.
        layout (str): "NCHW" (the only layout TensorRT/DLA AlexNet engines use). Defaults to "NCHW".
        interpolation (str): "linear", "area", "nearest", "cubic" (OpenCV, on the crop) or
            "pil-bilinear" (torchvision's Resize + CenterCrop with Pillow's antialiased bilinear
            filter, for torchvision-trained weights). Defaults to "linear"; a record without the key
            (an ONNX exported before it existed) reads as "linear".
    """

    input_size: int = DEFAULT_INPUT_SIZE
    resize: int = DEFAULT_RESIZE
    channel_order: str = "RGB"
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    layout: str = "NCHW"
    interpolation: str = "linear"
    _cache: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self):
        problems = []
        if not (isinstance(self.input_size, int) and self.input_size >= 16):
            problems.append(f"input_size must be an integer >= 16, got {self.input_size!r}")
        if not (isinstance(self.resize, int) and (self.resize == 0 or self.resize >= self.input_size)):
            problems.append(f"resize must be 0 or >= input_size, got {self.resize!r}")
        if self.channel_order not in ("RGB", "BGR"):
            problems.append(f"channel_order must be RGB or BGR, got {self.channel_order!r}")
        if self.layout != "NCHW":
            problems.append(f"layout must be NCHW, got {self.layout!r}")
        if (len(self.mean) != 3 or len(self.std) != 3 or not _finite_numbers(tuple(self.mean) + tuple(self.std))
                or any(float(s) <= 0 for s in self.std)):
            problems.append(f"mean and std need 3 finite numbers each, std > 0, got {list(self.mean)} and "
                            f"{list(self.std)}")
        if self.interpolation not in INTERPOLATIONS:
            problems.append("interpolation must be one of {}".format(", ".join(INTERPOLATIONS)))
        if problems:
            raise EdgeAlexError("preprocessing", "; ".join(problems),
                                "fix the preprocessing settings (or the model's metadata) and export again")
        check_pixels(self.input_size, self.input_size, "preprocessing", "model input")
        check_pixels(self.resize, self.resize, "preprocessing", "resized frame (resize x resize at least)")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def to_dict(self):
        data = asdict(self)
        data.pop("_cache", None)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data):
        known = {k: v for k, v in dict(data).items() if k in cls.__dataclass_fields__ and k != "_cache"}
        for key in ("mean", "std"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)

    @property
    def input_shape(self):
        """(3, H, W) of one preprocessed image."""
        return (3, self.input_size, self.input_size)

    def crop_box(self, height, width):
        """(y0, x0, h, w) of the source region that becomes the model input."""
        if self.resize == 0:
            return 0, 0, height, width
        side = min(height, width) * self.input_size / float(self.resize)
        side = max(1, int(round(side)))
        side_h, side_w = min(side, height), min(side, width)
        y0 = (height - side_h) // 2
        x0 = (width - side_w) // 2
        return y0, x0, side_h, side_w

    def _affine(self):
        """Per-channel a, b with ``out = pixel * a + b`` (pixel in 0..255)."""
        if "affine" not in self._cache:
            np = require("numpy")
            mean = np.asarray(self.mean, dtype=np.float32)
            std = np.asarray(self.std, dtype=np.float32)
            scale = (1.0 / (255.0 * std)).astype(np.float32)
            offset = (-mean / std).astype(np.float32)
            self._cache["affine"] = (scale, offset)
        return self._cache["affine"]


def to_bgr_uint8(image):
    """Bring any OpenCV-decoded image to HxWx3 uint8 BGR: grayscale, BGRA, 16-bit, float in [0,1]."""
    np = require("numpy")
    cv2 = require("cv2", "image preprocessing")
    if image is None or not hasattr(image, "ndim") or image.size == 0:
        raise EdgeAlexError("image", "empty or undecodable image", "check the file or the camera")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise EdgeAlexError("image", f"unsupported pixel type {image.dtype}",
                            "use 8- or 16-bit images")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise EdgeAlexError("image", f"unsupported image shape {image.shape}",
                        "use grayscale, BGR or BGRA images")


def preprocess(image, spec=None, out=None):
    """One BGR (OpenCV) image -> float32 (3, S, S) model input.

    Args:
        image (np.ndarray): HxWx3 uint8 BGR as OpenCV returns it; grayscale, BGRA and 16-bit are
            converted.
        spec (Preprocess): the model's preprocessing. Defaults to ``Preprocess()``.
        out (np.ndarray): optional float32 (3, S, S) buffer to write into (no allocation).

    Returns:
        np.ndarray: float32 (3, S, S), C-contiguous.
    """
    np = require("numpy")
    cv2 = require("cv2", "image preprocessing")
    spec = spec or Preprocess()
    image = to_bgr_uint8(image)
    height, width = image.shape[:2]
    size = spec.input_size
    if spec.interpolation == TORCHVISION_INTERPOLATION:
        resized = _pil_resize_crop(image, spec)
    else:
        y0, x0, h, w = spec.crop_box(height, width)
        crop = image[y0:y0 + h, x0:x0 + w]
        interp = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA,
                  "nearest": cv2.INTER_NEAREST, "cubic": cv2.INTER_CUBIC}[spec.interpolation]
        resized = cv2.resize(crop, (size, size), interpolation=interp)
    planes = cv2.split(resized)  # contiguous B, G, R planes: the float ops below then stream memory
    if spec.channel_order == "RGB":
        planes = planes[::-1]
    scale, offset = spec._affine()
    if out is None:
        out = np.empty((3, size, size), dtype=np.float32)
    # HWC uint8 -> CHW float32 with one multiply-add per channel, written straight into ``out``
    # (twice as fast as the same arithmetic on the interleaved channels).
    for c in range(3):
        np.multiply(planes[c], scale[c], out=out[c], dtype=np.float32)
        out[c] += offset[c]
    return out


_PIL_PRECISION_BITS = 22  # Pillow's 8-bit resampling fixed point (libImaging/Resample.c: 32 - 8 - 2)


def _pil_coefficients(in_size, out_size, first, count):
    """Pillow's bilinear (triangle) resampling weights for outputs ``first .. first+count-1``.

    Mirrors ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` of Pillow's libImaging/Resample.c:
    the filter support grows with the downscale factor (that is the antialiasing), weights are
    normalised per output and rounded to 22-bit fixed point.

    Returns:
        tuple: (index (count, k) int array of source positions, weight (count, k) int32 array).
    """
    np = require("numpy")
    import math

    scale = in_size / float(out_size)
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # bilinear support 1.0
    ksize = int(math.ceil(support)) * 2 + 1
    index = np.zeros((count, ksize), dtype=np.intp)
    weight = np.zeros((count, ksize), dtype=np.int32)
    for row, xx in enumerate(range(first, first + count)):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        taps = [max(0.0, 1.0 - abs((x + xmin - center + 0.5) / filterscale)) for x in range(xmax)]
        total = sum(taps)
        for k, tap in enumerate(taps):
            value = tap / total if total else 0.0
            weight[row, k] = int(math.floor(0.5 + value * (1 << _PIL_PRECISION_BITS)))
            index[row, k] = xmin + k
        index[row, xmax:] = xmin  # padding taps weigh 0
    return index, weight


def _pil_pass(image, index, weight, axis):
    """One separable pass in Pillow's integer arithmetic (rounded, clipped to uint8).

    The horizontal pass gathers from each row seen as one flat run of interleaved channels (3x
    faster than gathering along axis 1 of the HxWx3 array); the result is the same.
    """
    np = require("numpy")
    channels = image.shape[2] if image.ndim == 3 else 1
    if axis == 1:
        flat = image.reshape(image.shape[0], -1)
        lanes = np.arange(channels)
        index = (index[:, :, None] * channels + lanes).transpose(1, 0, 2).reshape(index.shape[1], -1)
        weight = np.repeat(weight.T, channels, axis=1)
        acc = np.zeros((flat.shape[0], index.shape[1]), dtype=np.int32)
        for k in range(index.shape[0]):
            acc += flat.take(index[k], axis=1) * weight[k]
        out_shape = (image.shape[0], -1) + ((channels,) if image.ndim == 3 else ())
    else:
        acc = None
        for k in range(index.shape[1]):
            shape = [-1] + [1] * (image.ndim - 1)
            term = image.take(index[:, k], axis=0).astype(np.int32) * weight[:, k].reshape(shape)
            acc = term if acc is None else acc + term
        out_shape = acc.shape
    acc += 1 << (_PIL_PRECISION_BITS - 1)
    acc >>= _PIL_PRECISION_BITS
    return np.clip(acc, 0, 255).astype(np.uint8).reshape(out_shape)


def torchvision_geometry(height, width, resize, input_size):
    """Resized frame size and crop origin of torchvision's ``Resize(resize) + CenterCrop(input_size)``.

    From torchvision.transforms.functional (``_compute_resized_output_size``: the long side is
    ``int(resize * long / short)``; ``center_crop``: ``int(round((side - crop) / 2))``).
    ``resize`` 0 scales the whole frame to ``input_size`` square (no crop).

    Returns:
        tuple: (new_height, new_width, top, left).
    """
    if resize == 0:
        return input_size, input_size, 0, 0
    if width <= height:
        new_w, new_h = resize, int(resize * height / width)
    else:
        new_h, new_w = resize, int(resize * width / height)
    return new_h, new_w, int(round((new_h - input_size) / 2.0)), int(round((new_w - input_size) / 2.0))


def _pil_resize_crop(image, spec):
    """HxWx3 uint8 -> SxSx3 uint8 exactly as Pillow's BILINEAR resize + centre crop computes it."""
    height, width = image.shape[:2]
    key = ("pil", height, width)
    plan = spec._cache.get(key)
    if plan is None:
        size = spec.input_size
        new_h, new_w, top, left = torchvision_geometry(height, width, spec.resize, size)
        rows = _pil_coefficients(height, new_h, top, size)
        cols = _pil_coefficients(width, new_w, left, size)
        first, last = int(rows[0].min()), int(rows[0].max()) + 1  # source rows the output needs
        plan = spec._cache[key] = (first, last, (rows[0] - first, rows[1]), cols)
    first, last, rows, cols = plan
    # horizontal pass first, on the needed rows only (as Pillow does), then vertical
    horizontal = _pil_pass(image[first:last], cols[0], cols[1], axis=1)
    return _pil_pass(horizontal, rows[0], rows[1], axis=0)


def preprocess_batch(images, spec=None, out=None):
    """Several BGR images -> float32 (N, 3, S, S)."""
    np = require("numpy")
    spec = spec or Preprocess()
    if out is None:
        out = np.empty((len(images),) + spec.input_shape, dtype=np.float32)
    for i, image in enumerate(images):
        preprocess(image, spec, out=out[i])
    return out


def read_image(path):
    """Decode an image file with OpenCV (any depth, alpha kept for :func:`to_bgr_uint8`).

    Raises:
        EdgeAlexError: the file is missing, unreadable, truncated or not an image.
    """
    np = require("numpy")
    cv2 = require("cv2", "image reading")
    path = str(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise EdgeAlexError(path, f"cannot read the image ({exc.strerror or exc})", "check the file")
    check_image_header(data, path)  # a decompression bomb is refused before decoding
    if _png_cut_short(data):
        # refused before libpng sees it: its default error handler prints "libpng error: ..." on
        # stderr (not through OpenCV's logging, so quiet_opencv cannot silence it)
        raise EdgeAlexError(path, "a truncated PNG (it ends before its IEND chunk)",
                            "remove or replace the file")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise EdgeAlexError(path, "not a decodable image (corrupt, truncated or unsupported format)",
                            "remove or replace the file")
    if bytes(data[:4]) in _TIFF_MAGIC:
        # OpenCV's TIFF decoder already turns the pixels upright from tag 274, for every depth and
        # even with IMREAD_UNCHANGED (imgcodecs/src/grfmt_tiff.cpp, fixOrientation): applying the
        # tag again would rotate twice.
        return image
    return apply_orientation(image, exif_orientation(data))


def _png_cut_short(data):
    """True for PNG bytes whose chunk list ends (or runs past the end of the data) before IEND.

    Args:
        data (np.ndarray of uint8 or bytes): the file's bytes.

    Returns:
        bool: a PNG signature and no IEND chunk, or a chunk whose declared length (+ 12 bytes of
        length, type and CRC) passes the end of the data; False for anything else, including a
        complete PNG (bytes after IEND are ignored, as libpng does).
    """
    full = data if isinstance(data, bytes) else memoryview(data).cast("B")
    if bytes(full[:8]) != PNG_SIGNATURE:
        return False
    for kind, start, length in png_chunks(full):
        if start + length + 4 > len(full):  # its data and CRC pass the end
            return True
        if kind == b"IEND":
            return False
    return True  # no IEND: OpenCV's decoder fails on it too, after libpng's message


# EXIF Orientation (tag 0x0112) -> how the stored pixels become the upright image, as OpenCV's own
# ExifTransform does it for IMREAD_COLOR (imgcodecs/src/loadsave.cpp): T = transpose, then a flip
# about the vertical (h), horizontal (v) or both axes. IMREAD_UNCHANGED (needed to keep 16-bit
# depth and alpha) skips this, so read_image applies it itself (except to TIFF, whose decoder does).
_ORIENTATIONS = {1: (False, None), 2: (False, "h"), 3: (False, "hv"), 4: (False, "v"),
                 5: (True, None), 6: (True, "h"), 7: (True, "hv"), 8: (True, "v")}
_EXIF_ORIENTATION_TAG = 0x0112
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


def apply_orientation(image, orientation):
    """Turn stored pixels upright for an EXIF Orientation value (1-8; anything else: unchanged).

    Works on any depth (uint8, uint16, float) and any channel count (gray, BGR, BGRA).

    Args:
        image (np.ndarray): HxW or HxWxC as decoded.
        orientation (int): the EXIF Orientation tag value.

    Returns:
        np.ndarray: the upright image, C-contiguous (HxW swapped for 5-8).
    """
    np = require("numpy")
    transpose, flip = _ORIENTATIONS.get(orientation, (False, None))
    if not transpose and flip is None:
        return image
    if transpose:
        image = np.swapaxes(image, 0, 1)
    if flip and "h" in flip:
        image = image[:, ::-1]
    if flip and "v" in flip:
        image = image[::-1]
    return np.ascontiguousarray(image)


def exif_orientation(data):
    """The EXIF Orientation of an encoded image (JPEG APP1, PNG eXIf, WebP EXIF, TIFF), else 1.

    Args:
        data (bytes or np.ndarray of uint8): the file's bytes.

    Returns:
        int: 1-8 (1 = upright, also for no or unreadable EXIF).
    """
    import struct

    buf = bytes(data[:65536 + 64]) if not isinstance(data, bytes) else data
    tiff = None
    try:
        if buf[:2] == b"\xff\xd8":  # JPEG: the APP1 "Exif" segment before the scan
            for marker, i, length in jpeg_segments(buf):
                if marker == 0xE1 and buf[i + 4:i + 10] == b"Exif\x00\x00":
                    tiff = buf[i + 10:i + 2 + length]
                    break
        elif buf[:8] == PNG_SIGNATURE:
            full = data if isinstance(data, bytes) else memoryview(data).cast("B")  # no copy of the file
            for kind, start, length in png_chunks(full):
                if kind == b"eXIf":
                    tiff = full[start:start + length]
                    break
                if kind in (b"IDAT", b"IEND"):
                    break
        elif buf[:4] == b"RIFF" and buf[8:12] == b"WEBP":
            full = data if isinstance(data, bytes) else memoryview(data).cast("B")  # no copy of the file
            i = 12
            while i + 8 <= len(full):
                kind, length = struct.unpack("<4sI", full[i:i + 8])
                if kind == b"EXIF":
                    tiff = full[i + 8:i + 8 + length]
                    if tiff[:6] == b"Exif\x00\x00":
                        tiff = tiff[6:]
                    break
                i += 8 + length + (length & 1)
        elif buf[:4] in _TIFF_MAGIC:
            tiff = buf
        if not tiff or tiff[:2] not in (b"II", b"MM"):
            return 1
        order = "<" if tiff[:2] == b"II" else ">"
        ifd = struct.unpack(order + "I", tiff[4:8])[0]
        count = struct.unpack(order + "H", tiff[ifd:ifd + 2])[0]
        for k in range(count):
            entry = ifd + 2 + 12 * k
            tag, kind = struct.unpack(order + "HH", tiff[entry:entry + 4])
            if tag == _EXIF_ORIENTATION_TAG:
                value = struct.unpack(order + "H", tiff[entry + 8:entry + 10])[0]
                return value if value in _ORIENTATIONS else 1
    except (struct.error, IndexError, ValueError):
        return 1
    return 1


def is_image_file(path):
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS
