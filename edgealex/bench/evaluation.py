"""Accuracy and agreement of benchmarked engines on real labelled images (``bench --eval-images``).

An agreement figure on random inputs says nothing (every engine labels noise with the same class),
so the benchmark reports accuracy and agreement only from images whose class is known: a folder
with one sub-folder per class named like the model's labels (the calibration holdout split is
one). Every engine of a session sees the same preprocessed images (the model's own preprocessing,
:func:`edgealex.preprocess.preprocess`); agreement is top-1 agreement with the first engine
measured at the same batch size.
"""

import os
from dataclasses import dataclass

import numpy as np

from edgealex.errors import EdgeAlexError
from edgealex.log import logger

NOT_MEASURED = "not measured: no labelled images (pass --eval-images DIR, class sub-folders named like the labels)"


@dataclass
class EvalSet:
    """Preprocessed labelled images.

    Args:
        source (str): the folder.
        x (np.ndarray): float32 (N, 3, S, S) preprocessed images.
        truth (np.ndarray): int64 (N,) label index of each image.
        skipped (int): unreadable images or images of a class the model does not know.
    """

    source: str
    x: object
    truth: object
    skipped: int = 0

    @property
    def count(self):
        return int(self.truth.size)


def load_eval_set(folder, model_info):
    """Read and preprocess ``folder/<class>/*`` for ``model_info`` (labels + preprocessing).

    Args:
        folder (str): image folder with class sub-folders named like the model's labels.
        model_info (ModelInfo): the model's labels and preprocessing.

    Returns:
        EvalSet

    Raises:
        EdgeAlexError: no model metadata, a flat folder, no class in common with the labels, or no
            readable image.
    """
    from edgealex.imagefolder import scan_images
    from edgealex.preprocess import preprocess, read_image

    folder = str(folder)
    if model_info is None:
        raise EdgeAlexError("--eval-images " + folder, "the engine carries no labels (no edgealex metadata)",
                            "build the engine from an ONNX written by `edgealex export`")
    image_set = scan_images(folder)
    index = {name: i for i, name in enumerate(model_info.labels)}
    if not image_set.classes:
        raise EdgeAlexError("--eval-images " + folder, "has no class sub-folders, so no image has a known class",
                            "put the images in sub-folders named like the labels: " + ", ".join(model_info.labels))
    if not set(image_set.classes) & set(index):
        raise EdgeAlexError("--eval-images " + folder, "none of its class folders ({}) is a model label".format(
            ", ".join(image_set.classes)), "name the sub-folders like the labels: " + ", ".join(model_info.labels))
    arrays, truth, skipped = [], [], 0
    for path, cls in image_set.items:
        if cls not in index:
            skipped += 1
            continue
        try:
            image = read_image(path)
        except EdgeAlexError:
            skipped += 1
            continue
        arrays.append(preprocess(image, model_info.preprocess))
        truth.append(index[cls])
    if not arrays:
        raise EdgeAlexError("--eval-images " + folder, "no readable image of a known class",
                            "check the folder's images")
    if skipped:
        logger.warning("--eval-images %s: %d image(s) skipped (unreadable or of an unknown class)", folder, skipped)
    return EvalSet(os.path.abspath(folder), np.stack(arrays).astype(np.float32), np.asarray(truth, np.int64), skipped)


def predict(runner, eval_set, batch):
    """Top-1 class of every image of ``eval_set`` through ``runner`` at ``batch`` (last batch padded).

    Returns:
        np.ndarray: int64 (N,).
    """
    out = []
    n = eval_set.count
    for start in range(0, n, batch):
        chunk = eval_set.x[start:start + batch]
        real = chunk.shape[0]
        if real < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - real, axis=0)])
        dtype = getattr(getattr(runner, "input_spec", None), "dtype", np.float32)
        logits = np.array(runner.infer(np.ascontiguousarray(chunk, dtype=dtype), check_inputs=False), copy=True)
        out.append(np.argmax(logits.reshape(batch, -1), axis=-1)[:real])
    return np.concatenate(out).astype(np.int64)


def accuracy_record(predicted, eval_set, reference=None, reference_run=None):
    """The ``accuracy`` section of a bench result.

    Args:
        predicted (np.ndarray): this engine's top-1 classes.
        eval_set (EvalSet): the images.
        reference (np.ndarray or None): the first engine's top-1 classes (None: this is the first).
        reference_run (str or None): its run id.
    """
    record = {"measured": True, "images": eval_set.count, "source": eval_set.source,
              "top1_accuracy": float((predicted == eval_set.truth).mean()), "predicted": predicted.tolist()}
    if reference is None:
        record.update({"agreement_vs_first": 1.0, "reference_run": None})
    else:
        record.update({"agreement_vs_first": float((predicted == reference).mean()), "reference_run": reference_run})
    return record


def not_measured_record():
    return {"measured": False, "reason": NOT_MEASURED}
