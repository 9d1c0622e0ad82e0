"""The shared preprocessing function."""

import numpy as np
import pytest

from edgealex.errors import EdgeAlexError
from edgealex.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess, preprocess, preprocess_batch, read_image

cv2 = pytest.importorskip("cv2")


def reference(image_bgr, spec):
    """Straightforward float implementation of resize-short-side + centre crop + normalise."""
    h, w = image_bgr.shape[:2]
    y0, x0, ch, cw = spec.crop_box(h, w)
    crop = cv2.resize(image_bgr[y0:y0 + ch, x0:x0 + cw], (spec.input_size, spec.input_size))
    rgb = crop[:, :, ::-1].astype(np.float64) / 255.0
    out = (rgb - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    return out.transpose(2, 0, 1)


def test_matches_reference_and_layout():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(720, 1280, 3), dtype=np.uint8)
    spec = Preprocess()
    got = preprocess(image, spec)
    assert got.shape == (3, 224, 224) and got.dtype == np.float32 and got.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(got, reference(image, spec), atol=1e-5)


def test_crop_box_is_torchvision_geometry():
    spec = Preprocess(input_size=224, resize=256)
    # 1280x720: short side 720 -> scale 256/720; 224 crop covers 224*720/256 = 630 source pixels
    assert spec.crop_box(720, 1280) == (45, 325, 630, 630)
    assert Preprocess(resize=0).crop_box(100, 50) == (0, 0, 100, 50)


def test_channel_order_and_constant_image():
    image = np.zeros((300, 300, 3), dtype=np.uint8)
    image[:, :, 2] = 255  # red in BGR
    rgb = preprocess(image, Preprocess())
    assert rgb[0].mean() == pytest.approx((1 - 0.485) / 0.229, abs=1e-5)
    bgr = preprocess(image, Preprocess(channel_order="BGR", mean=(0, 0, 0), std=(1, 1, 1)))
    assert bgr[2].mean() == pytest.approx(1.0) and bgr[0].mean() == pytest.approx(0.0)


@pytest.mark.parametrize("image", [
    np.full((240, 320), 128, dtype=np.uint8),                     # grayscale
    np.full((240, 320, 4), 128, dtype=np.uint8),                  # BGRA
    np.full((240, 320, 3), 128 * 257, dtype=np.uint16),           # 16-bit
    np.full((240, 320, 1), 128, dtype=np.uint8),                  # single channel
])
def test_odd_inputs_become_the_same_tensor(image):
    expected = preprocess(np.full((240, 320, 3), 128, dtype=np.uint8))
    np.testing.assert_allclose(preprocess(image), expected, atol=1e-6)


def test_small_images_are_upscaled():
    out = preprocess(np.full((20, 30, 3), 10, dtype=np.uint8))
    assert out.shape == (3, 224, 224)


def test_batch_and_reused_buffer():
    images = [np.full((100, 100, 3), v, dtype=np.uint8) for v in (0, 255)]
    buf = np.empty((2, 3, 224, 224), dtype=np.float32)
    out = preprocess_batch(images, Preprocess(), out=buf)
    assert out is buf and out[0, 0, 0, 0] < 0 < out[1, 0, 0, 0]


def test_spec_round_trip_and_validation():
    spec = Preprocess(input_size=227, resize=256, channel_order="BGR")
    assert Preprocess.from_dict(spec.to_dict()) == spec
    with pytest.raises(EdgeAlexError, match="resize must be 0 or >= input_size"):
        Preprocess(input_size=224, resize=100)
    with pytest.raises(EdgeAlexError, match="channel_order"):
        Preprocess(channel_order="RGBA")


def test_read_image_errors(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(EdgeAlexError, match="not a decodable image"):
        read_image(str(bad))
    good = tmp_path / "ok.png"
    cv2.imwrite(str(good), np.zeros((10, 12, 3), dtype=np.uint8))
    assert read_image(str(good)).shape == (10, 12, 3)
    with pytest.raises(EdgeAlexError):
        read_image(str(tmp_path / "missing.png"))
