"""The synthetic defect dataset on disk: ImageFolder splits, labels, a manifest with a content hash.

Layout written by :func:`synthesize`::

    out/
      dataset.json          manifest: parameters, counts, per-file sha256, data_hash
      labels.txt            one class per line, "ok" first (the model's class order)
      train/<class>/<n>.jpg
      val/<class>/<n>.jpg
      calib/<class>/<n>.jpg
      holdout/<class>/<n>.jpg

Image ``n`` of class ``c`` is drawn from its own generator seeded with ``(seed, c, n)``, so every
image is independent of the others: a larger ``--per-class`` keeps the first images, and the
split fractions only decide which folder an image lands in. Surfaces rotate with ``n`` so each
class and split sees every surface equally often.

Images are JPEG (quality 95): encoding is ~25x faster than PNG here and files are ~4x smaller,
and the subtle defects survive (the decoded pixels differ from the rendered ones by a few grey
levels at most). The same seed gives the same bytes with the same OpenCV build; another JPEG
library may encode differently, which only changes ``data_hash`` (and so invalidates caches).

Caching: when ``out`` already holds a complete dataset made with the same parameters (generator
version, seed, per_class, size, splits), it is reused as is. Any other non-empty ``out`` is refused
unless ``force=True``, which regenerates it. Generation happens in a temporary folder next to
``out`` that is renamed into place at the end, so an interrupted run never leaves a half dataset.
"""

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from edgealex._optional import require
from edgealex.artifacts import environment_summary, read_json, staging_dir, write_json_atomic, write_text_atomic
from edgealex.errors import EdgeAlexError
from edgealex.log import logger
from edgealex.synth.render import (GENERATOR_VERSION, HARD_BOX_SCALE, HARD_CONTRAST, LABELS, SURFACES, check_difficulty,
                                   render_sample)

DATASET_FORMAT = "edgealex-synthetic-defects"
MANIFEST_NAME = "dataset.json"
LABELS_NAME = "labels.txt"
SPLITS = ("train", "val", "calib", "holdout")
DEFAULT_SPLITS = (0.7, 0.1, 0.1, 0.1)
IMAGE_EXT = ".jpg"
JPEG_QUALITY = 95


@dataclass
class SynthResult:
    """What :func:`synthesize` produced (or found in its cache).

    Args:
        out_dir (str): dataset root.
        labels (list): class names in model order ("ok" first).
        counts (dict): {split: {class: images}}.
        data_hash (str): sha256 over every (relative path, file sha256); the training cache key.
        split_hashes (dict): {split: sha256} of that split alone (e.g. the calibration set).
        seconds (float): wall time of this call.
        reused (bool): True when an identical existing dataset was reused.
        params (dict): the parameters that define the dataset.
    """

    out_dir: str
    labels: List[str]
    counts: Dict[str, Dict[str, int]]
    data_hash: str
    split_hashes: Dict[str, str]
    seconds: float
    reused: bool
    params: dict = field(default_factory=dict)

    @property
    def total(self):
        return sum(sum(c.values()) for c in self.counts.values())

    def split_dir(self, split):
        """Folder of one split (e.g. ``result.split_dir("calib")``)."""
        return os.path.join(self.out_dir, split)

    def to_dict(self):
        return {"out_dir": self.out_dir, "labels": list(self.labels), "counts": self.counts,
                "total": self.total, "data_hash": self.data_hash, "split_hashes": self.split_hashes,
                "seconds": round(self.seconds, 3), "reused": self.reused, "params": self.params}


def split_counts(per_class, fractions):
    """Images per split for one class: largest-remainder rounding, every non-zero split >= 1.

    Args:
        per_class (int): images of one class.
        fractions (sequence): one fraction per split in ``SPLITS`` order (normalised to sum 1).

    Returns:
        list: counts summing to ``per_class``.
    """
    fractions = [float(f) for f in fractions]
    total = sum(fractions)
    raw = [per_class * f / total for f in fractions]
    counts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[:per_class - sum(counts)]:
        counts[i] += 1
    for i, f in enumerate(fractions):  # a split asked for must not come out empty
        if f > 0 and counts[i] == 0:
            donor = max(range(len(counts)), key=lambda j: counts[j])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return counts


def parse_splits(text):
    """"0.7,0.1,0.1,0.1" -> (0.7, 0.1, 0.1, 0.1) (train, val, calib, holdout).

    Raises:
        EdgeAlexError: not four comma-separated numbers.
    """
    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        values = ()
    if len(values) != len(SPLITS):
        raise EdgeAlexError(f"--splits {text}", "need four comma-separated fractions (train,val,calib,holdout)",
                            "e.g. --splits 0.7,0.1,0.1,0.1")
    return values


