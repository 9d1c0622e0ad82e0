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


MIN_INPUT_SIZE = 63  # the smallest side both archs take: 63 -> conv1 15 -> pool 7 -> pool 3 -> pool 1
POOL_SIDE = 6  # AdaptiveAvgPool2d((6, 6)) before the classifier


def feature_map_side(input_size):
    """Side of the last feature map (before the 6x6 adaptive pool) for a square input.

    conv1 11x11/4 pad 2, then three 3x3/2 max-pools (the other convolutions keep the size); the
    same for both archs. 224 -> 6, 256 -> 7, 320 -> 9, 192 -> 5, 63 -> 1.
    """
    side = (int(input_size) + 2 * 2 - 11) // 4 + 1
    for _ in range(3):
        side = (side - 3) // 2 + 1
    return side


def check_input_size(input_size):
    """Refuse an input side AlexNet cannot take (below 63 the feature map vanishes).

    Raises:
        EdgeAlexError: ``input_size`` is not an integer >= 63.
    """
    ok = isinstance(input_size, int) and not isinstance(input_size, bool) and input_size >= MIN_INPUT_SIZE
    if not ok or feature_map_side(input_size) < 1:
        raise EdgeAlexError(f"--input-size {input_size}", f"AlexNet needs inputs of at least {MIN_INPUT_SIZE} pixels "
                            "(smaller ones leave no feature map after the three max-pools)",
                            f"pass --input-size {MIN_INPUT_SIZE} or more (224 is the usual size)")
    return input_size


def fixed_pool(side, out=POOL_SIDE):
    """(kernel, stride) of the fixed average pool equal to ``AdaptiveAvgPool2d(out)`` on ``side``, or None.

    PyTorch's adaptive bins are ``[floor(i*side/out), ceil((i+1)*side/out))``; they are one fixed
    window sliding by a fixed stride exactly when ``side % out`` is 0 (kernel = stride = side/out)
    or 1 (kernel side//out + 1, stride side//out); e.g. 6 -> (1, 1), 7 -> (2, 1), 12 -> (2, 2).
    """
    if side < out or side % out not in (0, 1):
        return None
    stride = side // out
    return stride + side % out, stride


DLA_MAX_OUTPUT_MAPS = 8192  # DLA convolution output maps in [1, 8192] (TRT 8.2 NvInfer.h, facts §3.4)


