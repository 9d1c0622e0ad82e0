"""Training data: which images train and validate, in what class order, and how they are fed.

Accepted layouts (``data_dir``)::

    data_dir/                       data_dir/
      labels.txt   (optional)         labels.txt   (optional)
      train/<class>/*.jpg             <class>/*.jpg      <- flat: split deterministically
      val/<class>/*.jpg  (optional)
      holdout/<class>/*  (optional, evaluated after training)

* Class order: ``labels.txt`` (one class per line) when present, otherwise the sorted class
  sub-folder names of the training images. The order becomes the model's output order.
* Without a ``val/`` folder (and for a flat class layout) every 10th image of each class, in
  sorted path order, is held out for validation (at least one per class with 2+ images), so the
  split is the same on every machine.
* Training images are decoded once and kept in memory as uint8 squares of side
  ``Preprocess.resize`` (short side scaled, centre square cropped); above ``MEMORY_LIMIT_BYTES``
  they are decoded per batch instead. Augmentation crops a random ``input_size`` square (the
  validation crop is the centre one) and flips; normalisation and channel order come from the
  same :class:`~edgealex.preprocess.Preprocess` that :func:`edgealex.preprocess.preprocess` uses.
"""

import json
import os
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from edgealex._optional import require
from edgealex.errors import EdgeAlexError
from edgealex.imagefolder import scan_images
from edgealex.preprocess import preprocess_batch, read_image, to_bgr_uint8

VAL_EVERY = 10  # every 10th image of a class validates when there is no val/ folder
MEMORY_LIMIT_BYTES = 3 << 30


@dataclass
class TrainData:
    """The images of one training run.

    Args:
        root (str): the data folder given by the user.
        labels (list): class names in model order.
        train (list): (path, class index) training images.
        val (list): (path, class index) validation images.
        holdout (list): (path, class index) images evaluated once after training (may be empty).
        layout (str): "splits" (train/ and val/ folders), "train-only" (val split off train/) or "flat".
        data_hash (str): content hash of the training and validation images (cache key).
    """

    root: str
    labels: List[str]
    train: List[Tuple[str, int]]
    val: List[Tuple[str, int]]
    holdout: List[Tuple[str, int]] = field(default_factory=list)
    layout: str = "splits"
    data_hash: str = ""

    def counts(self):
        out = {}
        for name, items in (("train", self.train), ("val", self.val), ("holdout", self.holdout)):
            per = {label: 0 for label in self.labels}
            for _, ci in items:
                per[self.labels[ci]] += 1
            out[name] = per
        return out


def _read_labels_file(path):
    from edgealex.export.onnx import read_labels

    return read_labels(path)


def _scan(folder):
    image_set = scan_images(folder)
    unclassed = [p for p, c in image_set.items if c is None]
    if unclassed:
        raise EdgeAlexError(folder, f"holds {len(unclassed)} image(s) outside class sub-folders (e.g. {unclassed[0]})",
                            "put every image in a sub-folder named after its class: <folder>/<class>/<image>")
    return image_set


