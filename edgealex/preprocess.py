"""The single preprocessing function, shared by export metadata, calibration, training eval,
the live loop and the benchmark harness.

A :class:`Preprocess` spec is stored in every exported ONNX (``metadata_props``) and copied into
every engine sidecar, so each stage reads one source of truth.

Geometry: the short side is scaled to ``resize`` and the centre ``input_size`` square is cropped
(torchvision's ``Resize(256) + CenterCrop(224)``). It is computed as one crop in source
coordinates followed by one resize, which gives the same field of view at a fraction of the cost
of resizing the whole frame first.
"""

import os
from dataclasses import asdict, dataclass, field
from typing import Tuple

from edgealex._optional import require
from edgealex.errors import EdgeAlexError
from edgealex.limits import check_image_header, check_pixels

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_INPUT_SIZE = 224
DEFAULT_RESIZE = 256
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_INTERPOLATIONS = ("linear", "area", "nearest", "cubic")


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
        interpolation (str): OpenCV interpolation. Defaults to "linear".
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
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            problems.append("mean and std need 3 values each, std > 0")
        if self.interpolation not in _INTERPOLATIONS:
            problems.append("interpolation must be one of {}".format(", ".join(_INTERPOLATIONS)))
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
    y0, x0, h, w = spec.crop_box(height, width)
    crop = image[y0:y0 + h, x0:x0 + w]
    size = spec.input_size
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
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise EdgeAlexError(path, "not a decodable image (corrupt, truncated or unsupported format)",
                            "remove or replace the file")
    return image


def is_image_file(path):
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS
