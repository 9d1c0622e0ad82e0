"""TensorRT calibration cache format: exact header and hex, round trip, parsing rules, versions."""

import struct

import pytest

from edgealex.calib.cache import (
    CalibrationCache, decode_scale, encode_scale, format_cache, read_cache, resolve_cache_versions, write_cache,
)
from edgealex.errors import EdgeAlexError


def _f32(x):
    return struct.unpack(">f", struct.pack(">f", x))[0]


def test_known_scales_encode_to_known_hex():
    assert encode_scale(1.0) == "3f800000"
    assert encode_scale(0.5) == "3f000000"
    # the cuDLA-samples value from the facts sheet: 3c00f9f4 -> 0.0078721..., x127 = 0.99976
    assert abs(decode_scale("3c00f9f4") * 127 - 0.99976) < 1e-5
    assert encode_scale(decode_scale("3c00f9f4")) == "3c00f9f4"
    for value in (0.0078721, 1.234e-5, 3.5, 2.0 / 127):
        assert encode_scale(value) == struct.pack(">f", value).hex()
        assert len(encode_scale(value)) == 8


def test_decode_pads_short_hex_and_rejects_garbage():
    assert decode_scale("3f800000") == 1.0
    assert decode_scale("0") == 0.0
    for bad in ("xyz", "3f8000000", ""):
        with pytest.raises(EdgeAlexError):
            decode_scale(bad)


def test_nonpositive_or_nonfinite_scale_refused():
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(EdgeAlexError, match="positive finite"):
            encode_scale(bad)


@pytest.mark.parametrize("line, match", [
    ("input: 7fc00000", "not a finite number >= 0"),   # NaN
    ("input: 7f800000", "not a finite number >= 0"),   # +inf
    ("input: bf800000", "not a finite number >= 0"),   # -1.0
    ("input: 80000000", "not a finite number >= 0"),   # -0.0
    ("out: 3f800000", "appears twice"),
    ("out: zz", "line 3 .*not an 8-digit hex scale"),
])
def test_cache_lines_without_a_usable_range_are_refused_with_the_line(tmp_path, line, match):
    # a scale is a range of +-127*scale: NaN, inf or a negative one used to be accepted and handed to
    # trtexec --calib / the builder; a duplicated tensor silently kept the last of two ranges
    path = tmp_path / "c.cache"
    path.write_text("TRT-8502-EntropyCalibration2\nout: 3c00f9f4\n" + line + "\n")
    with pytest.raises(EdgeAlexError, match=match) as info:
        read_cache(path)
    assert info.value.subject == str(path)


def test_write_read_roundtrip_exact_text(tmp_path):
    scales = {"input": 0.0185, "/features/features.0/Conv_output_0": 0.0119643, "logits": 8.42e-05,
              "name:with:colons": 0.25}
    path = tmp_path / "calib.cache"
    write_cache(path, scales, 8201)
    text = path.read_text()
    lines = text.split("\n")
    assert lines[0] == "TRT-8201-EntropyCalibration2"
    assert lines[1] == "input: " + struct.pack(">f", 0.0185).hex()
    assert lines[4] == "name:with:colons: 3e800000"
    assert text.endswith("\n") and "\r" not in text
    back = read_cache(path)
    assert isinstance(back, CalibrationCache)
    assert back.version_number == 8201 and back.algorithm == "EntropyCalibration2"
    assert list(back.scales) == list(scales)  # order kept, name parsed up to the LAST ':'
    assert back.scales == {k: _f32(v) for k, v in scales.items()}  # float32-exact
    assert back.header == "TRT-8201-EntropyCalibration2"
    low, high = back.dynamic_range("name:with:colons")
    assert (low, high) == (-0.25 * 127, 0.25 * 127)
    # writing the parsed scales again gives the same bytes
    write_cache(tmp_path / "again.cache", back.scales, back.version_number)
    assert (tmp_path / "again.cache").read_text() == text


def test_parse_tolerates_crlf_and_blank_lines(tmp_path):
    path = tmp_path / "c.cache"
    path.write_bytes(b"TRT-8502-EntropyCalibration2\r\ninput: 3c00f9f4\r\n\r\nout: 3f800000\r\n")
    cache = read_cache(path)
    assert cache.version_number == 8502
    assert cache.scales["out"] == 1.0 and "input" in cache.scales


def test_bad_files(tmp_path):
    with pytest.raises(EdgeAlexError, match="does not exist"):
        read_cache(tmp_path / "nope.cache")
    bad = tmp_path / "bad.cache"
    for text, match in (("", "empty"), ("hello\ninput: 3f800000\n", "header"),
                        ("TRT-abc-EntropyCalibration2\n", "header"),
                        ("TRT-8201-EntropyCalibration2\njust a line\n", "line 2")):
        bad.write_text(text)
        with pytest.raises(EdgeAlexError, match=match):
            read_cache(bad)


def test_format_refuses_bad_input():
    with pytest.raises(EdgeAlexError, match="no tensor scales"):
        format_cache({}, 8201)
    with pytest.raises(EdgeAlexError, match="NV_TENSORRT_VERSION"):
        format_cache({"a": 1.0}, 82)
    with pytest.raises(EdgeAlexError, match="algorithm"):
        format_cache({"a": 1.0}, 8201, algorithm="Magic")
    with pytest.raises(EdgeAlexError, match="one line"):
        format_cache({"a\nb": 1.0}, 8201)
    assert format_cache({"a": 1.0}, 8201, "MinMaxCalibration").startswith("TRT-8201-MinMaxCalibration\n")


def test_resolve_cache_versions():
    assert resolve_cache_versions() == [8201, 8502]  # Nano JetPack 4.6.x, AGX Xavier JetPack 5.1
    assert resolve_cache_versions(["8.2.1", "8502", 8201, "agx-xavier"]) == [8201, 8502]
    assert resolve_cache_versions(["10.3.0"]) == [100300]
    with pytest.raises(EdgeAlexError, match="TensorRT 11"):
        resolve_cache_versions(["11.1"])
    with pytest.raises(EdgeAlexError, match="no TensorRT"):
        resolve_cache_versions(["cpu"])
    with pytest.raises(EdgeAlexError, match="unknown target"):
        resolve_cache_versions(["not-a-board"])
    with pytest.raises(EdgeAlexError):
        resolve_cache_versions(["8.x.y"])


def test_tensorrt_older_than_8_gets_no_cache(tmp_path):
    """Issue 17 follow-up F: `calibrate --trt-version 7.1` (or 7103) is refused before any work,
    instead of writing a TRT-7100 cache no target can use; a single image file is "not a folder"."""
    import os

    from typer.testing import CliRunner

    from edgealex.cli.main import app

    for item in ("7.1", "7103", 7000):
        with pytest.raises(EdgeAlexError, match="older than 8.0 is not supported"):
            resolve_cache_versions([item])
    assert resolve_cache_versions(["8.0.1"]) == [8001]
    from conftest import require_calibrate

    require_calibrate()  # the CLI below checks onnxruntime's quantizer first
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x")  # never read: the version is refused first
    image = tmp_path / "one.jpg"
    image.write_bytes(b"\xff\xd8\xff")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["calibrate", str(model), "--images", str(tmp_path), "--trt-version", "7.1",
                                 "-o", str(out)])
    assert r.exit_code == 1 and "TensorRT 7100 | TensorRT older than 8.0 is not supported" in r.output, r.output
    assert not os.path.exists(str(out))
    pytest.importorskip("onnxruntime")
    from test_bench_harness import tiny_onnx

    r = CliRunner().invoke(app, ["calibrate", tiny_onnx(tmp_path / "tiny.onnx"), "--images", str(image), "-o",
                                 str(out)])
    assert r.exit_code == 1 and f"{image} | is not a folder" in r.output and "does not exist" not in r.output, r.output
