"""TensorRT INT8 calibration cache files (the text format TensorRT 7-10 reads and writes).

Format (facts §2.2)::

    TRT-8201-EntropyCalibration2
    input: 3c010a14
    /features/features.0/Conv_output_0: 3d1b0e2c
    ...

* Header: ``TRT-<NV_TENSORRT_VERSION>-<algorithm>``. TensorRT re-calibrates (or, with a calibrator
  that cannot calibrate, fails) when the number or the algorithm does not match the running
  TensorRT and calibrator, so a cache is written per target TensorRT version.
* One line per tensor: ``<tensor name>: <8 hex digits>``; the hex digits are the IEEE-754 bit
  pattern of the float32 **scale** printed as a big-endian integer; scale = amax / 127 and the
  dynamic range is ``[-127*scale, +127*scale]``.
* Tensor names are ONNX value names (TensorRT's ONNX parser names every tensor after the ONNX
  value it comes from, facts §2.3). Names may contain ':', so a line is split at its LAST ':'
  (as trtexec does).

Pure Python: this module runs on a Jetson without numpy or onnx.
"""

import math
import struct
from dataclasses import dataclass, field
from typing import Dict

from edgealex.artifacts import write_text_atomic
from edgealex.errors import EdgeAlexError

DEFAULT_ALGORITHM = "EntropyCalibration2"
# Header algorithm names. Only EntropyCalibration2 is confirmed by real caches (facts §2.2, §9.2);
# it is also the calibrator DLA requires, so edgealex always writes it.
KNOWN_ALGORITHMS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")
INT8_MAX = 127.0


@dataclass
class CalibrationCache:
    """A parsed calibration cache.

    Args:
        version_number (int): the number in the header, e.g. 8201.
        algorithm (str): the algorithm in the header, e.g. "EntropyCalibration2".
        scales (dict): tensor name -> float32 scale (amax / 127), in file order.
    """

    version_number: int
    algorithm: str = DEFAULT_ALGORITHM
    scales: Dict[str, float] = field(default_factory=dict)

    @property
    def header(self):
        return f"TRT-{self.version_number}-{self.algorithm}"

    def dynamic_range(self, name):
        """``(-amax, amax)`` of one tensor, as ``ITensor.set_dynamic_range`` takes it."""
        amax = self.scales[name] * INT8_MAX
        return -amax, amax


def encode_scale(scale):
    """float -> the 8 hex digits TensorRT stores: big-endian bit pattern of the float32 value.

    >>> encode_scale(1.0), encode_scale(0.0078721)
    ('3f800000', '3c00f9fb')
    """
    value = float(scale)
    if not math.isfinite(value) or value <= 0.0:
        raise EdgeAlexError("calibration scale", f"{value!r} is not a positive finite number",
                            "a tensor whose range is zero or not finite cannot go into a TensorRT cache")
    return struct.pack(">f", value).hex()


def decode_scale(hex_digits):
    """The 8 hex digits of a cache line -> the float32 scale (as a Python float).

    Raises:
        EdgeAlexError: not 1-8 hex digits.
    """
    text = str(hex_digits).strip().lower()
    if not 1 <= len(text) <= 8 or any(c not in "0123456789abcdef" for c in text):
        raise EdgeAlexError("calibration cache", f"{hex_digits!r} is not an 8-digit hex scale",
                            "regenerate the cache with `edgealex calibrate`")
    # TensorRT prints the integer without leading zeros in some versions; pad before unpacking.
    return struct.unpack(">f", bytes.fromhex(text.rjust(8, "0")))[0]


def format_cache(scales, version_number, algorithm=DEFAULT_ALGORITHM):
    """The text of a cache file (header line, then one ``name: hex`` line per tensor, LF endings)."""
    version_number = _check_version_number(version_number)
    if algorithm not in KNOWN_ALGORITHMS:
        raise EdgeAlexError("calibration cache", f"unknown algorithm {algorithm!r}",
                            "use one of " + ", ".join(KNOWN_ALGORITHMS))
    if not scales:
        raise EdgeAlexError("calibration cache", "no tensor scales to write",
                            "calibrate with at least one image")
    lines = [f"TRT-{version_number}-{algorithm}"]
    for name, scale in scales.items():
        name = str(name)
        if not name or "\n" in name or "\r" in name:
            raise EdgeAlexError("calibration cache", f"tensor name {name!r} cannot be written on one line",
                                "rename the ONNX tensor")
        lines.append(f"{name}: {encode_scale(scale)}")
    return "\n".join(lines) + "\n"


def write_cache(path, scales, version_number, algorithm=DEFAULT_ALGORITHM):
    """Write a TensorRT calibration cache atomically.

    Args:
        path (str): file to write.
        scales (dict): tensor name -> scale (amax / 127); written in the dict's order.
        version_number (int): ``NV_TENSORRT_VERSION`` of the TensorRT that will read it, e.g. 8201.
        algorithm (str): header algorithm. Defaults to "EntropyCalibration2".

    Returns:
        str: ``path``.

    Raises:
        EdgeAlexError: empty scales, a non-positive scale, an unusable version number or name.
    """
    return write_text_atomic(path, format_cache(scales, version_number, algorithm))


