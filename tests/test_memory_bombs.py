"""Memory bombs are refused with one line before anything is allocated: a huge model input, a huge
synthetic frame size, a huge image file (edgealex.limits.MAX_IMAGE_PIXELS)."""

import json
import os
import resource
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from edgealex.errors import EdgeAlexError
from test_runtime_models import colour_classifier, ort_engine

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEMORY_CAP_BYTES = 3 << 30  # a regression dies of MemoryError instead of swapping the machine


def _capped():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP_BYTES, MEMORY_CAP_BYTES))


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "edgealex"] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=300, preexec_fn=_capped)


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(path, side=20000):
    """A valid 8-bit greyscale PNG of side x side zero pixels (~400 KB on disk, 400 MB decoded)."""
    squash = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    parts = [squash.compress(row) for _ in range(side)] + [squash.flush()]
    with open(str(path), "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b""))
    return str(path)


def test_header_sizes_of_real_files():
    from edgealex.limits import image_header_size

    frame = np.zeros((30, 40, 3), dtype=np.uint8)
    for ext in (".png", ".jpg", ".bmp"):
        ok, data = cv2.imencode(ext, frame)
        assert ok and image_header_size(data.tobytes()) == (40, 30), ext
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert image_header_size(data.tobytes()) == (40, 30)
    assert image_header_size(b"GIF89a....") is None


def test_one_limit_one_check():
    from edgealex.limits import MAX_IMAGE_PIXELS, check_pixels

    check_pixels(16384, 16384, "x")  # exactly the limit is allowed
    assert 16384 * 16384 == MAX_IMAGE_PIXELS
    with pytest.raises(EdgeAlexError, match="above edgealex's limit"):
        check_pixels(16385, 16384, "x")


def test_huge_png_is_refused_before_decoding(tmp_path):
    """A 20000x20000 PNG in a folder source: skipped with one line naming the limit (was: decoded,
    2.5 GB RSS for the RGB version, and classified)."""
    engine = ort_engine(tmp_path)
    folder = tmp_path / "images"
    folder.mkdir()
    bomb_png(folder / "bomb.png")
    assert cv2.imwrite(str(folder / "good.png"), np.full((48, 64, 3), 128, dtype=np.uint8))
    result = _cli("run", engine, "--source", folder, "--json")
    assert result.returncode == 0, result.stderr
    assert "bomb.png: the image is 20000x20000 = 400 million pixels, above edgealex's limit" in result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    assert json.loads(result.stdout)["frames"] == 1  # the good image only


def test_huge_synthetic_frames_are_refused(tmp_path):
    """synthetic://?width=100000&height=100000: one line (was: a 30 GB frame render)."""
    result = _cli("run", ort_engine(tmp_path), "--source", "synthetic://?width=100000&height=100000")
    assert result.returncode == 1
    assert result.stderr.startswith("synthetic://?width=100000&height=100000 | the frame size is 100000x100000")
    assert "Traceback" not in result.stderr


def test_huge_model_input_is_refused(tmp_path):
    """An ONNX declaring a 100000x100000 input (a valid model: pooling + Gemm) is refused with one
    line (was: a 120 GB warm-up allocation)."""
    model = colour_classifier(str(tmp_path / "huge.onnx"), input_size=100000, with_metadata=False)
    result = _cli("run", model, "--source", "synthetic://?width=64&height=48&count=1")
    assert result.returncode == 1, result.stderr
    assert "the model input is 100000x100000 = 10,000 million pixels, above edgealex's limit" in result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
