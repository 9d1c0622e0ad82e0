"""AlexNet models.

- ``alexnet``: torchvision's layout (conv 64-192-384-256-256, AdaptiveAvgPool 6x6, classifier
  9216-4096-4096-N) with identical ``state_dict`` keys (``features.0.weight`` ...
  ``classifier.6.bias``), so a torchvision checkpoint loads unchanged.
- ``alexnet-v1``: Krizhevsky et al. 2012: conv 96-256-384-384-256, 11x11 stride-4 first conv, LRN
  (size 5, alpha 1e-4, beta 0.75, k 2) after the first two ReLUs (switchable), overlapping 3x3/2
  max-pooling, dropout 0.5. LRN exports as the ONNX ``LRN`` operator, which TensorRT maps to its LRN
  layer (DLA accepts windows 3, 5, 7, 9).

torch is imported when a model is built, never at import time.
"""

import functools
import os

from edgealex._optional import require
from edgealex.errors import EdgeAlexError

ARCHS = ("alexnet", "alexnet-v1")
CHECKPOINT_FORMAT = "edgealex-checkpoint"
LRN_DEFAULTS = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}


@functools.lru_cache(maxsize=None)
def _classes():
    torch = require("torch", "AlexNet models")
    nn = torch.nn
    F = torch.nn.functional

    class _LRNExport(torch.autograd.Function):
        """Emits one ONNX LRN node instead of PyTorch's decomposition (used during export only)."""

        @staticmethod
        def forward(ctx, x, size, alpha, beta, k):
            return F.local_response_norm(x, size, alpha, beta, k)

        @staticmethod
        def symbolic(g, x, size, alpha, beta, k):
            return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)

    class LRN(nn.LocalResponseNorm):
        def forward(self, x):
            if torch.onnx.is_in_onnx_export():
                return _LRNExport.apply(x, self.size, self.alpha, self.beta, self.k)
            return super().forward(x)

    class _AlexNetBase(nn.Module):
        """features -> AdaptiveAvgPool 6x6 -> classifier 9216-4096-4096-N (both archs share it)."""

        def __init__(self, features, num_classes, dropout):
            super().__init__()
            self.features = features
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            self.classifier = nn.Sequential(
                nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
                nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
                nn.Linear(4096, num_classes),
            )

        def forward(self, x):
            x = self.features(x)
            x = self.avgpool(x)
            x = torch.flatten(x, 1)
            return self.classifier(x)

    class AlexNet(_AlexNetBase):
        """torchvision layout; ``state_dict`` keys match ``torchvision.models.alexnet``."""

        arch = "alexnet"

        def __init__(self, num_classes=1000, dropout=0.5):
            super().__init__(nn.Sequential(
                nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
            ), num_classes, dropout)

    class AlexNetV1(_AlexNetBase):
        """The 2012 network (single-tower: grouped convolutions merged)."""

        arch = "alexnet-v1"

        def __init__(self, num_classes=1000, dropout=0.5, lrn=True):
            def norm():
                return LRN(**LRN_DEFAULTS) if lrn else nn.Identity()

            super().__init__(nn.Sequential(
                nn.Conv2d(3, 96, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True), norm(),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(inplace=True), norm(),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
            ), num_classes, dropout)

    return {"alexnet": AlexNet, "alexnet-v1": AlexNetV1}


def check_arch(arch):
    if arch not in ARCHS:
        raise EdgeAlexError(f"--arch {arch}", "unknown architecture",
                            "choose one of: {}".format(", ".join(ARCHS)))
    return arch


def build_model(arch="alexnet", num_classes=1000, dropout=0.5, lrn=True, init=None, seed=None):
    """A fresh model.

    Args:
        arch (str): "alexnet" or "alexnet-v1". Defaults to "alexnet".
        num_classes (int): outputs. Defaults to 1000.
        dropout (float): dropout probability in the classifier. Defaults to 0.5.
        lrn (bool): LRN after the first two ReLUs (alexnet-v1 only). Defaults to True.
        init (str): None keeps PyTorch's default init; "normal" is the 2012 recipe: weights
            N(0, 0.01), biases 0 (1 for conv2, conv4, conv5 and the hidden FC layers).
        seed (int): seed for the initial weights. Defaults to None (torch's global RNG).
    """
    torch = require("torch", "AlexNet models")
    check_arch(arch)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise EdgeAlexError(f"--num-classes {num_classes}", "a classifier needs at least 2 classes",
                            "pass --num-classes N with N >= 2 (or a labels file)")
    if seed is not None:
        torch.manual_seed(seed)
    cls = _classes()[arch]
    model = cls(num_classes=num_classes, dropout=dropout, lrn=lrn) if arch == "alexnet-v1" else \
        cls(num_classes=num_classes, dropout=dropout)
    if init == "normal":
        _init_normal(model)
    elif init not in (None, "default"):
        raise EdgeAlexError(f"init {init}", "unknown weight initialisation", "use 'default' or 'normal'")
    return model