def _split_every(image_set, every=VAL_EVERY):
    """(train items, val items): every ``every``-th image of each class (sorted) validates."""
    by_class = {}
    for path, cls in image_set.items:
        by_class.setdefault(cls, []).append(path)
    train, val = [], []
    for cls in sorted(by_class):
        paths = by_class[cls]
        picks = set(range(every // 2, len(paths), every)) if len(paths) >= every else (
            {len(paths) // 2} if len(paths) >= 2 else set())
        for i, path in enumerate(paths):
            (val if i in picks else train).append((path, cls))
    return train, val


def _indexed(items, labels, folder):
    index = {label: i for i, label in enumerate(labels)}
    out = []
    for path, cls in items:
        if cls not in index:
            raise EdgeAlexError(folder, f"has a class folder {cls!r} that is not in the labels",
                                "add it to labels.txt, or remove the folder")
        out.append((path, index[cls]))
    return out


def _data_hash(root, items_by_split):
    """sha256 over (split, relative path, file sha256) of every image; a synth dataset's own
    ``dataset.json`` hash is used instead when present (no re-hashing)."""
    manifest = os.path.join(root, "dataset.json")
    if os.path.isfile(manifest):
        from edgealex.artifacts import read_json

        try:
            recorded = read_json(manifest, "dataset manifest").get("data_hash")
        except (OSError, EdgeAlexError):  # unreadable or not an object: hash the images instead
            recorded = None
        if isinstance(recorded, str) and recorded:
            return str(recorded)
    from edgealex.artifacts import sha256_bytes, sha256_file

    rows = []
    for split, items in items_by_split:
        for path, ci in items:
            rows.append([split, os.path.relpath(path, root).replace(os.sep, "/"), ci, sha256_file(path)])
    return sha256_bytes(json.dumps(rows, separators=(",", ":")).encode("utf-8"))


def find_train_data(data_dir):
    """Work out labels and the train/val/holdout images of ``data_dir`` (layouts in the module doc).

    Args:
        data_dir (str): the dataset folder.

    Returns:
        TrainData: the images and labels.

    Raises:
        EdgeAlexError: missing folder, no images, images outside class folders, fewer than two
            classes, or a class without training images.
    """
    root = str(data_dir)
    if not os.path.isdir(root):
        raise EdgeAlexError(root, "the training data folder does not exist",
                            "create one with `edgealex data synth -o DIR` or pass an ImageFolder dataset")
    train_dir, val_dir, holdout_dir = (os.path.join(root, d) for d in ("train", "val", "holdout"))
    if os.path.isdir(train_dir):
        train_set = _scan(train_dir)
        if os.path.isdir(val_dir):
            layout, train_items, val_items = "splits", train_set.items, _scan(val_dir).items
        else:
            layout = "train-only"
            train_items, val_items = _split_every(train_set)
        classes = train_set.classes
    else:
        flat = _scan(root)
        layout, classes = "flat", flat.classes
        train_items, val_items = _split_every(flat)
    labels_file = os.path.join(root, "labels.txt")
    labels = _read_labels_file(labels_file) if os.path.isfile(labels_file) else list(classes)
    if len(labels) < 2:
        raise EdgeAlexError(root, f"found {len(labels)} class(es) ({', '.join(labels) or 'none'})",
                            "a classifier needs images of at least 2 classes in <data>/train/<class>/ or <data>/<class>/")
    train = _indexed(train_items, labels, root)
    val = _indexed(val_items, labels, root)
    missing = [label for i, label in enumerate(labels) if not any(ci == i for _, ci in train)]
    if missing:
        raise EdgeAlexError(root, "no training images for class(es) " + ", ".join(missing),
                            "add images to train/<class>/ or remove the class from labels.txt")
    if not val:
        raise EdgeAlexError(root, "no validation images", "add a val/<class>/ folder or at least 2 images per class")
    holdout = []
    if os.path.isdir(holdout_dir):
        holdout = _indexed(_scan(holdout_dir).items, labels, holdout_dir)
    data = TrainData(root=root, labels=labels, train=train, val=val, holdout=holdout, layout=layout)
    data.data_hash = _data_hash(root, [("train", train), ("val", val)])
    return data


def _square(image, side):
    """BGR uint8 -> side x side: short side scaled to ``side``, centre square cropped."""
    cv2 = require("cv2", "edgealex train")
    image = to_bgr_uint8(image)
    h, w = image.shape[:2]
    if (h, w) != (side, side):
        scale = side / float(min(h, w))
        nh, nw = max(side, int(round(h * scale))), max(side, int(round(w * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (nw, nh), interpolation=interp)
        y0, x0 = (nh - side) // 2, (nw - side) // 2
        image = image[y0:y0 + side, x0:x0 + side]
    return np.ascontiguousarray(image)


class ImageStore:
    """Training images as uint8 squares of side ``side``: all in memory when they fit."""

    def __init__(self, paths, side, memory_limit_bytes=MEMORY_LIMIT_BYTES):
        self.paths = list(paths)
        self.side = int(side)
        self.cached = None
        if len(self.paths) * self.side * self.side * 3 <= memory_limit_bytes:
            self.cached = np.empty((len(self.paths), self.side, self.side, 3), np.uint8)
            for i, path in enumerate(self.paths):
                self.cached[i] = _square(read_image(path), self.side)

    def __len__(self):
        return len(self.paths)

    def get(self, indices):
        """uint8 (len(indices), side, side, 3) BGR."""
        if self.cached is not None:
            return self.cached[np.asarray(indices)]
        return np.stack([_square(read_image(self.paths[i]), self.side) for i in indices])


def augment_batch(images, spec, rng, crop="random", hflip=True, vflip=False):
    """uint8 BGR squares -> normalised float32 NCHW batch (torch tensor, channels-last memory).

    Args:
        images (numpy.ndarray): (N, R, R, 3) uint8 BGR, R = ``spec.resize`` (or >= input_size).
        spec (Preprocess): normalisation and channel order (the model's preprocessing).
        rng (numpy.random.Generator): crop offsets and flips.
        crop (str): "random" or "center" (the centre crop equals :func:`preprocess` geometry).
        hflip (bool): mirror left-right with probability 0.5. Defaults to True.
        vflip (bool): mirror top-bottom with probability 0.5. Defaults to False.

    Returns:
        torch.Tensor: float32 (N, 3, S, S).
    """
    torch = require("torch", "edgealex train")
    n, side = images.shape[0], images.shape[1]
    size = spec.input_size
    out = np.empty((n, size, size, 3), np.uint8)
    span = side - size
    for i in range(n):
        if crop == "random" and span > 0:
            y0, x0 = int(rng.integers(0, span + 1)), int(rng.integers(0, span + 1))
        else:
            y0 = x0 = span // 2
        patch = images[i, y0:y0 + size, x0:x0 + size]
        if hflip and rng.random() < 0.5:
            patch = patch[:, ::-1]
        if vflip and rng.random() < 0.5:
            patch = patch[::-1]
        out[i] = patch
    if spec.channel_order == "RGB":
        out = out[..., ::-1]
    scale, offset = spec._affine()
    # NHWC uint8 -> NCHW float32 view in channels-last memory, then one multiply-add per channel
    batch = torch.from_numpy(np.ascontiguousarray(out)).permute(0, 3, 1, 2).float()
    return batch * torch.from_numpy(scale).view(1, 3, 1, 1) + torch.from_numpy(offset).view(1, 3, 1, 1)


def preprocessed(paths, spec, chunk=64):
    """Yield float32 (n, 3, S, S) numpy chunks made by :func:`edgealex.preprocess.preprocess`."""
    for start in range(0, len(paths), chunk):
        images = [read_image(p) for p in paths[start:start + chunk]]
        yield preprocess_batch(images, spec)


def load_split(items):
    """Paths and labels array of (path, class index) items."""
    paths = [p for p, _ in items]
    targets = np.asarray([ci for _, ci in items], dtype=np.int64)
    return paths, targets

