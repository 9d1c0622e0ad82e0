"""Frame -> verdict: the model's own preprocessing, the runner, softmax and the defect decision.

Defect-inspection semantics: a frame is a **defect** when its top class is a defect class and its
confidence (softmax probability) is at least ``threshold``. Defect classes are every label except
the defect-free ones (ok/good/pass/normal, :meth:`ModelInfo.defect_classes`) unless given. A top
defect class below the threshold is reported as not a defect, with ``defect_class`` True (the
overlay calls it "low confidence").
"""

from dataclasses import dataclass
from typing import List

import numpy as np

from edgealex.errors import EdgeAlexError
from edgealex.validate import check_float
from edgealex.preprocess import preprocess

DEFAULT_THRESHOLD = 0.5


@dataclass
class Verdict:
    """The classification of one frame.

    Args:
        class_index (int): index of the top class.
        top_class (str): its label.
        confidence (float): its softmax probability.
        defect (bool): top class is a defect class and confidence >= threshold.
        defect_class (bool): top class is a defect class (whatever the confidence).
    """

    class_index: int
    top_class: str
    confidence: float
    defect: bool
    defect_class: bool


def softmax(logits):
    """Row-wise softmax of (N, C) logits, computed stably in float64, returned as float32."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z.astype(np.float32)


def parse_defect_classes(defect_classes, labels):
    """Validate a list (or comma-separated string) of defect classes against the labels.

    Raises:
        EdgeAlexError: a name that is not a label, or an empty list.
    """
    if isinstance(defect_classes, str):
        defect_classes = [name.strip() for name in defect_classes.split(",") if name.strip()]
    names = list(defect_classes)
    unknown = [name for name in names if name not in labels]
    if unknown:
        raise EdgeAlexError("--defect-classes", "not among the model's labels: " + ", ".join(unknown),
                            "the labels are: " + ", ".join(labels))
    if not names:
        raise EdgeAlexError("--defect-classes", "empty list", "name at least one class, e.g. --defect-classes scratch,crack")
    return names


class Classifier:
    """Preprocess frames, run the engine, turn logits into :class:`Verdict` objects.

    Args:
        runner (Runner): an active runner.
        model_info (ModelInfo): labels and preprocessing. Defaults to ``runner.model_info``.
        threshold (float): minimum confidence for a defect, in [0, 1]. Defaults to 0.5.
        defect_classes (list or str): classes that count as defects. Defaults to every label
            except ok/good/pass/normal.

    Raises:
        EdgeAlexError: threshold out of range, unknown defect class, no model metadata.
    """

    def __init__(self, runner, model_info=None, threshold=DEFAULT_THRESHOLD, defect_classes=None):
        self.runner = runner
        self.model_info = model_info if model_info is not None else getattr(runner, "model_info", None)
        if self.model_info is None:
            raise EdgeAlexError("classifier", "no model metadata (labels, preprocessing)",
                                "pass model_info, or load the engine with edgealex.load()")
        threshold = check_float("--threshold", threshold, low=0.0, high=1.0, example="0.5")
        self.threshold = threshold
        self.labels = list(self.model_info.labels)
        if defect_classes is None:
            self.defect_classes = self.model_info.defect_classes()
        else:
            self.defect_classes = parse_defect_classes(defect_classes, self.labels)
        self._is_defect = np.array([label in self.defect_classes for label in self.labels], dtype=bool)
        self.spec = self.model_info.preprocess

    @property
    def input_dtype(self):
        return np.dtype(self.runner.input_spec.dtype)

    def preprocess(self, image, out=None):
        """One BGR frame -> float32 (3, S, S) with the model's preprocessing."""
        return preprocess(image, self.spec, out=out)

    def make_batch(self, tensors):
        """Stack preprocessed tensors into the engine's batch (padded to a static batch size).

        Returns:
            tuple: (batch array in the engine's dtype, number of real frames in it).
        """
        n = len(tensors)
        static = self.runner.batch_size
        if static is not None and n > static:
            raise EdgeAlexError("batch", f"{n} frames but the engine takes batches of {static}",
                                f"use --batch {static} or rebuild the engine with a dynamic batch")
        size = static or n
        if size == 1:
            batch = tensors[0][None]
        else:
            batch = np.zeros((size,) + tuple(tensors[0].shape), dtype=np.float32)
            for i, tensor in enumerate(tensors):
                batch[i] = tensor
        if batch.dtype != self.input_dtype:
            batch = batch.astype(self.input_dtype)
        return batch, n

    def postprocess(self, logits, count=None):
        """Logits (N, C) -> the first ``count`` verdicts.

        Raises:
            EdgeAlexError: the engine's class count differs from the labels.
        """
        logits = np.asarray(logits)
        if logits.ndim != 2 or logits.shape[1] != len(self.labels):
            raise EdgeAlexError("engine output", f"shape {tuple(logits.shape)} does not match the {len(self.labels)} labels {self.labels[:6]}",
                "the sidecar/metadata belongs to another model; rebuild the engine from its ONNX")
        count = logits.shape[0] if count is None else count
        probs = softmax(logits[:count])
        top = probs.argmax(axis=1)
        verdicts = []
        for row, index in enumerate(top):
            confidence = float(probs[row, index])
            is_defect_class = bool(self._is_defect[index])
            verdicts.append(Verdict(int(index), self.labels[index], confidence,
                                    is_defect_class and confidence >= self.threshold, is_defect_class))
        return verdicts

    def truth_is_defect(self, truth):
        """Whether a ground-truth label counts as a defect (None when there is no ground truth).

        A label of the model follows this classifier's defect classes; any other label is a
        defect unless it is ok/good/pass/normal.
        """
        from edgealex.modelinfo import DEFECT_FREE_LABELS

        if truth is None:
            return None
        if truth in self.labels:
            return truth in self.defect_classes
        return str(truth).lower() not in DEFECT_FREE_LABELS

    def classify(self, images):
        """Classify BGR images (any count; split into engine-sized batches).

        Returns:
            list: one :class:`Verdict` per image.
        """
        verdicts: List[Verdict] = []
        step = self.runner.batch_size or max(1, len(images))
        for start in range(0, len(images), step):
            chunk = [self.preprocess(image) for image in images[start:start + step]]
            batch, n = self.make_batch(chunk)
            verdicts += self.postprocess(self.runner.infer(batch), n)
        return verdicts