def export_module(model, input_size):
    """The module to hand to the ONNX exporter: ``model`` with its adaptive pool made exportable.

    ``AdaptiveAvgPool2d((6, 6))`` exports only where the map divides, and TensorRT 8.2's parser and
    the DLA take plain convolutions and fixed pools. For the last feature map side ``s`` of this
    input size:

    * ``s == 6``: the model as is (the pool is the identity);
    * a fixed equivalent exists (:func:`fixed_pool`, ``s % 6`` is 0 or 1): ``AvgPool2d(k, stride)``;
    * otherwise the separable bin averages ``out = A X A^T`` (A: 6 x s, row i averages PyTorch's bin
      ``[floor(i*s/6), ceil((i+1)*s/6))``) become two grouped convolutions without bias - a (s x 1)
      one giving 6 rows per channel, a (1 x s) one giving 6 columns per row - whose (N, 36*C, 1, 1)
      output is already in Flatten's (c, i, j) order. To keep every convolution within the DLA's
      8192 output maps the channels are split into branches (even/odd channels), concatenated on
      the channel axis, and the first Linear layer's input columns are permuted to match.

    Conv, AvgPool, Concat, Flatten and Gemm are all parsed by TensorRT 8.2 (onnx-tensorrt 8.2
    operators.md) and are DLA layer types. Parity with PyTorch is checked after every export.

    Args:
        model (torch.nn.Module): an edgealex AlexNet (``features``, ``avgpool``, ``classifier``).
        input_size (int): the square input side.

    Returns:
        torch.nn.Module: an eval-mode module computing the same logits.
    """
    torch = require("torch", "ONNX export")
    side = feature_map_side(input_size)
    if side == POOL_SIDE:
        return model
    pool = fixed_pool(side)
    if pool is not None:
        return _Exportable(model, torch.nn.AvgPool2d(kernel_size=pool[0], stride=pool[1]), model.classifier)
    bins = torch.zeros(POOL_SIDE, side)
    for i in range(POOL_SIDE):
        start, end = (i * side) // POOL_SIDE, -(-((i + 1) * side) // POOL_SIDE)
        bins[i, start:end] = 1.0 / (end - start)
    channels = model.classifier[1].in_features // (POOL_SIDE * POOL_SIDE)
    branches = 1
    while POOL_SIDE * POOL_SIDE * channels // branches > DLA_MAX_OUTPUT_MAPS or channels % branches:
        branches += 1
    per = channels // branches
    convs = []
    for b in range(branches):
        rows = torch.nn.Conv2d(channels, POOL_SIDE * per, (side, 1), groups=per, bias=False)
        cols = torch.nn.Conv2d(POOL_SIDE * per, POOL_SIDE * POOL_SIDE * per, (1, side), groups=POOL_SIDE * per,
                               bias=False)
        with torch.no_grad():
            rows.weight.zero_()  # group g reads input channels g*branches .. +branches-1; keep channel g*branches+b
            rows.weight[:, b, :, 0] = bins.repeat(per, 1)
            cols.weight[:, 0, 0, :] = bins.repeat(POOL_SIDE * per, 1)
        convs.append(torch.nn.Sequential(rows, cols))
    first = model.classifier[1]
    linear = torch.nn.utils.skip_init(torch.nn.Linear, first.in_features, first.out_features)
    with torch.no_grad():
        # concat index b*36*per + g*36 + r holds flatten index (g*branches + b)*36 + r
        weight = first.weight.reshape(first.out_features, per, branches, POOL_SIDE * POOL_SIDE)
        linear.weight.copy_(weight.permute(0, 2, 1, 3).reshape(first.out_features, -1))
        linear.bias.copy_(first.bias)
    head = torch.nn.Sequential(linear, *list(model.classifier)[2:])
    return _Exportable(model, _BranchPool(convs), head)


def _BranchPool(convs):
    torch = require("torch")

    class BranchPool(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.branches = torch.nn.ModuleList(convs)

        def forward(self, x):
            outs = [branch(x) for branch in self.branches]
            return outs[0] if len(outs) == 1 else torch.cat(outs, 1)

    return BranchPool()


def _Exportable(model, pool, head):
    torch = require("torch")

    class Exportable(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features, self.pool, self.head = model.features, pool, head

        def forward(self, x):
            return self.head(torch.flatten(self.pool(self.features(x)), 1))

    return Exportable().eval()


def check_arch(arch):
    if arch not in ARCHS:
        raise EdgeAlexError(f"--arch {arch}", "unknown architecture",
                            "choose one of: {}".format(", ".join(ARCHS)))
    return arch


def check_num_classes(num_classes):
    """Refuse a class count below 2 (or not an integer), naming the value given.

    Raises:
        EdgeAlexError: ``num_classes`` is not an integer >= 2.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise EdgeAlexError(f"--num-classes {num_classes}", "a classifier needs at least 2 classes",
                            "pass --num-classes N with N >= 2 (or a labels file)")


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
    check_num_classes(num_classes)
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
        text = str(exc).strip()
        reason = _first_sentence(text) or type(exc).__name__
        if "central directory" in text or "zip archive" in text or isinstance(exc, EOFError):
            raise EdgeAlexError(path, f"the checkpoint is truncated or not a PyTorch file ({reason})",
                                "copy or save it again; compare its size with the original")
        raise EdgeAlexError(path, f"cannot load the checkpoint with weights_only=True ({reason})",
                            "pass a PyTorch state_dict or an edgealex checkpoint (no pickled code)")


def _first_sentence(text, limit=240):
    """The first sentence of an exception text, whole (never cut mid-sentence), at most ``limit`` chars."""
    line = text.splitlines()[0].strip() if text else ""
    end = line.find(". ")
    sentence = line[:end + 1] if end >= 0 else line
    if len(sentence) > limit:
        sentence = sentence[:limit].rsplit(" ", 1)[0] + " ..."
    return sentence.rstrip(".")


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
