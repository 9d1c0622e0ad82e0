"""Image folders and their manifests: the one way edgealex lists images for calibration,
training evaluation and offline runs.

Layout (torchvision ``ImageFolder`` convention)::

    root/                  root/
      a.jpg                  ok/001.png
      b.png        or        scratch/007.jpg
      sub/c.jpg              scratch/deep/008.jpg

* The folder is walked recursively; files with an extension in
  :data:`edgealex.preprocess.IMAGE_EXTENSIONS` (case-insensitive) are images. Hidden files and
  folders (name starting with ".") are ignored.
* An image's class is the name of the FIRST sub-folder below ``root`` it lives in; images directly
  in ``root`` have no class (``None``). ``classes`` lists the sorted class names; it is empty for a
  flat folder.
* Order is the sorted relative path with "/" separators, so it is the same on every machine.

A manifest (JSON) records the file list with each file's sha256 and size, plus one
``manifest_sha256`` over (path, class, sha256) of every file. The hash does not depend on where the
folder lives, so the same images give the same hash on a laptop and on a Jetson; calibration
outputs record it as their provenance.
"""

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from edgealex.artifacts import now_iso, read_json, sha256_file, write_json_atomic
from edgealex.errors import EdgeAlexError
from edgealex.preprocess import IMAGE_EXTENSIONS, is_image_file

MANIFEST_FORMAT = "edgealex-image-manifest"
MANIFEST_VERSION = 1


@dataclass
class ImageSet:
    """A deterministic list of images, with their class when the folder has class sub-folders.

    Args:
        root (str): folder the relative paths are taken from.
        items (list): ``(path, class name or None)`` tuples; ``path`` is the full path
            (``root`` joined with the relative path).
        classes (list): sorted class (sub-folder) names; empty for a flat folder.
        manifest_sha256 (str or None): the manifest hash when the set was read from a manifest.
    """

    root: str
    items: List[Tuple[str, Optional[str]]] = field(default_factory=list)
    classes: List[str] = field(default_factory=list)
    manifest_sha256: Optional[str] = None

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    @property
    def paths(self):
        return [path for path, _ in self.items]

    def relpath(self, path):
        """``path`` relative to ``root`` with "/" separators (the manifest spelling)."""
        return os.path.relpath(path, self.root).replace(os.sep, "/")

    def class_counts(self):
        """{class name or None: number of images}."""
        counts: Dict[Optional[str], int] = {}
        for _, cls in self.items:
            counts[cls] = counts.get(cls, 0) + 1
        return counts

    def subset(self, items):
        """A new ImageSet over ``items`` (a subset of this one), classes re-derived."""
        items = list(items)
        classes = sorted({cls for _, cls in items if cls is not None})
        return ImageSet(root=self.root, items=items, classes=classes)


def scan_images(root):
    """List the images under ``root`` (recursive, sorted, classes from first-level sub-folders).

    Args:
        root (str): an image folder.

    Returns:
        ImageSet: the images found, in deterministic order.

    Raises:
        EdgeAlexError: ``root`` is missing, not a folder, or holds no image files.
    """
    root = str(root)
    if not os.path.exists(root):
        raise EdgeAlexError(root, "the image folder does not exist", "check the path")
    if not os.path.isdir(root):
        raise EdgeAlexError(root, "is not a folder",
                            "pass a folder of images (class sub-folders allowed) or a manifest .json")
    found = []  # (relative path with "/", full path, class)
    for dirpath, dirnames, filenames in os.walk(root, onerror=None):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or not is_image_file(name):
                continue
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            parts = rel.split("/")
            found.append((rel, full, parts[0] if len(parts) > 1 else None))
    if not found:
        raise EdgeAlexError(
            root, "holds no image files",
            "put {} images in it (class sub-folders allowed)".format("/".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)))
    found.sort(key=lambda entry: entry[0])
    classes = sorted({cls for _, _, cls in found if cls is not None})
    return ImageSet(root=root, items=[(full, cls) for _, full, cls in found], classes=classes)


