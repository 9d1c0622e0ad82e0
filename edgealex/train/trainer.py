"""Train an AlexNet classifier on an ImageFolder dataset (CPU or CUDA).

Recipe knobs follow Krizhevsky et al. 2012 (SGD momentum 0.9, weight decay 5e-4, dropout 0.5,
random crops + horizontal flips, N(0, 0.01) init, step decay), plus a linear LR warm-up and an
Adam option for quick runs. :data:`PRESETS` names tested combinations; explicit arguments
override a preset.

Artifacts of ``train(data, "model.pt")``:

* ``model.pt`` - the best checkpoint by validation accuracy (weights, labels, preprocessing,
  epoch, data hash, settings); loads with ``torch.load(weights_only=True)`` and feeds
  ``edgealex export --weights``.
* ``model.pt.json`` - provenance sidecar written when training completes: settings, data hash,
  per-epoch history, holdout accuracy, timings, the checkpoint's sha256. ``reuse=True`` returns
  it instead of training again when the data hash and settings match.
* ``model.last.pt`` - resume state after every epoch (weights + optimizer + epoch);
  ``resume="model.last.pt"`` continues an interrupted or finished run for more epochs.

Validation and holdout images go through :func:`edgealex.preprocess.preprocess` with the spec
stored in the checkpoint, exactly as calibration and the deployed engines see them.
"""

import functools
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, List, Optional, Tuple

import numpy as np

from edgealex._optional import require
from edgealex.artifacts import (ensure_dir, environment_summary, read_json, read_sidecar, same_file, sha256_bytes,
                                sha256_file, sidecar_path, write_json_atomic)
from edgealex.validate import check_float
from edgealex.errors import EdgeAlexError
from edgealex.log import logger
from edgealex.models.alexnet import (build_model, check_arch, load_checkpoint, load_weights, model_from_checkpoint,
                                     save_checkpoint, weights_sha256)
from edgealex.preprocess import Preprocess
from edgealex.train.data import ImageStore, augment_batch, find_train_data, load_split, preprocessed

TRAIN_FORMAT = "edgealex-train"
OPTIMIZERS = ("sgd", "adam")
PRECISIONS = ("auto", "fp32", "bf16")
INITS = ("default", "normal", "he")
from edgealex.models.alexnet import MIN_INPUT_SIZE  # noqa: E402  (one rule: the models module owns it)


