"""Image folders: scanning, even sampling, manifests."""

import json
import os

import pytest

from edgealex.errors import EdgeAlexError
from edgealex.imagefolder import (
    ImageSet, image_set_from_manifest, load_image_set, manifest, read_manifest, sample_evenly,
    scan_images, write_manifest,
)

cv2 = pytest.importorskip("cv2")
np = pytest.importorskip("numpy")


def _write(path, value=0, size=(12, 10)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = np.full((size[1], size[0], 3), value, dtype=np.uint8)
    assert cv2.imwrite(str(path), img)


def _classed(tmp_path, counts):
    for cls, n in counts.items():
        for i in range(n):
            _write(tmp_path / cls / f"img{i:03d}.png", value=i)
    return tmp_path


def test_scan_flat_sorted_recursive_and_filters(tmp_path):
    _write(tmp_path / "b.png")
    _write(tmp_path / "A.JPG")
    _write(tmp_path / "c.bmp")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"x")
    os.makedirs(tmp_path / ".cache")
    _write(tmp_path / ".cache" / "x.png")
    s = scan_images(tmp_path)
    assert [os.path.basename(p) for p in s.paths] == ["A.JPG", "b.png", "c.bmp"]
    assert s.classes == []
    assert all(cls is None for _, cls in s.items)


def test_scan_classes_from_first_level_subfolders(tmp_path):
    _classed(tmp_path, {"scratch": 2, "ok": 3})
    _write(tmp_path / "ok" / "deeper" / "z.png")
    s = scan_images(tmp_path)
    assert s.classes == ["ok", "scratch"]
    assert s.class_counts() == {"ok": 4, "scratch": 2}
    rel = [s.relpath(p) for p in s.paths]
    assert rel == sorted(rel)
    assert "ok/deeper/z.png" in rel


def test_scan_missing_empty_and_file(tmp_path):
    with pytest.raises(EdgeAlexError, match="does not exist"):
        scan_images(tmp_path / "nope")
    os.makedirs(tmp_path / "empty" / "sub")
    with pytest.raises(EdgeAlexError, match="holds no image files"):
        scan_images(tmp_path / "empty")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(EdgeAlexError, match="not a folder"):
        scan_images(tmp_path / "f.txt")


def test_sample_evenly_balances_classes_and_is_deterministic(tmp_path):
    _classed(tmp_path, {"a": 10, "b": 10, "c": 2})
    s = scan_images(tmp_path)
    pick = sample_evenly(s, 9)
    assert len(pick) == 9
    assert pick.class_counts() == {"a": 4, "b": 3, "c": 2}  # c has only 2, the rest shared out
    assert pick.items == sample_evenly(s, 9).items
    # evenly spaced inside a class, not the first k
    a_names = [os.path.basename(p) for p, c in pick.items if c == "a"]
    assert a_names == ["img001.png", "img003.png", "img006.png", "img008.png"]
    assert len(set(pick.paths)) == 9
    assert sample_evenly(s, 1000).items == s.items
    assert sample_evenly(s, None).items == s.items
    with pytest.raises(EdgeAlexError, match="positive"):
        sample_evenly(s, 0)


def test_manifest_roundtrip_hash_independent_of_location(tmp_path):
    root1 = _classed(tmp_path / "one", {"ok": 2, "hole": 1})
    root2 = _classed(tmp_path / "two", {"ok": 2, "hole": 1})
    m1, m2 = manifest(scan_images(root1)), manifest(scan_images(root2))
    assert m1["manifest_sha256"] == m2["manifest_sha256"]
    assert m1["files"][0]["path"] == "hole/img000.png"
    assert len(m1["files"][0]["sha256"]) == 64
    path = tmp_path / "m.json"
    write_manifest(path, scan_images(root1))
    back = read_manifest(path)
    assert back["manifest_sha256"] == m1["manifest_sha256"]
    s = load_image_set(path)
    assert isinstance(s, ImageSet)
    assert s.manifest_sha256 == m1["manifest_sha256"]
    assert s.items == scan_images(root1).items
    # a changed image is detected
    _write(root1 / "ok" / "img000.png", value=200)
    with pytest.raises(EdgeAlexError, match="differs from the manifest"):
        image_set_from_manifest(path)
    assert len(image_set_from_manifest(path, verify=False)) == 3


def test_manifest_tampered_or_foreign(tmp_path):
    root = _classed(tmp_path / "d", {"ok": 2})
    path = tmp_path / "m.json"
    data = write_manifest(path, scan_images(root))
    data["files"][0]["path"] = "ok/other.png"
    path.write_text(json.dumps(data))
    with pytest.raises(EdgeAlexError, match="does not match"):
        read_manifest(path)
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(EdgeAlexError, match="not an edgealex image manifest"):
        read_manifest(path)


def test_manifest_moved_with_its_images_still_resolves(tmp_path):
    root = _classed(tmp_path / "set" / "images", {"ok": 2})
    write_manifest(tmp_path / "set" / "manifest.json", scan_images(root))
    os.rename(tmp_path / "set", tmp_path / "moved")  # the recorded absolute root is gone
    s = image_set_from_manifest(tmp_path / "moved" / "manifest.json")
    assert len(s) == 2 and os.path.isfile(s.paths[0])
    assert os.path.dirname(os.path.dirname(s.paths[0])) == str(tmp_path / "moved" / "images")