def sample_evenly(image_set, count):
    """Pick ``count`` images spread evenly over the classes (deterministic, no randomness).

    Each class (images without a class count as one group) gets an equal share; a class with
    fewer images than its share gives the remainder to the others. Inside a class the picks are
    evenly spaced over its sorted list. The result keeps the set's sorted order.

    Args:
        image_set (ImageSet): the images to sample from.
        count (int or None): how many to keep; None or >= len(image_set) keeps all.

    Returns:
        ImageSet: the sample.

    Raises:
        EdgeAlexError: ``count`` is not positive.
    """
    if count is None or count >= len(image_set):
        return image_set.subset(image_set.items)
    if count <= 0:
        raise EdgeAlexError("--count", f"must be a positive number of images, got {count}",
                            "pass --count N with N >= 1, or leave it out to use every image")
    groups: Dict[Optional[str], List[int]] = {}
    for index, (_, cls) in enumerate(image_set.items):
        groups.setdefault(cls, []).append(index)
    order = sorted(groups, key=lambda c: (c is None, c or ""))
    quota = {cls: 0 for cls in order}
    remaining = count
    open_groups = list(order)
    while remaining > 0 and open_groups:
        share, extra = divmod(remaining, len(open_groups))
        next_open = []
        for position, cls in enumerate(open_groups):
            want = share + (1 if position < extra else 0)
            room = len(groups[cls]) - quota[cls]
            take = min(want, room)
            quota[cls] += take
            remaining -= take
            if len(groups[cls]) > quota[cls]:
                next_open.append(cls)
        open_groups = next_open
    chosen = []
    for cls in order:
        members, k = groups[cls], quota[cls]
        # k evenly spaced positions over n members, centred in their stride (0-based).
        n = len(members)
        chosen.extend(members[(2 * i + 1) * n // (2 * k)] for i in range(k))
    chosen.sort()
    return image_set.subset(image_set.items[i] for i in chosen)


def _manifest_hash(files):
    canonical = json.dumps([[f["path"], f["class"], f["sha256"]] for f in files],
                           separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def manifest(image_set):
    """The manifest of an image set: every file with its sha256 and size, and one hash over all.

    Args:
        image_set (ImageSet): the images.

    Returns:
        dict: ``{"format", "version", "root", "created_at", "count", "classes", "class_counts",
        "files": [{"path", "class", "sha256", "bytes"}], "manifest_sha256"}``; paths are relative
        to ``root`` with "/" separators.

    Raises:
        EdgeAlexError: a listed file cannot be read.
    """
    files = []
    for path, cls in image_set.items:
        try:
            digest, size = sha256_file(path), os.path.getsize(path)
        except OSError as exc:
            raise EdgeAlexError(path, f"cannot read the file to hash it ({exc.strerror or exc})",
                                "check its permissions or remove it")
        files.append({"path": image_set.relpath(path), "class": cls, "sha256": digest, "bytes": size})
    counts = image_set.class_counts()
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "root": os.path.abspath(image_set.root),
        "created_at": now_iso(),
        "count": len(files),
        "classes": list(image_set.classes),
        "class_counts": {("" if k is None else k): v for k, v in sorted(counts.items(), key=lambda kv: kv[0] or "")},
        "files": files,
        "manifest_sha256": _manifest_hash(files),
    }


def write_manifest(path, image_set_or_manifest):
    """Write a manifest JSON atomically (from an ImageSet or an already built manifest dict).

    Returns:
        dict: the manifest written.
    """
    data = image_set_or_manifest
    if isinstance(data, ImageSet):
        data = manifest(data)
    data = dict(data)
    # Where the images are seen from the manifest, so a folder moved together with its manifest
    # (e.g. calib/<set>/manifest.json + calib/<set>/images/) still resolves.
    folder = os.path.dirname(os.path.abspath(str(path)))
    try:
        data["root_from_manifest"] = os.path.relpath(data["root"], folder).replace(os.sep, "/")
    except ValueError:  # another drive on Windows
        data.pop("root_from_manifest", None)
    write_json_atomic(path, data)
    return data


def read_manifest(path):
    """Read and validate a manifest JSON (hash re-computed over the listed files).

    Returns:
        dict: the manifest.

    Raises:
        EdgeAlexError: missing, not JSON, not a manifest, or its hash does not match its list.
    """
    data = read_json(path, "image manifest")
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise EdgeAlexError(path, f"is not an edgealex image manifest (no \"format\": \"{MANIFEST_FORMAT}\")",
                            "write one with edgealex.imagefolder.write_manifest or `edgealex calibrate`")
    try:
        files = [{"path": str(f["path"]), "class": f.get("class"), "sha256": str(f["sha256"]),
                  "bytes": int(f.get("bytes", 0))} for f in data["files"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise EdgeAlexError(path, f"the manifest's file list is malformed ({exc})",
                            "regenerate the manifest")
    if _manifest_hash(files) != data.get("manifest_sha256"):
        raise EdgeAlexError(path, "manifest_sha256 does not match the listed files (edited by hand?)",
                            "regenerate the manifest")
    data["files"] = files
    return data


def image_set_from_manifest(path, root=None, verify=True):
    """The ImageSet a manifest describes, optionally checking every file's sha256.

    Args:
        path (str): manifest JSON.
        root (str): folder the manifest's relative paths start from. Defaults to the recorded
            absolute ``root`` when it exists, else ``root_from_manifest`` (the root relative to
            the manifest file), else the manifest's own folder.
        verify (bool): re-hash every file and refuse on a mismatch. Defaults to True.

    Returns:
        ImageSet: with ``manifest_sha256`` set.

    Raises:
        EdgeAlexError: a listed file is missing or (with ``verify``) changed.
    """
    data = read_manifest(path)
    if root is None:
        folder = os.path.dirname(os.path.abspath(str(path)))
        candidates = [data.get("root"), os.path.join(folder, *str(data.get("root_from_manifest") or ".").split("/")),
                      folder]
        root = next(c for c in candidates if c and os.path.isdir(c))
    items = []
    for entry in data["files"]:
        full = os.path.join(root, *entry["path"].split("/"))
        if not os.path.isfile(full):
            raise EdgeAlexError(full, f"is listed in the manifest {path} but missing",
                                "restore the image set or pass the folder it lives in")
        if verify and sha256_file(full) != entry["sha256"]:
            raise EdgeAlexError(full, f"differs from the manifest {path} (sha256 changed)",
                                "restore the original file or write a new manifest")
        items.append((full, entry["class"]))
    classes = sorted({cls for _, cls in items if cls is not None})
    return ImageSet(root=str(root), items=items, classes=classes, manifest_sha256=data["manifest_sha256"])


def load_image_set(source, verify=True):
    """An ImageSet from a folder, or from a manifest ``.json`` (see :func:`image_set_from_manifest`)."""
    source = str(source)
    if os.path.isfile(source) and source.lower().endswith(".json"):
        return image_set_from_manifest(source, verify=verify)
    return scan_images(source)