@dataclass
class TrainSettings:
    """Everything that decides the trained weights (hashed into the cache key).

    Args:
        arch (str): "alexnet" or "alexnet-v1".
        epochs (int): passes over the training images.
        batch (int): images per step.
        optimizer (str): "sgd" (momentum) or "adam".
        lr (float): peak learning rate (after warm-up).
        momentum (float): SGD momentum.
        weight_decay (float): L2 penalty.
        warmup_epochs (float): linear warm-up from lr/steps to lr over this many epochs.
        lr_steps (tuple): epochs (1-based, after which) the LR is multiplied by ``lr_gamma``.
        lr_gamma (float): step-decay factor.
        dropout (float): classifier dropout.
        init (str): "default" (PyTorch's), "normal" (N(0, 0.01), the 2012 recipe) or "he"
            (Kaiming normal; the quickest start for SGD without batch norm).
        hflip (bool): random left-right mirror.
        vflip (bool): random top-bottom mirror (fine for surfaces, wrong for most photos).
        input_size (int): model input side.
        resize (int): short side before the crop (training crops randomly inside it).
        precision (str): "auto" (bfloat16 autocast on CPUs with native bf16, else fp32), "fp32", "bf16".
        max_train_images (int): use at most this many training images, spread over the classes.
        max_val_images (int): same for validation.
        seed (int): model init, shuffling and augmentation.
        widths (dict): ``{"conv": [5 ints], "fc": [2 ints]}`` (a pruned or slimmed model); None = the arch's.
        accum_steps (int): gradient accumulation: one optimizer step per ``accum_steps`` batches
            (effective batch ``batch * accum_steps``; the LR schedule still counts batches).
        init_sha256 (str): :func:`weights_sha256` of the weights training starts from (fine-tuning), else None.
        teacher_sha256 (str): :func:`weights_sha256` of the distillation teacher's weights, else None.
        distill_temperature (float): softmax temperature T of the distillation loss.
        distill_alpha (float): weight of the soft-target term; the hard-label cross-entropy gets 1 - alpha.
    """

    arch: str = "alexnet"
    epochs: int = 30
    batch: int = 32
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    lr_steps: Tuple[int, ...] = (20, 27)
    lr_gamma: float = 0.1
    dropout: float = 0.5
    init: str = "normal"
    hflip: bool = True
    vflip: bool = False
    input_size: int = 224
    resize: int = 256
    precision: str = "auto"
    max_train_images: Optional[int] = None
    max_val_images: Optional[int] = None
    seed: int = 0
    widths: Optional[Dict[str, List[int]]] = None
    accum_steps: int = 1
    init_sha256: Optional[str] = None
    teacher_sha256: Optional[str] = None
    distill_temperature: float = 4.0
    distill_alpha: float = 0.9

    def to_dict(self):
        data = asdict(self)
        data["lr_steps"] = list(self.lr_steps)
        return data

    @classmethod
    def from_dict(cls, data):
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in dict(data).items() if k in known}
        if "lr_steps" in values:
            values["lr_steps"] = tuple(int(v) for v in values["lr_steps"])
        return cls(**values)

    def key(self):
        """sha256 of the settings (the training cache key, together with the data hash)."""
        data = self.to_dict()
        # fields added after the first release are hashed only when they change the training, so
        # the keys (and cached trainings) of runs that do not use them stay what they were
        for name, neutral in _NEUTRAL.items():
            if data.get(name) == neutral:
                data.pop(name, None)
        if data.get("teacher_sha256") is None:
            data.pop("distill_temperature", None)
            data.pop("distill_alpha", None)
        return sha256_bytes(json.dumps(data, sort_keys=True).encode("utf-8"))

    def check(self):
        check_arch(self.arch)
        problems = []
        if self.optimizer not in OPTIMIZERS:
            problems.append(("--optimizer " + str(self.optimizer), "unknown optimizer", "use sgd or adam"))
        if self.precision not in PRECISIONS:
            problems.append(("--precision " + str(self.precision), "unknown precision", "use auto, fp32 or bf16"))
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            problems.append((f"--epochs {self.epochs}", "must be at least 1", "pass --epochs 1 or more"))
        if not (isinstance(self.batch, int) and self.batch >= 1):
            problems.append((f"--batch {self.batch}", "must be at least 1", "pass --batch 1 or more"))
        try:
            check_float("--lr", self.lr, low=0, low_open=True, example="0.01")
        except EdgeAlexError as exc:
            problems.append((exc.subject, exc.what, "e.g. --lr 0.01 (sgd) or 1e-4 (adam)"))
        if not (isinstance(self.input_size, int) and self.input_size >= MIN_INPUT_SIZE):
            problems.append((f"input_size {self.input_size}", f"AlexNet needs inputs of at least {MIN_INPUT_SIZE} pixels",
                             f"use input_size 224 (the default) or at least {MIN_INPUT_SIZE}"))
        if self.init not in INITS:
            problems.append((f"--init {self.init}", "unknown weight initialisation", "use " + ", ".join(INITS)))
        if not (isinstance(self.accum_steps, int) and self.accum_steps >= 1):
            problems.append((f"--accum-steps {self.accum_steps}", "must be at least 1", "pass --accum-steps 1 or more"))
        if not 0.0 <= float(self.dropout) < 1.0:
            problems.append((f"--dropout {self.dropout}", "must be in [0, 1)", "e.g. --dropout 0.5"))
        if not float(self.warmup_epochs) >= 0.0:
            problems.append((f"--warmup-epochs {self.warmup_epochs}", "must be >= 0", "e.g. --warmup-epochs 5"))
        # finite: an infinite T passed this check and made the first step's loss nan ("lower --lr")
        for option, value, bounds, example in (
                ("--temperature", self.distill_temperature, {"low": 0, "low_open": True}, "4"),
                ("--alpha", self.distill_alpha, {"low": 0, "high": 1}, "0.9")):
            try:
                check_float(option, value, example=example, **bounds)
            except EdgeAlexError as exc:
                problems.append((exc.subject, exc.what, exc.note))
        if problems:
            raise EdgeAlexError(*problems[0])
        if self.widths is not None:
            from edgealex.models.alexnet import check_widths

            self.widths = check_widths(self.arch, self.widths)
        Preprocess(input_size=self.input_size, resize=self.resize)  # validates the geometry
        return self


_NEUTRAL = {"widths": None, "accum_steps": 1, "init_sha256": None, "teacher_sha256": None}


# Named recipes (explicit arguments override them):
# - "demo": the one-command demo on a 2-core CPU: 12 epochs over 1,400 synthetic images at 224x224
#   in ~3.5-4.5 min, 97.5% FP32 holdout accuracy (benchmarks/results/synth_train.md). SGD with
#   momentum, warm-up and step decay as in 2012, but He init (with N(0, 0.01) or PyTorch's default
#   init SGD sat at chance for the first epochs) and no dropout: so short a run underfits (train
#   accuracy <= val accuracy), and dropout 0.5 only slowed it (val 88% vs 92.5% after 10 epochs,
#   measured on generator v2).
# - "fast": CI smoke tests and `edgealex demo --fast` (seconds; learns next to nothing).
# - "recipe2012": the paper's schedule (long: meant for a GPU and a large dataset).
PRESETS: Dict[str, Dict] = {
    "demo": {"optimizer": "sgd", "lr": 0.01, "epochs": 12, "batch": 32, "warmup_epochs": 0.5,
             "lr_steps": (6, 10), "lr_gamma": 0.2, "init": "he", "dropout": 0.0, "vflip": True,
             "weight_decay": 5e-4},
    "fast": {"optimizer": "adam", "lr": 1e-4, "epochs": 1, "batch": 16, "warmup_epochs": 0.0, "lr_steps": (),
             "init": "default", "max_train_images": 80, "max_val_images": 40},
    "recipe2012": {"optimizer": "sgd", "lr": 0.01, "epochs": 90, "batch": 128, "warmup_epochs": 1.0,
                   "lr_steps": (30, 60, 80), "lr_gamma": 0.1, "init": "normal", "weight_decay": 5e-4},
}