def parse_cache(text, source="calibration cache"):
    """Parse cache text (see :func:`read_cache`)."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise EdgeAlexError(source, "the calibration cache is empty", "regenerate it with `edgealex calibrate`")
    header = lines[0].strip()
    parts = header.split("-", 2)
    if len(parts) != 3 or parts[0] != "TRT" or not parts[1].isdigit() or not parts[2]:
        raise EdgeAlexError(source, f"the first line {header!r} is not a 'TRT-<version>-<algorithm>' header",
                            "this is not a TensorRT calibration cache; regenerate it with `edgealex calibrate`")
    scales: Dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(":")
        if not sep or not name:
            raise EdgeAlexError(source, f"line {number} {line!r} is not 'tensor_name: hex'",
                                "regenerate the cache with `edgealex calibrate`")
        try:
            scale = decode_scale(value)
        except EdgeAlexError:
            raise EdgeAlexError(source, f"line {number} {line!r}: {value.strip()!r} is not an 8-digit hex scale",
                                "regenerate the cache with `edgealex calibrate`")
        if not math.isfinite(scale) or scale < 0.0 or math.copysign(1.0, scale) < 0:
            # TensorRT turns a scale into the range +-127*scale: a NaN, infinite or negative one is no range
            raise EdgeAlexError(source, f"line {number} {line!r}: the scale {scale!r} is not a finite number >= 0",
                                "regenerate the cache with `edgealex calibrate`")
        if name in scales:
            raise EdgeAlexError(source, f"line {number}: tensor {name!r} appears twice, with two ranges", "regenerate the cache with `edgealex calibrate`")
        scales[name] = scale
    return CalibrationCache(version_number=int(parts[1]), algorithm=parts[2], scales=scales)


def read_cache(path):
    """Read a TensorRT calibration cache file.

    Returns:
        CalibrationCache: header fields and tensor name -> scale.

    Raises:
        EdgeAlexError: missing file, bad header or a malformed line.
    """
    path = str(path)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise EdgeAlexError(path, "the calibration cache does not exist",
                            "run `edgealex calibrate` or check the path")
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgeAlexError(path, f"cannot read the calibration cache ({exc})",
                            "regenerate it with `edgealex calibrate`")
    return parse_cache(text, path)


# The Jetson TensorRT versions of the facts sheet (§0): Nano on JetPack 4.6.1-4.6.6 has 8.2.1,
# AGX Xavier on JetPack 5.1 has 8.5.2. These are the boards that run INT8 through an implicit
# (calibrator) build, and DLA on TensorRT 8.x needs the cache (facts §3.5). Newer TensorRT reads the
# Q/DQ ONNX instead.
DEFAULT_CACHE_TARGETS = ("nano", "agx-xavier")
FIRST_DEPRECATED = 100100  # TensorRT 10.1 deprecated implicit quantization (facts §2.6)
FIRST_REMOVED = 110000     # TensorRT 11.0 removed it
FIRST_SUPPORTED = 8000     # TensorRT 8.0 (JetPack 4.6): the oldest TensorRT edgealex builds for


def resolve_cache_versions(items=None):
    """TensorRT version numbers for cache headers, from versions, numbers or target names.

    Args:
        items (list or None): each one of: an int or digit string (``8201``), a version
            (``"8.5.2"``), or a target name/profile path (``"agx-xavier"``). None or empty: the
            targets in :data:`DEFAULT_CACHE_TARGETS` (8201 and 8502).

    Returns:
        list: sorted unique version numbers.

    Raises:
        EdgeAlexError: an item is none of the above, a target without TensorRT, TensorRT < 8.0 (not
            supported), or TensorRT >= 11 (no calibration caches there: use the Q/DQ ONNX).
    """
    from edgealex.log import logger
    from edgealex.target import load_target, trt_version_number

    items = list(items or DEFAULT_CACHE_TARGETS)
    numbers = []
    for item in items:
        text = str(item).strip()
        if isinstance(item, int) or text.isdigit():
            number = _check_version_number(text)
        elif text[:1].isdigit():
            try:
                number = trt_version_number(text)
            except Exception:
                raise EdgeAlexError(f"--trt-version {text}", "is not a TensorRT version",
                                    "pass e.g. 8.2.1, 8.5.2, 10.3.0, a number like 8201, or a target name")
        else:
            target = load_target(text)
            number = target.calib_cache_version_number()
            if number is None:
                raise EdgeAlexError(f"target {text}", "has no TensorRT, so it needs no calibration cache",
                                    "name a Jetson or GPU target, or a TensorRT version")
        if number < FIRST_SUPPORTED:
            raise EdgeAlexError(f"TensorRT {number}", "TensorRT older than 8.0 is not supported (no edgealex "
                                "target or build runs it)",
                                "pass the TensorRT of a target: 8.2.1 (nano), 8.5.2 (agx-xavier), 10.3.0, or a "
                                "target name; JetPack 4.6 or newer brings TensorRT 8.0+")
        if number >= FIRST_REMOVED:
            raise EdgeAlexError(f"TensorRT {number}", "TensorRT 11 removed implicit INT8 calibration "
                                "(no calibration caches)",
                                "build from the Q/DQ ONNX that `edgealex calibrate` writes instead")
        numbers.append(number)
    numbers = sorted(set(numbers))
    for number in numbers:
        if number >= FIRST_DEPRECATED:
            logger.warning("TensorRT %d: calibration caches are deprecated since TensorRT 10.1; "
                           "prefer the Q/DQ ONNX for GPU builds (DLA still uses the cache)", number)
    return numbers


def _check_version_number(number):
    try:
        number = int(number)
    except (TypeError, ValueError):
        raise EdgeAlexError("TensorRT version", f"{number!r} is not a version number like 8201",
                            "pass e.g. 8.2.1, 8201 or a target name")
    if number < 1000:
        raise EdgeAlexError("TensorRT version", f"{number} is not an NV_TENSORRT_VERSION number",
                            "8.x: MAJOR*1000+MINOR*100+PATCH (8.2.1 -> 8201); 10.x: (MAJOR*100+MINOR)*100+PATCH")
    return number