def _check_params(per_class, size, splits):
    if not isinstance(per_class, int) or per_class < len(SPLITS):
        raise EdgeAlexError(f"--per-class {per_class}", f"need at least {len(SPLITS)} images per class (one per split)",
                            "pass --per-class 4 or more (the demo uses 400)")
    if not isinstance(size, int) or size < 64 or size > 1024:
        raise EdgeAlexError(f"--size {size}", "image size out of range", "use --size between 64 and 1024 (default 256)")
    if len(splits) != len(SPLITS) or any(f < 0 for f in splits) or splits[0] <= 0 or sum(splits) <= 0:
        raise EdgeAlexError(f"splits {tuple(splits)}",
                            "need 4 non-negative fractions (train, val, calib, holdout) with train > 0",
                            "e.g. splits=(0.7, 0.1, 0.1, 0.1)")


def _params(per_class, size, seed, splits, difficulty="normal"):
    params = {"generator_version": GENERATOR_VERSION, "seed": int(seed), "per_class": int(per_class),
              "size": int(size), "splits": dict(zip(SPLITS, [float(f) for f in splits])),
              "image_format": IMAGE_EXT.lstrip("."), "jpeg_quality": JPEG_QUALITY}
    if difficulty != "normal":  # normal datasets keep the parameters (and caches) they always had
        params["difficulty"] = difficulty
        params["hard"] = {"box_scale": HARD_BOX_SCALE, "contrast": list(HARD_CONTRAST)}
    return params


def _plan(per_class, splits):
    """[(split, class index, image index)] in a fixed order."""
    counts = split_counts(per_class, splits)
    jobs = []
    for ci in range(len(LABELS)):
        n = 0
        for split, count in zip(SPLITS, counts):
            for _ in range(count):
                jobs.append((split, ci, n))
                n += 1
    return jobs