def settings_for(preset=None, **overrides):
    """:class:`TrainSettings` from a preset name plus explicit overrides (None values ignored).

    Raises:
        EdgeAlexError: unknown preset or setting.
    """
    values = {}
    if preset is not None:
        if preset not in PRESETS:
            raise EdgeAlexError(f"--preset {preset}", "unknown preset", "use one of: " + ", ".join(PRESETS))
        values.update(PRESETS[preset])
    known = {f.name for f in fields(TrainSettings)}
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in known:
            raise EdgeAlexError(f"setting {key}", "unknown training setting", "use one of: " + ", ".join(sorted(known)))
        values[key] = value
    if "lr_steps" in values:
        values["lr_steps"] = tuple(int(v) for v in values["lr_steps"])
    return TrainSettings(**values).check()


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Args:
        path (str): best checkpoint.
        sidecar (str): provenance JSON.
        last_path (str or None): resume state (None when not kept).
        labels (list): class order.
        best_val_acc (float): validation accuracy of the best checkpoint (0..1).
        best_epoch (int): its epoch (1-based).
        holdout_acc (float or None): accuracy of the best checkpoint on ``holdout/``.
        holdout_confusion (list or None): confusion matrix [true][predicted] on the holdout.
        history (list): per-epoch dicts (epoch, train_loss, train_acc, val_acc, lr, seconds).
        seconds (float): wall time of this call.
        train_images_per_s (float): training throughput.
        data_hash (str): content hash of the training and validation images.
        settings (dict): the settings used.
        settings_key (str): their hash.
        counts (dict): images per split and class.
        device (str): "cpu" or "cuda".
        precision (str): "fp32" or "bf16".
        threads (int): CPU threads.
        reused (bool): True when an identical finished run was reused.
        resumed_from (str or None): resume checkpoint.
    """

    path: str
    sidecar: str
    last_path: Optional[str]
    labels: List[str]
    best_val_acc: float
    best_epoch: int
    holdout_acc: Optional[float]
    holdout_confusion: Optional[List[List[int]]]
    history: List[dict]
    seconds: float
    train_images_per_s: float
    data_hash: str
    settings: dict
    settings_key: str
    counts: dict = field(default_factory=dict)
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 1
    reused: bool = False
    resumed_from: Optional[str] = None

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class LogProgress:
    """Default progress reporting: one log line per epoch. Subclass for bars."""

    def epoch_start(self, epoch, epochs, steps):
        pass

    def step(self, done, loss):
        pass

    def epoch_end(self, stats):
        best = "  (best)" if stats.get("best") else ""
        logger.info("epoch {}/{}  loss {:.3f}  train acc {:.1%}  val acc {:.1%}  lr {:.2g}  {:.0f} s{}".format(
            stats["epoch"], stats["epochs"], stats["train_loss"], stats["train_acc"], stats["val_acc"],
            stats["lr"], stats["seconds"], best))

    def close(self):
        pass


def last_path_for(out_path):
    """``model.pt`` -> ``model.last.pt`` (the resume state)."""
    base, ext = os.path.splitext(str(out_path))
    return base + ".last" + (ext or ".pt")


def _subset(items, limit, num_classes):
    """At most ``limit`` items spread evenly over the classes, keeping the sorted order."""
    if limit is None or limit >= len(items):
        return list(items)
    by_class = {}
    for index, (_, ci) in enumerate(items):
        by_class.setdefault(ci, []).append(index)
    share = max(1, limit // max(1, len(by_class)))
    keep = []
    for ci in sorted(by_class):
        members = by_class[ci]
        k = min(share, len(members))
        keep.extend(members[(2 * i + 1) * len(members) // (2 * k)] for i in range(k))
    return [items[i] for i in sorted(keep)]


def _use_bf16(torch, device, precision):
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    if device.type != "cpu":
        return False
    try:  # oneDNN reports native bf16 (AVX512-BF16 / AMX); emulated bf16 would be slower than fp32
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _keep_freed_memory():
    """Ask glibc to reuse freed memory instead of returning it to the kernel.

    Every training step allocates (and frees) hundreds of MB: gradients, bf16 weight copies,
    activations. Above glibc's mmap threshold each allocation is a fresh mmap whose pages fault
    in again; measured here that is ~0.35 s of kernel time per AlexNet step of 32 images. Raising
    the mmap and trim thresholds keeps the pages mapped. Process-wide and glibc-only; elsewhere
    (musl, macOS, Windows) this does nothing.
    """
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or "glibc" not in " ".join(platform.libc_ver()).lower():
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        big = 2 ** 31 - 1
        return bool(libc.mallopt(m_mmap_threshold, big) and libc.mallopt(m_trim_threshold, big)
                    and libc.mallopt(m_top_pad, 64 << 20))
    except (OSError, AttributeError):
        return False


def _lr_at(settings, step, steps_per_epoch):
    epoch_float = step / float(steps_per_epoch)
    warm = settings.warmup_epochs * steps_per_epoch
    factor = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
    decays = sum(1 for boundary in settings.lr_steps if epoch_float >= boundary)
    return settings.lr * factor * (settings.lr_gamma ** decays)


def _make_optimizer(torch, model, settings):
    # weight decay on weights only: decaying biases (initialised to 1 in the 2012 recipe) slows learning
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if settings.optimizer == "adam":
        make = functools.partial(torch.optim.Adam, groups, lr=settings.lr)
    else:
        make = functools.partial(torch.optim.SGD, groups, lr=settings.lr, momentum=settings.momentum)
    # The fused kernels update AlexNet's 61 M parameters in one pass: measured here 0.09 s (SGD) and
    # 0.14 s (Adam) per step against 0.45 s and 0.77 s for the default multi-pass implementation.
    try:
        return make(fused=True)
    except (TypeError, RuntimeError, ValueError):  # older PyTorch or a device without fused kernels
        return make()


def _init_he(torch, model):
    """He (Kaiming) normal init for ReLU layers, zero biases, a small N(0, 0.01) output layer.

    PyTorch's default init shrinks activations by ~2.4x per layer in this 8-layer network, and
    N(0, 0.01) shrinks them more; with SGD the loss then sits at chance for many epochs. He init
    keeps the signal scale, so SGD starts learning within the first epoch.
    """
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    for layer in layers[:-1]:
        torch.nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
        torch.nn.init.zeros_(layer.bias)
    torch.nn.init.normal_(layers[-1].weight, 0.0, 0.01)
    torch.nn.init.zeros_(layers[-1].bias)


def predict(model, paths, spec, device, batch=64):
    """Class indices predicted for image files, preprocessed by :func:`edgealex.preprocess.preprocess`."""
    torch = require("torch", "edgealex train")
    model.eval()
    out = []
    with torch.no_grad():
        for chunk in preprocessed(paths, spec, chunk=batch):
            logits = model(torch.from_numpy(chunk).to(device))
            out.append(logits.argmax(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,), np.int64)


def _confusion(targets, predictions, num_classes):
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (targets, predictions), 1)
    return matrix.tolist()


def _reusable(out_path, data_hash, settings, exported_onnx=None):
    """The training record of an identical finished run whose weights are still here (the
    checkpoint, or an ONNX exported from it), else None; says why an existing record is not used."""
    side = sidecar_path(out_path)
    if not os.path.isfile(side):
        return None
    if not os.path.isfile(out_path) and exported_onnx is None:
        logger.info(f"training again: {out_path} is gone (only its record {side} is left)")
        return None
    try:
        record = read_sidecar(side, "training record", require_sha256=False)
    except EdgeAlexError as exc:  # unreadable or malformed: not reusable, the training runs
        logger.info(f"training again: {exc.what} ({side})")
        return None
    if record.get("format") != TRAIN_FORMAT or not record.get("complete"):
        logger.info(f"training again: {side} is not the record of a finished run")
        return None
    if record.get("data_hash") != data_hash or record.get("settings_key") != settings.key():
        logger.info(f"training again: the data or the settings differ from {side}")
        return None
    if os.path.isfile(out_path):
        if record.get("checkpoint_sha256") == sha256_file(out_path):
            return record
        logger.info(f"training again: {out_path} is not the checkpoint {side} records")
        return None
    if exported_weights_sha256(exported_onnx) == record.get("checkpoint_sha256"):
        return record
    logger.info(f"training again: {out_path} was not kept and {exported_onnx} is not (or no longer) its export")
    return None


def exported_weights_sha256(onnx_path):
    """The checkpoint sha256 an ONNX was exported from (its sidecar's provenance), or None when the
    ONNX or its sidecar is missing, unreadable, malformed or no longer matches the file."""
    side = sidecar_path(onnx_path)
    if not (os.path.isfile(onnx_path) and os.path.isfile(side)):
        return None
    try:
        record = read_json(side, "ONNX sidecar")
    except EdgeAlexError:
        return None
    if record.get("sha256") != sha256_file(onnx_path):
        return None
    model = record.get("model")
    provenance = model.get("provenance") if isinstance(model, dict) else None
    weights = provenance.get("weights_sha256") if isinstance(provenance, dict) else None
    return weights if isinstance(weights, str) else None


def train(data_dir, out_path, arch=None, epochs=None, batch=None, optimizer=None, lr=None, preset="demo",
          resume=None, reuse=False, keep_last=True, save_every=1, threads=None, device=None, progress=None,
          memory_format="channels_last", init_weights=None, teacher=None, exported_onnx=None, **overrides):
    """Train an AlexNet on an ImageFolder dataset and keep the best checkpoint by val accuracy.

    Args:
        data_dir (str): dataset (layouts in :mod:`edgealex.train.data`).
        out_path (str): best checkpoint to write (its sidecar and resume state go next to it).
        arch, epochs, batch, optimizer, lr: override the preset (None keeps it).
        preset (str): a key of :data:`PRESETS`. Defaults to "demo".
        resume (str): a ``.last.pt`` resume state (or any edgealex checkpoint: weights only). The run
            continues with the settings stored in it (the preset is ignored); explicit arguments,
            typically a larger ``epochs``, override them.
        reuse (bool): return the recorded result when ``out_path`` was already trained on the same
            data hash with the same settings. Defaults to False.
        exported_onnx (str): with ``reuse``, an ONNX exported from ``out_path``: when the checkpoint
            itself was removed after export (``edgealex demo`` keeps only the ONNX), its training
            record (``out_path`` + ".json") and this ONNX stand for it if the ONNX's provenance
            names the recorded checkpoint sha256. Defaults to None (the checkpoint must exist).
        keep_last (bool): keep the resume state after training. Defaults to True.
        save_every (int): write the resume state every N epochs (and after the last one); it holds
            weights and optimizer state (~0.5 GB for AlexNet with SGD). Defaults to 1.
        threads (int): CPU threads for PyTorch. Defaults to the CPU count.
        device (str): "cpu" or "cuda". Defaults to cuda when available.
        progress (LogProgress): progress reporter. Defaults to one log line per epoch.
        init_weights (str): start from this checkpoint's weights (fine-tuning, e.g. after ``edgealex
            prune``); its arch and widths become the settings' and its sha256 joins the cache key.
            Defaults to None (fresh init).
        teacher (str): a checkpoint to distil from (Hinton et al. 2015): the loss becomes
            ``alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)``; its sha256
            joins the cache key. Defaults to None.
        **overrides: any other :class:`TrainSettings` field (momentum, warmup_epochs, ...), or
            ``width_mult`` (float in (0, 1]): the arch with every conv/hidden FC width scaled by it.
        memory_format (str): "channels_last" or "contiguous" layout of weights and activations;
            both are exact, which is faster depends on the CPU (see :mod:`edgealex.train.sizing`).
            Not part of the cache key. Defaults to "channels_last".

    Returns:
        TrainResult: the outcome.

    Raises:
        EdgeAlexError: bad data folder or settings, or a resume state that does not fit.

    Note:
        On CPU (glibc) the process keeps freed memory mapped for reuse (see ``_keep_freed_memory``),
        and PyTorch's thread count is set for the call and restored afterwards.
    """
    torch = require("torch", "edgealex train")
    start = time.perf_counter()
    out_path = str(out_path)
    # named as the user typed them (scaled_widths would blame --keep; torch a RuntimeError traceback)
    width_mult = check_float("--width-mult", overrides.pop("width_mult", None), low=0, low_open=True, high=1,
                             allow_none=True, example="0.5")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
        raise EdgeAlexError("--threads", f"must be a whole number >= 0 (0 = every CPU), got {threads!r}",
                            "pass --threads 4, or leave it out to use every CPU")
    if os.path.isdir(out_path):
        raise EdgeAlexError(out_path, "the checkpoint path is a folder", "pass -o path/to/model.pt")
    # before the first epoch, not after it: the checkpoint, its sidecar and the resume state go there
    ensure_dir(os.path.dirname(os.path.abspath(out_path)), "folder for the checkpoint")
    for given, option in ((teacher, "--teacher"), (init_weights, "--init-weights")):
        if given is not None and (same_file(out_path, given) or same_file(last_path_for(out_path), given)):
            raise EdgeAlexError(out_path, f"would overwrite the {option} checkpoint it learns from",
                                "choose another -o")
    explicit = dict(overrides, arch=arch, epochs=epochs, batch=batch, optimizer=optimizer, lr=lr)
    aux = _auxiliary_models(init_weights, teacher, explicit)
    resume_state = load_checkpoint(resume) if resume is not None else None
    for key in ("parent", "pruning", "init_weights"):  # a resumed fine-tuning keeps its start's lineage
        if resume_state is not None and resume_state.get(key) is not None:
            aux["provenance"].setdefault(key, resume_state[key])
    if resume_state is not None and isinstance(resume_state.get("settings"), dict):
        # a resumed run keeps the settings it was started with; explicit arguments still win
        stored = TrainSettings.from_dict(resume_state["settings"]).to_dict()
        stored.update({k: v for k, v in explicit.items() if v is not None})
        settings = settings_for(None, **stored)
    else:
        settings = settings_for(preset, **explicit)
    if width_mult is not None:  # a slimmer model: every conv and hidden FC width scaled (multiples of 8)
        from edgealex.models.alexnet import scaled_widths

        settings.widths = scaled_widths(settings.arch, width_mult)
        settings.check()
    data = find_train_data(data_dir)
    _check_auxiliary(aux, settings, data, resume)
    if reuse and resume is None:
        record = _reusable(out_path, data.data_hash, settings, exported_onnx)
        if record is not None:
            where = out_path if os.path.isfile(out_path) else f"{exported_onnx} (the checkpoint was not kept)"
            logger.info(f"reusing the training recorded in {sidecar_path(out_path)}: same data "
                        f"({data.data_hash[:12]}) and settings; weights in {where}")
            result = TrainResult.from_dict(record["result"])
            result.reused, result.seconds = True, time.perf_counter() - start
            return result
    progress = progress or LogProgress()
    spec = Preprocess(input_size=settings.input_size, resize=settings.resize)
    num_classes = len(data.labels)

    if resume_state is not None:
        if resume_state.get("data_hash") and resume_state["data_hash"] != data.data_hash:
            logger.warning(f"{resume} was trained on other images (data hash differs); continuing on {data.root}")
        if resume_state.get("labels") and list(resume_state["labels"]) != list(data.labels):
            raise EdgeAlexError(str(resume), "was trained with other labels ({})".format(", ".join(resume_state["labels"])),
                                "resume with the same dataset, or start a new run without --resume")
        if resume_state.get("arch") and resume_state["arch"] != settings.arch:
            raise EdgeAlexError(str(resume), f"is a {resume_state['arch']} checkpoint, not {settings.arch}",
                                f"pass --arch {resume_state['arch']}")

    if (device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cpu":
        _keep_freed_memory()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(int(threads or os.cpu_count() or 1))
    try:
        return _run(torch, settings, data, spec, num_classes, out_path, resume, resume_state, keep_last,
                    max(1, int(save_every)), device, progress, start, memory_format, aux)
    finally:
        torch.set_num_threads(old_threads)
        progress.close()


def distillation_loss(torch, student_logits, teacher_logits, hard_loss, temperature, alpha):
    """Hinton et al. 2015 ("Distilling the Knowledge in a Neural Network", arXiv:1503.02531):
    ``alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * hard_loss``.

    The T^2 factor keeps the soft-target gradients on the scale of the hard-label ones when T
    changes (paper, section 2). Logits are (batch, classes) float tensors; returns a scalar tensor.
    """
    F = torch.nn.functional
    t = float(temperature)
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
    return float(alpha) * soft + (1.0 - float(alpha)) * hard_loss


def _auxiliary_models(init_weights, teacher, explicit):
    """Load the fine-tuning start and the distillation teacher; put their hashes (and the start's
    arch and widths) into the explicit settings."""
    aux = {"provenance": {}}
    if init_weights is not None:
        ckpt = load_checkpoint(init_weights)
        aux.update(init=ckpt, init_path=str(init_weights))
        explicit["init_sha256"] = weights_sha256(ckpt["state_dict"])
        if ckpt.get("arch"):
            explicit["arch"] = ckpt["arch"]
        explicit["widths"] = ckpt.get("widths")
        for key in ("parent", "pruning"):  # a pruned start keeps its lineage in the fine-tuned checkpoint
            if ckpt.get(key) is not None:
                aux["provenance"][key] = ckpt[key]
        aux["provenance"]["init_weights"] = {"path": os.path.abspath(str(init_weights)),
                                             "sha256": explicit["init_sha256"]}
    if teacher is not None:
        ckpt = load_checkpoint(teacher)
        aux.update(teacher=ckpt, teacher_path=str(teacher))
        explicit["teacher_sha256"] = weights_sha256(ckpt["state_dict"])
        aux["provenance"]["teacher"] = {"path": os.path.abspath(str(teacher)), "sha256": explicit["teacher_sha256"],
                                        "arch": ckpt.get("arch"), "widths": ckpt.get("widths")}
    return aux


def _check_auxiliary(aux, settings, data, resume):
    for key, what in (("init", "--init-weights"), ("teacher", "--teacher")):
        ckpt = aux.get(key)
        if ckpt is None:
            continue
        if ckpt.get("labels") and list(ckpt["labels"]) != list(data.labels):
            raise EdgeAlexError(aux[key + "_path"], "was trained with other classes ({})".format(", ".join(ckpt["labels"])),
                                f"pass a {what} checkpoint trained on the same classes as {data.root}")
        if key == "teacher" and not ckpt.get("labels"):
            raise EdgeAlexError(aux["teacher_path"], "has no class labels",
                                "distil from a checkpoint written by `edgealex train`")
    if settings.teacher_sha256 is not None and aux.get("teacher") is None:
        raise EdgeAlexError(str(resume), "was a distillation run", "pass the same --teacher to resume it")


def _teacher_model(torch, aux, num_classes, dev, layout):
    if aux.get("teacher") is None:
        return None
    teacher = model_from_checkpoint(aux["teacher"], source=aux["teacher_path"], num_classes=num_classes)
    teacher = teacher.to(dev).to(memory_format=layout).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def _run(torch, settings, data, spec, num_classes, out_path, resume, resume_state, keep_last, save_every, device,
         progress, start, memory_format="channels_last", aux=None):
    aux = aux or {}
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    bf16 = _use_bf16(torch, dev, settings.precision)
    train_items = _subset(data.train, settings.max_train_images, num_classes)
    val_items = _subset(data.val, settings.max_val_images, num_classes)
    train_paths, train_targets = load_split(train_items)
    val_paths, val_targets = load_split(val_items)
    load_start = time.perf_counter()
    store = ImageStore(train_paths, max(spec.resize, spec.input_size))
    logger.debug(f"decoded {len(store)} training images in {time.perf_counter() - load_start:.1f} s")

    model = build_model(settings.arch, num_classes=num_classes, dropout=settings.dropout,
                        init=None if settings.init == "he" else settings.init, seed=settings.seed,
                        widths=settings.widths)
    if settings.init == "he":
        _init_he(torch, model)
    if aux.get("init") is not None:
        load_weights(model, aux["init"]["state_dict"], source=aux["init_path"])
    if memory_format not in ("channels_last", "contiguous"):
        raise EdgeAlexError(f"memory_format {memory_format}", "unknown layout", "use channels_last or contiguous")
    layout = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    teacher = _teacher_model(torch, aux, num_classes, dev, layout)
    model = model.to(dev).to(memory_format=layout)
    optimizer = _make_optimizer(torch, model, settings)
    first_epoch, best_acc, best_epoch, history = 1, -1.0, 0, []
    if resume_state is not None:
        model.load_state_dict(resume_state["state_dict"])
        state = resume_state.get("train_state") or {}
        if state.get("optimizer") and state.get("optimizer_name") == settings.optimizer:
            optimizer.load_state_dict(state["optimizer"])
        else:
            logger.warning(f"{resume} has no {settings.optimizer} optimizer state; the optimizer starts fresh")
        first_epoch = int(resume_state.get("epoch", 0)) + 1
        best_acc = float(resume_state.get("best_val_acc", -1.0))
        best_epoch = int(state.get("best_epoch", resume_state.get("epoch", 0)))
        history = list(state.get("history", []))
        if first_epoch > settings.epochs:
            raise EdgeAlexError(str(resume), f"already holds {first_epoch - 1} epoch(s)",
                                f"pass --epochs above {first_epoch - 1} to train further")
        logger.info(f"resuming from {resume} at epoch {first_epoch}")

    steps = int(np.ceil(len(store) / float(settings.batch)))
    loss_fn = torch.nn.CrossEntropyLoss()
    extra = {"data_hash": data.data_hash, "settings": settings.to_dict(), "settings_key": settings.key()}
    extra.update(aux.get("provenance") or {})
    accum = settings.accum_steps
    best = {"state": None, "epoch": best_epoch, "acc": best_acc}
    trained_images, train_seconds = 0, 0.0
    try:
        for epoch in range(first_epoch, settings.epochs + 1):
            epoch_start = time.perf_counter()
            # per-epoch seeds: a resumed run shuffles and augments exactly like an uninterrupted one
            rng = np.random.default_rng([settings.seed, epoch])
            torch.manual_seed(settings.seed * 100003 + epoch)
            order = rng.permutation(len(store))
            model.train()
            progress.epoch_start(epoch, settings.epochs, steps)
            loss_sum, correct, seen = 0.0, 0, 0
            for step in range(steps):
                idx = order[step * settings.batch:(step + 1) * settings.batch]
                lr = _lr_at(settings, (epoch - 1) * steps + step, steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x = augment_batch(store.get(idx), spec, rng, crop="random", hflip=settings.hflip,
                                  vflip=settings.vflip)
                y = torch.from_numpy(train_targets[idx])
                x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = model(x)
                loss = loss_fn(logits.float(), y)
                if teacher is not None:
                    with torch.no_grad(), torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
                        teacher_logits = teacher(x)
                    loss = distillation_loss(torch, logits.float(), teacher_logits.float(), loss,
                                             settings.distill_temperature, settings.distill_alpha)
                if not torch.isfinite(loss):
                    raise EdgeAlexError(f"epoch {epoch} step {step + 1}", "the training loss diverged (not finite)",
                                        "lower --lr (e.g. by 10x) or use --optimizer adam" + (
                                            "; when distilling, also a moderate --temperature (e.g. 4)"
                                            if teacher is not None else ""))
                if step % accum == 0:
                    optimizer.zero_grad(set_to_none=True)
                (loss / accum if accum > 1 else loss).backward()
                if (step + 1) % accum == 0 or step + 1 == steps:
                    optimizer.step()
                loss_value = float(loss.detach())
                loss_sum += loss_value * len(idx)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(idx)
                progress.step(step + 1, loss_value)
            train_seconds += time.perf_counter() - epoch_start
            trained_images += seen
            predictions = predict(model, val_paths, spec, dev)
            val_acc = float((predictions == val_targets).mean())
            improved = val_acc >= best["acc"]  # ties go to the later (longer-trained) epoch
            if improved:  # kept in memory; written once at the end (or when interrupted)
                best.update(acc=val_acc, epoch=epoch,
                            state={k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
            stats = {"epoch": epoch, "epochs": settings.epochs, "train_loss": loss_sum / max(1, seen),
                     "train_acc": correct / float(max(1, seen)), "val_acc": val_acc, "lr": lr,
                     "seconds": round(time.perf_counter() - epoch_start, 2), "best": improved}
            history.append({k: v for k, v in stats.items() if k not in ("epochs", "best")})
            progress.epoch_end(stats)
            if (epoch % save_every == 0 and epoch != settings.epochs) or (epoch == settings.epochs and keep_last):
                save_start = time.perf_counter()
                save_checkpoint(last_path_for(out_path), model, data.labels, spec, epoch=epoch,
                                best_val_acc=best["acc"], **extra,
                                train_state={"optimizer": optimizer.state_dict(), "optimizer_name": settings.optimizer,
                                             "best_epoch": best["epoch"], "history": history})
                logger.debug(f"saved the resume state in {time.perf_counter() - save_start:.1f} s")
    except BaseException:
        if best["state"] is not None:  # interrupted: keep the best weights reached so far
            _save_best(out_path, model, best["state"], data.labels, spec, best["epoch"], best["acc"], extra)
            logger.warning(f"training stopped early: best checkpoint so far in {out_path}; "
                           f"continue with --resume {last_path_for(out_path)}")
        raise
    best_acc, best_epoch, best_state = best["acc"], best["epoch"], best["state"]
    if best_state is not None:
        _save_best(out_path, model, best_state, data.labels, spec, best_epoch, best_acc, extra)
    else:  # resumed without improving on the recorded best: keep that checkpoint when it exists
        previous = load_checkpoint(out_path) if os.path.isfile(out_path) else None
        best_state = previous["state_dict"] if previous else {k: v.cpu() for k, v in model.state_dict().items()}
        if previous is None:
            _save_best(out_path, model, best_state, data.labels, spec, best_epoch, best_acc, extra)
    model.load_state_dict(best_state)
    holdout_acc, confusion = None, None
    if data.holdout:
        hold_paths, hold_targets = load_split(data.holdout)
        predictions = predict(model, hold_paths, spec, dev)
        holdout_acc = float((predictions == hold_targets).mean())
        confusion = _confusion(hold_targets, predictions, num_classes)
        logger.info(f"holdout accuracy {holdout_acc:.1%} on {len(hold_paths)} images")

    last = last_path_for(out_path)
    if not keep_last and os.path.exists(last):
        os.remove(last)
    result = TrainResult(
        path=out_path, sidecar=sidecar_path(out_path), last_path=last if keep_last else None,
        labels=list(data.labels), best_val_acc=best_acc, best_epoch=best_epoch, holdout_acc=holdout_acc,
        holdout_confusion=confusion, history=history, seconds=time.perf_counter() - start,
        train_images_per_s=trained_images / train_seconds if train_seconds > 0 else 0.0,
        data_hash=data.data_hash, settings=settings.to_dict(), settings_key=settings.key(),
        counts={"train": len(train_items), "val": len(val_items), "holdout": len(data.holdout)},
        device=dev.type, precision="bf16" if bf16 else "fp32", threads=torch.get_num_threads(),
        resumed_from=str(resume) if resume else None)
    write_json_atomic(sidecar_path(out_path), {
        "format": TRAIN_FORMAT, "complete": True, "data_hash": data.data_hash, "settings_key": settings.key(),
        "checkpoint_sha256": sha256_file(out_path), "data_dir": os.path.abspath(data.root),
        "layout": data.layout, "class_counts": data.counts(), "result": result.to_dict(),
        "provenance": environment_summary()})
    return result


def _save_best(out_path, model, state, labels, spec, epoch, best_acc, extra):
    # save_checkpoint reads model.state_dict(); a shallow stand-in carries the best weights
    holder = _StateHolder(model.arch, state, getattr(model, "widths", None))
    save_checkpoint(out_path, holder, labels, spec, epoch=epoch, best_val_acc=best_acc, **extra)


class _StateHolder:
    def __init__(self, arch, state, widths=None):
        self.arch = arch
        self.widths = widths
        self._state = state

    def state_dict(self):
        return self._state


@dataclass
class EvalResult:
    """Accuracy of a checkpoint on a labelled image folder."""

    accuracy: float
    count: int
    labels: List[str]
    per_class_accuracy: Dict[str, Optional[float]]
    confusion: List[List[int]]

    def to_dict(self):
        return asdict(self)


def evaluate(checkpoint, image_dir, device=None, threads=None):
    """Top-1 accuracy of an edgealex checkpoint on ``image_dir/<class>/*`` (via ``preprocess``).

    Args:
        checkpoint (str): an edgealex checkpoint (labels and preprocessing inside).
        image_dir (str): class sub-folders named like the checkpoint's labels.
        device (str): "cpu" or "cuda". Defaults to cuda when available.
        threads (int): CPU threads. Defaults to the CPU count.

    Returns:
        EvalResult: accuracy, per-class accuracy, confusion matrix [true][predicted].

    Raises:
        EdgeAlexError: the checkpoint has no labels, or a folder class is not among them.
    """
    torch = require("torch", "edgealex train")
    from edgealex.train.data import _indexed, _scan

    ckpt = load_checkpoint(checkpoint)
    labels = ckpt.get("labels")
    if not labels:
        raise EdgeAlexError(str(checkpoint), "has no labels", "evaluate a checkpoint written by `edgealex train`")
    spec = Preprocess.from_dict(ckpt["preprocess"]) if ckpt.get("preprocess") else Preprocess()
    items = _indexed(_scan(image_dir).items, labels, image_dir)
    model = model_from_checkpoint(ckpt, source=str(checkpoint), num_classes=len(labels))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev)
    old = torch.get_num_threads()
    torch.set_num_threads(int(threads or os.cpu_count() or 1))
    try:
        paths, targets = load_split(items)
        predictions = predict(model, paths, spec, dev)
    finally:
        torch.set_num_threads(old)
    per_class = {}
    for i, label in enumerate(labels):
        mask = targets == i
        per_class[label] = float((predictions[mask] == i).mean()) if mask.any() else None
    return EvalResult(accuracy=float((predictions == targets).mean()), count=len(paths), labels=list(labels),
                      per_class_accuracy=per_class, confusion=_confusion(targets, predictions, len(labels)))
