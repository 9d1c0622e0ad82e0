"""The INT8 accuracy gate: FP32 and INT8 models side by side on ONNX Runtime over held-out images.

Figures: top-1 agreement of each INT8 model with FP32 (the gate), and top-1 accuracy of every
model when the held-out images sit in class sub-folders named like the model's labels.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from edgealex._optional import require
from edgealex.calib.images import ReadStats, iter_preprocessed, quiet_opencv
from edgealex.progress import ProgressBar
from edgealex.log import logger


@dataclass
class GateResult:
    """Agreement and accuracy figures over the held-out images.

    Args:
        images (int): held-out images evaluated.
        min_agreement (float): the threshold.
        agreement (dict): INT8 model key -> top-1 agreement with FP32 (0..1).
        agree_counts (dict): INT8 model key -> images where top-1 matched FP32.
        accuracy (dict): model key ("fp32" too) -> top-1 accuracy, only when labels are known.
        labeled (int): held-out images whose class folder is one of the model's labels.
        unknown_classes (list): class folders that are not model labels (no accuracy for them).
        mean_abs_logit_diff (dict): INT8 model key -> mean |logit - FP32 logit|.
        stats (ReadStats): what happened to the held-out files.
    """

    images: int
    min_agreement: float
    agreement: Dict[str, float] = field(default_factory=dict)
    agree_counts: Dict[str, int] = field(default_factory=dict)
    accuracy: Dict[str, Optional[float]] = field(default_factory=dict)
    labeled: int = 0
    unknown_classes: List[str] = field(default_factory=list)
    mean_abs_logit_diff: Dict[str, float] = field(default_factory=dict)
    stats: ReadStats = field(default_factory=ReadStats)

    @property
    def passed(self):
        return bool(self.agreement) and all(v >= self.min_agreement for v in self.agreement.values())

    def failures(self):
        """INT8 model keys below the threshold."""
        return [k for k, v in self.agreement.items() if v < self.min_agreement]

    def to_dict(self, relpath=None):
        return {
            "images": self.images, "min_agreement": self.min_agreement, "passed": self.passed,
            "agreement": {k: round(v, 6) for k, v in self.agreement.items()},
            "agree_counts": dict(self.agree_counts),
            "accuracy": {k: (None if v is None else round(v, 6)) for k, v in self.accuracy.items()},
            "labeled_images": self.labeled, "unknown_classes": list(self.unknown_classes),
            "mean_abs_logit_diff": {k: float(f"{v:.6g}") for k, v in self.mean_abs_logit_diff.items()},
            "read": self.stats.to_dict(relpath),
        }


def session(path):
    """An ONNX Runtime CPU session with full graph optimisation (what the runtime uses)."""
    ort = require("onnxruntime", "edgealex calibrate")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _batches(stream, batch):
    """Group ``(path, cls, array)`` into lists of ``batch``."""
    group = []
    for item in stream:
        group.append(item)
        if len(group) == batch:
            yield group
            group = []
    if group:
        yield group


def stack_batch(arrays, batch):
    """Stack (3,S,S) arrays into (batch,3,S,S), repeating the last one to fill a static batch."""
    np = require("numpy")
    rows = list(arrays) + [arrays[-1]] * (batch - len(arrays))
    return np.stack(rows).astype(np.float32, copy=False)


def evaluate(models, image_set, spec, labels, input_name, batch=1, min_agreement=0.99, progress=True):
    """Run every model on every usable held-out image; compare top-1 with the "fp32" model.

    Args:
        models (dict): key -> ONNX path; must contain "fp32".
        image_set (ImageSet): held-out images.
        spec (Preprocess): preprocessing.
        labels (list): model labels (class folder name -> index).
        input_name (str): model input name.
        batch (int): static batch of the models (images are padded to it). Defaults to 1.
        min_agreement (float): threshold for :attr:`GateResult.passed`.
        progress (bool): show a progress bar.

    Returns:
        GateResult: the figures (``images`` may be 0 when nothing was readable).
    """
    np = require("numpy")
    sessions = {key: session(path) for key, path in models.items()}
    output_name = {key: s.get_outputs()[0].name for key, s in sessions.items()}
    label_index = {name: i for i, name in enumerate(labels)}
    unknown = sorted({c for _, c in image_set.items if c is not None and c not in label_index})
    if unknown:
        logger.warning("held-out class folders %s are not model labels (%s): no accuracy for those images",
                       ", ".join(unknown), ", ".join(labels))
    result = GateResult(images=0, min_agreement=min_agreement, unknown_classes=unknown)
    top1 = {key: [] for key in sessions}
    diffs = {key: [] for key in sessions if key != "fp32"}
    truth = []
    with ProgressBar(len(image_set), "checking INT8 vs FP32", enabled=progress) as bar, quiet_opencv():
        stream = iter_preprocessed(image_set.items, spec, result.stats)
        for group in _batches(stream, batch):
            feed = {input_name: stack_batch([a for _, _, a in group], batch)}
            logits = {key: s.run([output_name[key]], feed)[0][:len(group)].reshape(len(group), -1)
                      for key, s in sessions.items()}
            for key, value in logits.items():
                top1[key].extend(int(i) for i in value.argmax(axis=1))
                if key != "fp32":
                    diffs[key].append(np.abs(value - logits["fp32"]).mean(axis=1))
            truth.extend(label_index.get(c, -1) if c is not None else -1 for _, c, _ in group)
            bar.update(result.stats.listed - bar.done)  # skipped files count as done too
    count = len(top1["fp32"])
    result.images = count
    if count == 0:
        return result
    reference = np.asarray(top1["fp32"])
    truth = np.asarray(truth)
    labeled = truth >= 0
    result.labeled = int(labeled.sum())
    for key in sessions:
        predicted = np.asarray(top1[key])
        if key != "fp32":
            agree = int((predicted == reference).sum())
            result.agree_counts[key] = agree
            result.agreement[key] = agree / float(count)
            result.mean_abs_logit_diff[key] = float(np.concatenate(diffs[key]).mean())
        if result.labeled:
            result.accuracy[key] = float((predicted[labeled] == truth[labeled]).mean())
    return result