def _render_encoded(job):
    """Render and JPEG-encode one image (runs in worker processes)."""
    cv2 = require("cv2", "edgealex data synth")
    seed, size, split, ci, n, difficulty = job
    rng = np.random.default_rng([int(seed), ci, n])
    surface = SURFACES[n % len(SURFACES)]
    image = render_sample(rng, LABELS[ci], size=size, surface=surface, difficulty=difficulty)
    ok, buf = cv2.imencode(IMAGE_EXT, image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise EdgeAlexError("OpenCV", "JPEG encoding failed", "check the OpenCV installation (edgealex doctor)")
    return buf.tobytes(), surface


def _combined_hash(entries):
    canonical = json.dumps([[e["path"], e["sha256"]] for e in entries], separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _reusable(out_dir, params):
    """The manifest of an identical, complete dataset in ``out_dir``, else None."""
    path = os.path.join(out_dir, MANIFEST_NAME)
    if not os.path.isfile(path):
        return None
    try:
        data = read_json(path, "dataset manifest")
    except EdgeAlexError:
        return None
    if data.get("format") != DATASET_FORMAT or data.get("params") != params:
        return None
    # cheap completeness check: every listed file present with its size
    for entry in data.get("files", []):
        full = os.path.join(out_dir, *entry["path"].split("/"))
        try:
            if os.path.getsize(full) != entry["bytes"]:
                return None
        except OSError:
            return None
    if not os.path.isfile(os.path.join(out_dir, LABELS_NAME)):
        return None
    return data


def _difference(out_dir, params):
    """Why an edgealex dataset in ``out_dir`` is not the one asked for (e.g. a hard dataset made
    before the hard parameters changed), as text to append to the refusal; "" for other folders."""
    try:
        data = read_json(os.path.join(out_dir, MANIFEST_NAME), "dataset manifest")
    except EdgeAlexError:
        return ""
    old = data.get("params") if data.get("format") == DATASET_FORMAT else None
    if not isinstance(old, dict):
        return ""
    if old == params:
        return ": it was made with these parameters but files are missing or changed"
    changed = [k for k in sorted(set(old) | set(params)) if old.get(k) != params.get(k)]
    def shown(d, k):
        return json.dumps(d[k]) if k in d else "(none)"

    return ": it was made with other parameters ({})".format("; ".join(
        f"{k}: {shown(old, k)} there, {shown(params, k)} asked" for k in changed))


def _result_from_manifest(out_dir, data, seconds, reused):
    return SynthResult(out_dir=out_dir, labels=list(data["labels"]), counts=data["counts"],
                       data_hash=data["data_hash"], split_hashes=data["split_hashes"], seconds=seconds,
                       reused=reused, params=data["params"])


def read_dataset(out_dir):
    """The :class:`SynthResult` of an existing synthetic dataset (no regeneration).

    Raises:
        EdgeAlexError: ``out_dir`` has no valid ``dataset.json``.
    """
    data = read_json(os.path.join(str(out_dir), MANIFEST_NAME), "dataset manifest")
    if data.get("format") != DATASET_FORMAT:
        raise EdgeAlexError(out_dir, "is not an edgealex synthetic dataset", "create one with `edgealex data synth`")
    return _result_from_manifest(str(out_dir), data, 0.0, True)


def _map(jobs, workers):
    """Results of ``_render_encoded`` over ``jobs`` in order, in ``workers`` processes."""
    if workers <= 1 or len(jobs) < 64:
        yield from map(_render_encoded, jobs)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        # chunks keep the inter-process traffic low; results come back in order
        yield from pool.map(_render_encoded, jobs, chunksize=16)


def synthesize(out_dir, per_class=400, size=256, seed=0, splits: Sequence[float] = DEFAULT_SPLITS,
               force=False, workers: Optional[int] = None, progress=None, difficulty="normal"):
    """Write the synthetic defect dataset (or reuse an identical one).

    Args:
        out_dir (str): dataset root to create.
        per_class (int): images per class over all splits. Defaults to 400.
        size (int): image side in pixels. Defaults to 256.
        seed (int): dataset seed. Defaults to 0.
        splits (sequence): fractions for train, val, calib, holdout. Defaults to (0.7, 0.1, 0.1, 0.1).
        force (bool): replace a non-empty ``out_dir`` that is not this exact dataset. Defaults to False.
        workers (int): rendering processes. Defaults to min(2, CPU count).
        progress (callable): called as ``progress(done, total)`` after each image. Defaults to None.
        difficulty (str): "normal" or "hard" (smaller, fainter, more confusable defects; see
            :mod:`edgealex.synth.render`). Defaults to "normal".

    Returns:
        SynthResult: what was written (``reused`` True when the cache hit).

    Raises:
        EdgeAlexError: bad parameters, or ``out_dir`` holds something else and ``force`` is False.
    """
    start = time.perf_counter()
    out_dir = os.path.abspath(str(out_dir))
    splits = tuple(float(f) for f in splits)
    _check_params(per_class, size, splits)
    check_difficulty(difficulty)
    params = _params(per_class, size, seed, splits, difficulty)

    exists = os.path.exists(out_dir)
    if exists and not os.path.isdir(out_dir):
        raise EdgeAlexError(out_dir, "exists and is not a folder", "choose another -o/--out")
    if exists and os.listdir(out_dir):
        cached = _reusable(out_dir, params)
        if cached is not None:
            logger.info(f"reusing the identical dataset in {out_dir} (data_hash {cached['data_hash'][:12]})")
            return _result_from_manifest(out_dir, cached, time.perf_counter() - start, True)
        if not force:
            raise EdgeAlexError(out_dir, "is not empty and does not hold this exact dataset"
                                + _difference(out_dir, params), "pass --force to replace it, or choose another -o/--out")

    # Rendered into a staging folder beside out_dir, swapped in at the end (an old out_dir goes
    # only after that); removed on any failure, a full disk included.
    with staging_dir(out_dir, "dataset folder") as tmp:
        jobs = _plan(per_class, splits)
        workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        entries = []
        counts = {s: {label: 0 for label in LABELS} for s in SPLITS}
        for d in {(s, label) for s, _, _ in jobs for label in LABELS}:
            os.makedirs(os.path.join(tmp, d[0], d[1]), exist_ok=True)
        results = _map([(seed, size, split, ci, n, difficulty) for split, ci, n in jobs], workers)
        for done, ((split, ci, n), (data, surface)) in enumerate(zip(jobs, results), 1):
            label = LABELS[ci]
            rel = f"{split}/{label}/{n:05d}{IMAGE_EXT}"
            with open(os.path.join(tmp, split, label, f"{n:05d}{IMAGE_EXT}"), "wb") as handle:
                handle.write(data)
            entries.append({"path": rel, "class": label, "split": split, "surface": surface,
                            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
            counts[split][label] += 1
            if progress is not None:
                progress(done, len(jobs))
        entries.sort(key=lambda e: e["path"])
        manifest = {
            "format": DATASET_FORMAT,
            "params": params,
            "labels": list(LABELS),
            "surfaces": list(SURFACES),
            "counts": counts,
            "data_hash": _combined_hash(entries),
            "split_hashes": {s: _combined_hash([e for e in entries if e["split"] == s]) for s in SPLITS},
            "provenance": environment_summary(),
            "files": entries,
        }
        write_text_atomic(os.path.join(tmp, LABELS_NAME), "\n".join(LABELS) + "\n")
        write_json_atomic(os.path.join(tmp, MANIFEST_NAME), manifest)
    seconds = time.perf_counter() - start
    logger.info(f"wrote {len(entries)} images to {out_dir} in {seconds:.1f} s")
    return _result_from_manifest(out_dir, manifest, seconds, False)
