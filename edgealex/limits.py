"""The image-size limit: one constant, one check, for every way a huge image can get in.

A 100000x100000 model input, ``synthetic://?width=100000&height=100000`` or a 20000x20000 PNG
(2.5 GB of RSS while OpenCV decodes it) would exhaust a Jetson's memory before anything else
fails. :data:`MAX_IMAGE_PIXELS` bounds width x height everywhere, checked before allocating:

- model inputs: :class:`edgealex.runtime.base.TensorSpec` (engine inputs) and
  :class:`edgealex.preprocess.Preprocess` (input and resize sides);
- frame sizes asked of a source (``width``/``height`` of any URI, synthetic frames included):
  :class:`edgealex.camera.source.FrameSource`;
- image files: :func:`check_image_header` reads the size from the PNG IHDR / JPEG SOF / BMP header
  before :func:`edgealex.preprocess.read_image` decodes; OpenCV's own decoder limit
  (``OPENCV_IO_MAX_IMAGE_PIXELS``, read once when cv2 is imported, see
  https://docs.opencv.org/4.x/d4/da8/group__imgcodecs.html) is set to the same value by
  :func:`edgealex._optional.require` for the other formats (TIFF, WebP, ...).

268 million pixels (16384 x 16384) is above the largest industrial camera sensors (151 MP) and
the 16384-pixel side limit of JPEG decoders on Jetson, and its BGR frame (805 MB) still fits
the memory of an 8 GB board.

The PNG signature and chunk walk (:data:`PNG_SIGNATURE`, :func:`png_chunks`) live here too, with the
header parsing, for :mod:`edgealex.preprocess` (truncated PNGs, eXIf orientation) and
:mod:`edgealex.calib.images` (palette PNGs).
"""

import struct

from edgealex.errors import EdgeAlexError

MAX_IMAGE_PIXELS = 1 << 28  # 268,435,456 = 16384 x 16384
ENV_OPENCV_LIMIT = "OPENCV_IO_MAX_IMAGE_PIXELS"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"  # the 8 bytes every PNG starts with (PNG spec, section 5.2)


def check_pixels(width, height, subject, what="image"):
    """Raise EdgeAlexError when ``width`` x ``height`` exceeds :data:`MAX_IMAGE_PIXELS`.

    Args:
        width (int): pixels (None or 0 = unknown: not checked).
        height (int): pixels (None or 0 = unknown: not checked).
        subject (str): the file, URI or option, for the message.
        what (str): what has that size ("image", "model input", "frame size").
    """
    if not width or not height:
        return
    pixels = int(width) * int(height)
    if pixels > MAX_IMAGE_PIXELS:
        raise EdgeAlexError(subject, f"the {what} is {int(width)}x{int(height)} = {pixels / 1e6:,.0f} million "
                                     f"pixels, above edgealex's limit of {MAX_IMAGE_PIXELS / 1e6:.0f} million "
                                     "(16384x16384); refused before allocating memory for it",
                            "use a smaller image, frame size or model input")


def image_header_size(data):
    """(width, height) from the header of PNG, JPEG or BMP bytes; None for other formats or a
    header too short to tell (the decoder then decides)."""
    head = bytes(data[:32])
    if head.startswith(PNG_SIGNATURE) and len(head) >= 24 and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    if head.startswith(b"BM") and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        return abs(width), abs(height)
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def png_chunks(data):
    """Walk the chunks of PNG bytes (the caller has checked :data:`PNG_SIGNATURE`).

    Args:
        data (bytes or memoryview of bytes): the whole file.

    Yields:
        (bytes, int, int): the chunk type (b"IHDR", b"IDAT", ...), the offset of its data and the
        length its header declares, for every chunk whose 8-byte header lies inside ``data``; the
        data itself (and its 4-byte CRC) may run past the end, which the caller checks if it needs to.
    """
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind, pos + 8, length
        pos += 12 + length


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_segments(data):
    """Yield ``(marker, pos, length)`` for each JPEG marker segment before the scan (SOS, 0xDA, is
    the last one yielded); ``pos`` indexes the segment's 0xFF, ``length`` its big-endian length
    field (0 for markers without one). 0xFF fill bytes between segments are skipped (ITU T.81
    B.1.1.2); the walk stops at anything that is not a marker."""
    view = memoryview(data)
    pos, end = 2, len(view)
    while pos + 4 <= end:
        if view[pos] != 0xFF:
            return
        marker = view[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            yield marker, pos, 0
            pos += 2
            continue
        length = (view[pos + 2] << 8) | view[pos + 3]
        yield marker, pos, length
        if marker == 0xDA:
            return
        pos += 2 + length


def _jpeg_size(data):
    end = len(data)
    for marker, pos, _length in jpeg_segments(data):
        if marker in _JPEG_SOF and pos + 9 <= end:
            height = (data[pos + 5] << 8) | data[pos + 6]
            width = (data[pos + 7] << 8) | data[pos + 8]
            return width, height
        if marker == 0xDA:  # start of scan without a frame header: not a JPEG we can size
            return None
    return None


def check_image_header(data, path):
    """Refuse image bytes whose header declares more than :data:`MAX_IMAGE_PIXELS` (before decoding)."""
    size = image_header_size(data)
    if size is not None:
        check_pixels(size[0], size[1], path, "image")