def _init_normal(model):
    torch = require("torch")
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    ones = {1, 3, 4, 5, 6}  # conv2, conv4, conv5, fc6, fc7 (0-based over the 8 weight layers)
    for i, layer in enumerate(layers):
        torch.nn.init.normal_(layer.weight, 0.0, 0.01)
        torch.nn.init.constant_(layer.bias, 1.0 if i in ones else 0.0)


def _torch_load(path):
    torch = require("torch", "loading checkpoints")
    path = str(path)
    if not os.path.isfile(path):
        raise EdgeAlexError(path, "the checkpoint does not exist", "check the --weights path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeAlexError(path, f"cannot load the checkpoint with weights_only=True ({first[:200]})",
                            "pass a PyTorch state_dict or an edgealex checkpoint (no pickled code)")


def load_checkpoint(path):
    """Read a checkpoint safely (``weights_only=True``).

    Returns:
        dict: ``{"state_dict": ..., "arch": ... or None, "labels": ... or None, "preprocess": ... or None,
        ...}``; a bare torchvision ``state_dict`` comes back wrapped the same way.
    """
    data = _torch_load(path)
    if isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT:
        return data
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        wrapped = dict(data)
        wrapped.setdefault("arch", None)
        return wrapped
    if isinstance(data, dict) and data and all(isinstance(k, str) for k in data):
        return {"format": "state_dict", "state_dict": data, "arch": None}
    raise EdgeAlexError(str(path), "the file holds no state_dict", "pass a PyTorch state_dict or an edgealex checkpoint")


def save_checkpoint(path, model, labels, preprocess, **extra):
    """Atomically write an edgealex checkpoint (loads with ``weights_only=True``)."""
    torch = require("torch")
    from edgealex.artifacts import atomic_path

    payload = {
        "format": CHECKPOINT_FORMAT,
        "arch": model.arch,
        "num_classes": len(labels),
        "labels": list(labels),
        "preprocess": preprocess.to_dict(),
        "state_dict": model.state_dict(),
    }
    payload.update(extra)
    with atomic_path(path, "checkpoint") as tmp:
        torch.save(payload, tmp)
    return str(path)


def head_classes(state_dict):
    """Number of outputs of the final classifier layer in a state_dict (None if absent)."""
    weight = state_dict.get("classifier.6.weight")
    return int(weight.shape[0]) if weight is not None else None


def load_weights(model, state_dict, source="checkpoint", new_head=False):
    """Load ``state_dict`` into ``model`` strictly, with a readable error for mismatches.

    Args:
        new_head (bool): when the checkpoint's classifier head has a different number of classes
            (e.g. ImageNet's 1000), keep the model's fresh head and load everything else.
    """
    own = model.state_dict()
    state_dict = dict(state_dict)
    if new_head:
        for key in ("classifier.6.weight", "classifier.6.bias"):
            if key in state_dict and key in own and tuple(state_dict[key].shape) != tuple(own[key].shape):
                state_dict[key] = own[key]
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [f"{k} {tuple(state_dict[k].shape)} != {tuple(own[k].shape)}"
             for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append("shape mismatch: " + "; ".join(wrong[:3]))
        if missing:
            parts.append("missing: " + ", ".join(missing[:3]))
        if unexpected:
            parts.append("unexpected: " + ", ".join(unexpected[:3]))
        hint = "check --arch ({}) and --num-classes".format(getattr(model, "arch", "?"))
        if any(k.startswith("classifier.6") for k in wrong[:3]) or any("classifier.6" in w for w in wrong):
            hint += "; pass --new-head to replace the classifier head"
        raise EdgeAlexError(source, "weights do not fit the model (" + " | ".join(parts) + ")", hint)
    model.load_state_dict(state_dict, strict=True)
    return model
