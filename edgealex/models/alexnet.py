"""AlexNet models.

- ``alexnet``: torchvision's layout (conv 64-192-384-256-256, AdaptiveAvgPool 6x6, classifier
  9216-4096-4096-N) with identical ``state_dict`` keys (``features.0.weight`` ...
  ``classifier.6.bias``), so a torchvision checkpoint loads unchanged.
- ``alexnet-v1``: Krizhevsky et al. 2012: conv 96-256-384-384-256, 11x11 stride-4 first conv, LRN
  (size 5, alpha 1e-4, beta 0.75, k 2) after the first two ReLUs (switchable), overlapping 3x3/2
  max-pooling, dropout 0.5. LRN exports as the ONNX ``LRN`` operator, which TensorRT maps to its LRN
  layer (DLA accepts windows 3, 5, 7, 9).
- ``alexnet-se``: ``alexnet`` with a squeeze-and-excitation block (Hu et al. 2018, reduction 16)
  after conv5's ReLU: global average pool -> 1x1 conv 256-16 -> ReLU -> 1x1 conv 16-256 ->
  sigmoid -> channel-wise multiply. The two "FC" layers are 1x1 convolutions so the graph stays
  4-D (ONNX GlobalAveragePool, Conv, Relu, Sigmoid, Mul: no Flatten/Gemm inside the block).
- ``alexnet-dw``: ``alexnet`` with conv2-conv5 replaced by depthwise-separable convolutions
  (Howard et al. 2017: a k x k depthwise conv with ``groups = in_channels``, ReLU, a 1x1 pointwise
  conv, ReLU); conv1 (3 input channels) stays a full convolution. No batch norm, so the comparison
  with ``alexnet`` changes one thing.
- ``alexnet-bn``: ``alexnet-v1`` with BatchNorm2d after every convolution (conv -> BN -> ReLU)
  instead of LRN (Ioffe & Szegedy 2015).

Every arch takes ``widths`` = ``{"conv": [5 output channel counts], "fc": [2 hidden sizes]}``; a
pruned checkpoint (``edgealex prune``) stores its widths so ``build_model`` rebuilds it.

torch is imported when a model is built, never at import time.
"""

import errno
import functools
import os

from edgealex._optional import require
from edgealex.artifacts import check_input_file
from edgealex.errors import EdgeAlexError

ARCHS = ("alexnet", "alexnet-v1", "alexnet-se", "alexnet-dw", "alexnet-bn")
# default widths: conv1..conv5 output channels, then the two hidden FC layers
DEFAULT_WIDTHS = {
    "alexnet": {"conv": [64, 192, 384, 256, 256], "fc": [4096, 4096]},
    "alexnet-v1": {"conv": [96, 256, 384, 384, 256], "fc": [4096, 4096]},
    "alexnet-se": {"conv": [64, 192, 384, 256, 256], "fc": [4096, 4096]},
    "alexnet-dw": {"conv": [64, 192, 384, 256, 256], "fc": [4096, 4096]},
    "alexnet-bn": {"conv": [96, 256, 384, 384, 256], "fc": [4096, 4096]},
}
SE_REDUCTION = 16
POOL_CELLS = 36  # AdaptiveAvgPool 6x6: each conv5 channel feeds 36 inputs of the first FC layer
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
        """features -> AdaptiveAvgPool 6x6 -> classifier C5*36-F1-F2-N (all archs share it)."""

        def __init__(self, features, num_classes, dropout, widths):
            super().__init__()
            self.widths = {"conv": list(widths["conv"]), "fc": list(widths["fc"])}
            conv5, (fc1, fc2) = widths["conv"][-1], widths["fc"]
            self.features = features
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            self.classifier = nn.Sequential(
                nn.Dropout(p=dropout), nn.Linear(conv5 * POOL_CELLS, fc1), nn.ReLU(inplace=True),
                nn.Dropout(p=dropout), nn.Linear(fc1, fc2), nn.ReLU(inplace=True),
                nn.Linear(fc2, num_classes),
            )

        def forward(self, x):
            x = self.features(x)
            x = self.avgpool(x)
            x = torch.flatten(x, 1)
            return self.classifier(x)

    class SqueezeExcite(nn.Module):
        """x * sigmoid(W2 relu(W1 gap(x))), W1/W2 as 1x1 convolutions (ONNX stays 4-D)."""

        def __init__(self, channels, reduction=SE_REDUCTION):
            super().__init__()
            hidden = max(1, channels // reduction)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
            self.relu = nn.ReLU(inplace=True)
            self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)
            self.gate = nn.Sigmoid()

        def forward(self, x):
            return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))

    def _tv_features(c, conv=None, se=False):
        """torchvision's feature stack (indices 0..12 as torchvision when ``conv`` is plain)."""
        conv = conv or (lambda cin, cout, k, p: [nn.Conv2d(cin, cout, kernel_size=k, padding=p)])
        layers = [nn.Conv2d(3, c[0], kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
                  nn.MaxPool2d(kernel_size=3, stride=2)]
        layers += conv(c[0], c[1], 5, 2) + [nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2)]
        layers += conv(c[1], c[2], 3, 1) + [nn.ReLU(inplace=True)]
        layers += conv(c[2], c[3], 3, 1) + [nn.ReLU(inplace=True)]
        layers += conv(c[3], c[4], 3, 1) + [nn.ReLU(inplace=True)]
        if se:
            layers.append(SqueezeExcite(c[4]))
        layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
        return nn.Sequential(*layers)

    def _depthwise_separable(cin, cout, k, p):
        return [nn.Conv2d(cin, cin, kernel_size=k, padding=p, groups=cin), nn.ReLU(inplace=True),
                nn.Conv2d(cin, cout, kernel_size=1)]

    def _v1_features(c, norm, batchnorm=False):
        def block(cin, cout, k, s, p, lrn):
            out = [nn.Conv2d(cin, cout, kernel_size=k, stride=s, padding=p)]
            if batchnorm:
                out.append(nn.BatchNorm2d(cout))
            out.append(nn.ReLU(inplace=True))
            if lrn and norm is not None:
                out.append(norm())
            return out

        return nn.Sequential(*(
            block(3, c[0], 11, 4, 2, True) + [nn.MaxPool2d(kernel_size=3, stride=2)]
            + block(c[0], c[1], 5, 1, 2, True) + [nn.MaxPool2d(kernel_size=3, stride=2)]
            + block(c[1], c[2], 3, 1, 1, False) + block(c[2], c[3], 3, 1, 1, False)
            + block(c[3], c[4], 3, 1, 1, False) + [nn.MaxPool2d(kernel_size=3, stride=2)]))

    class AlexNet(_AlexNetBase):
        """torchvision layout; ``state_dict`` keys match ``torchvision.models.alexnet``."""

        arch = "alexnet"

        def __init__(self, num_classes=1000, dropout=0.5, widths=None):
            widths = widths or DEFAULT_WIDTHS[self.arch]
            super().__init__(_tv_features(widths["conv"]), num_classes, dropout, widths)

    class AlexNetSE(_AlexNetBase):
        """alexnet + squeeze-and-excitation after conv5 (``features.12``)."""

        arch = "alexnet-se"

        def __init__(self, num_classes=1000, dropout=0.5, widths=None):
            widths = widths or DEFAULT_WIDTHS[self.arch]
            super().__init__(_tv_features(widths["conv"], se=True), num_classes, dropout, widths)

    class AlexNetDW(_AlexNetBase):
        """alexnet with depthwise-separable conv2..conv5."""

        arch = "alexnet-dw"

        def __init__(self, num_classes=1000, dropout=0.5, widths=None):
            widths = widths or DEFAULT_WIDTHS[self.arch]
            super().__init__(_tv_features(widths["conv"], conv=_depthwise_separable), num_classes, dropout, widths)

    class AlexNetV1(_AlexNetBase):
        """The 2012 network (single-tower: grouped convolutions merged)."""

        arch = "alexnet-v1"

        def __init__(self, num_classes=1000, dropout=0.5, lrn=True, widths=None):
            widths = widths or DEFAULT_WIDTHS[self.arch]

            def norm():
                return LRN(**LRN_DEFAULTS) if lrn else nn.Identity()

            super().__init__(_v1_features(widths["conv"], norm), num_classes, dropout, widths)

    class AlexNetBN(_AlexNetBase):
        """alexnet-v1 with BatchNorm after every convolution instead of LRN."""

        arch = "alexnet-bn"

        def __init__(self, num_classes=1000, dropout=0.5, widths=None):
            widths = widths or DEFAULT_WIDTHS[self.arch]
            super().__init__(_v1_features(widths["conv"], None, batchnorm=True), num_classes, dropout, widths)

    return {"alexnet": AlexNet, "alexnet-v1": AlexNetV1, "alexnet-se": AlexNetSE, "alexnet-dw": AlexNetDW,
            "alexnet-bn": AlexNetBN}


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


def check_widths(arch, widths):
    """``widths`` normalised to ``{"conv": [5 ints], "fc": [2 ints]}`` (None -> the arch's default).

    Raises:
        EdgeAlexError: wrong structure or a width below 1.
    """
    if widths is None:
        return {k: list(v) for k, v in DEFAULT_WIDTHS[arch].items()}
    try:
        conv = [int(v) for v in widths["conv"]]
        fc = [int(v) for v in widths["fc"]]
    except (KeyError, TypeError, ValueError):
        conv = fc = []
    if len(conv) != 5 or len(fc) != 2 or min(conv + fc) < 1:
        raise EdgeAlexError(f"widths {widths}", "need 5 conv and 2 hidden FC widths, each >= 1",
                            'e.g. {"conv": [64, 192, 384, 256, 256], "fc": [4096, 4096]}')
    return {"conv": conv, "fc": fc}


def kept_count(count, keep, multiple=8):
    """Channels kept out of ``count`` at ratio ``keep``: rounded to a multiple of ``multiple``
    (TensorRT's INT8/FP16 kernels and the DLA prefer channel counts in multiples of 8/32), at
    least ``multiple`` and at most ``count``.

    Raises:
        EdgeAlexError: ``keep`` outside (0, 1] or ``multiple`` < 1.
    """
    if not 0.0 < float(keep) <= 1.0:
        raise EdgeAlexError(f"--keep {keep}", "the kept fraction must be in (0, 1]", "e.g. --keep 0.7")
    if int(multiple) < 1:
        raise EdgeAlexError(f"--multiple-of {multiple}", "must be at least 1", "e.g. --multiple-of 8")
    multiple = int(multiple)
    kept = int(round(count * float(keep) / multiple)) * multiple
    return int(min(count, max(kept, min(multiple, count))))


def scaled_widths(arch, keep, multiple=8, base=None):
    """``base`` (default: the arch's widths) with every conv and hidden FC width scaled by ``keep``."""
    base = check_widths(check_arch(arch), base)
    return {k: [kept_count(c, keep, multiple) for c in v] for k, v in base.items()}


def build_model(arch="alexnet", num_classes=1000, dropout=0.5, lrn=True, init=None, seed=None, widths=None):
    """A fresh model.

    Args:
        arch (str): one of :data:`ARCHS`. Defaults to "alexnet".
        num_classes (int): outputs. Defaults to 1000.
        dropout (float): dropout probability in the classifier. Defaults to 0.5.
        lrn (bool): LRN after the first two ReLUs (alexnet-v1 only). Defaults to True.
        init (str): None keeps PyTorch's default init; "normal" is the 2012 recipe: weights
            N(0, 0.01), biases 0 (1 for conv2, conv4, conv5 and the hidden FC layers).
        seed (int): seed for the initial weights. Defaults to None (torch's global RNG).
        widths (dict): ``{"conv": [5 channel counts], "fc": [2 hidden sizes]}``, e.g. from a pruned
            checkpoint. Defaults to None (:data:`DEFAULT_WIDTHS` of the arch).

    Raises:
        EdgeAlexError: unknown arch, fewer than 2 classes, bad widths or init.
    """
    torch = require("torch", "AlexNet models")
    check_arch(arch)
    check_num_classes(num_classes)
    if not 0.0 <= float(dropout) < 1.0:
        raise EdgeAlexError(f"--dropout {dropout}", "dropout must be in [0, 1)", "e.g. --dropout 0.5")
    widths = check_widths(arch, widths)
    if seed is not None:
        torch.manual_seed(seed)
    cls = _classes()[arch]
    model = cls(num_classes=num_classes, dropout=dropout, lrn=lrn, widths=widths) if arch == "alexnet-v1" else \
        cls(num_classes=num_classes, dropout=dropout, widths=widths)
    if init == "normal":
        _init_normal(model)
    elif init not in (None, "default"):
        raise EdgeAlexError(f"init {init}", "unknown weight initialisation", "use 'default' or 'normal'")
    return model


def model_from_checkpoint(ckpt, source="checkpoint", arch=None, num_classes=None, new_head=False, **kwargs):
    """The model a checkpoint describes (its arch and widths), with its weights loaded.

    Args:
        ckpt (dict): from :func:`load_checkpoint`.
        source (str): name for error messages.
        arch (str): fallback when the checkpoint records none. Defaults to "alexnet".
        num_classes (int): outputs. Defaults to the checkpoint head's.
        new_head (bool): see :func:`load_weights`.
        **kwargs: passed to :func:`build_model` (dropout, lrn, seed).
    """
    classes = num_classes or head_classes(ckpt["state_dict"]) or ckpt.get("num_classes") or 1000
    model = build_model(ckpt.get("arch") or arch or "alexnet", num_classes=classes, widths=ckpt.get("widths"),
                        **kwargs)
    return load_weights(model, ckpt["state_dict"], source=source, new_head=new_head)


def weights_sha256(state_dict):
    """sha256 over a state_dict's keys, dtypes, shapes and tensor bytes (sorted by key).

    Unlike the file's sha256 this does not change when the same weights are saved again
    (``torch.save`` stores the file name it was written under inside the archive).
    """
    import hashlib

    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes() if tensor.dtype != require("torch").bfloat16
                      else tensor.float().numpy().tobytes())
    return digest.hexdigest()


def parameter_count(model):
    """Number of parameters (weights and biases; BatchNorm running statistics excluded)."""
    return int(sum(p.numel() for p in model.parameters()))


def _init_normal(model):
    torch = require("torch")
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    # conv2, conv4, conv5, fc6, fc7 (0-based over the 8 weight layers of alexnet / alexnet-v1)
    ones = {1, 3, 4, 5, 6} if len(layers) == 8 else set()
    for i, layer in enumerate(layers):
        torch.nn.init.normal_(layer.weight, 0.0, 0.01)
        torch.nn.init.constant_(layer.bias, 1.0 if i in ones else 0.0)


def _torch_load(path):
    path = check_input_file(path, "checkpoint", "check the checkpoint's path")  # the path first, torch or not
    torch = require("torch", "loading checkpoints")
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
    """Read a checkpoint safely (``weights_only=True``), or the weights of an FP32 ONNX exported by
    ``edgealex export`` (a ``.onnx`` path: :func:`checkpoint_from_onnx`), so that every command that
    takes a checkpoint (bench's PyTorch baselines, prune, distill's teacher, fine-tuning) also takes
    the ONNX when the training checkpoint was not kept.

    Returns:
        dict: ``{"state_dict": ..., "arch": ... or None, "labels": ... or None, "preprocess": ... or None,
        ...}``; a bare torchvision ``state_dict`` comes back wrapped the same way.
    """
    if str(path).lower().endswith(".onnx"):
        return checkpoint_from_onnx(path)
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


# ONNX operators only a quantized model holds (the Q/DQ and ORT-native INT8 models of `edgealex calibrate`)
QUANTIZED_OPS = frozenset(("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
                           "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm", "QLinearAdd"))


def checkpoint_from_onnx(path):
    """The weights of an ONNX exported by ``edgealex export``, as a checkpoint dict.

    The legacy exporter keeps every parameter as an initializer named like its ``state_dict`` key
    (``features.0.weight`` ...), so the FP32 PyTorch model can be rebuilt exactly from the ONNX
    when the training checkpoint was not kept (``edgealex demo``). Models whose export folded
    layers (BatchNorm into the convolutions) have no such names and are refused.

    Args:
        path (str): an FP32 ONNX with edgealex metadata (arch, labels, preprocessing, widths).

    Returns:
        dict: like :func:`load_checkpoint`: ``state_dict`` (float32 tensors), ``arch``, ``widths``,
        ``num_classes``, ``labels``, ``format`` "onnx-initializers", and the export ``provenance``
        (``weights_sha256`` of the checkpoint it came from, or ``init``).

    Raises:
        EdgeAlexError: not a readable ONNX, a quantized (INT8) model, no edgealex metadata, or a
            parameter of the model is missing from the initializers or has another shape.
    """
    torch = require("torch", "PyTorch weights from an ONNX")
    numpy_helper = require("onnx.numpy_helper", "PyTorch weights from an ONNX")
    from edgealex.modelinfo import load_onnx, from_model_proto

    proto = load_onnx(path, "ONNX")
    quantized = sorted({n.op_type for n in proto.graph.node if n.op_type in QUANTIZED_OPS})
    if quantized:  # the INT8 models `edgealex calibrate` writes: no float32 parameters to take
        raise EdgeAlexError(str(path), "is a quantized (INT8) model ({}): the PyTorch baseline needs the float32 "
                            "weights".format(", ".join(quantized)),
                            "pass the FP32 ONNX it was calibrated from, or the edgealex checkpoint (.pt)")
    info = from_model_proto(proto, path, allow_default=False)
    widths = (info.provenance or {}).get("widths")
    model = build_model(info.arch or "alexnet", num_classes=info.num_classes, widths=widths)
    inits = {init.name: init for init in proto.graph.initializer}
    state_dict, problems = {}, []
    for key, value in model.state_dict().items():
        init = inits.get(key)
        array = numpy_helper.to_array(init) if init is not None else None
        if array is None or tuple(array.shape) != tuple(value.shape):
            problems.append(key if array is None else f"{key} {tuple(array.shape)} != {tuple(value.shape)}")
            continue
        state_dict[key] = torch.from_numpy(array.astype("float32", copy=True))
    if problems:
        raise EdgeAlexError(str(path), "its initializers do not hold the {} model's parameters ({}{})".format(
            info.arch, ", ".join(problems[:3]), ", ..." if len(problems) > 3 else ""),
            "pass the edgealex checkpoint (.pt) it was exported from (exports that rewrite layers keep no "
            "parameter names: BatchNorm folded into the convolutions, the pooling rewritten below 224 px)")
    return {"format": "onnx-initializers", "state_dict": state_dict, "arch": info.arch, "widths": widths,
            "num_classes": info.num_classes, "labels": list(info.labels or []),
            "preprocess": info.preprocess.to_dict(), "provenance": dict(info.provenance or {})}


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
    widths = getattr(model, "widths", None)
    if widths is not None and widths != DEFAULT_WIDTHS.get(model.arch):
        payload["widths"] = widths  # a pruned model: build_model(arch, widths=...) rebuilds it
    payload.update(extra)
    with atomic_path(path, "checkpoint") as tmp:
        try:
            torch.save(payload, tmp)
        except RuntimeError as exc:
            # torch.save reports a failed write as a RuntimeError ("unexpected pos ..."), without the
            # OSError's errno: a disk with less room than the tensors is a full disk (atomic_path
            # then says so in one line and leaves the previous file)
            st = os.statvfs(os.path.dirname(os.path.abspath(tmp)))
            needed = sum(t.numel() * t.element_size() for t in payload["state_dict"].values())
            if st.f_bavail * st.f_frsize < needed:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tmp) from exc
            raise
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
        hint = "pass a checkpoint of this model ({}; for export: check --arch and --num-classes)".format(
            getattr(model, "arch", "?"))
        if any(k.startswith("classifier.6") for k in wrong[:3]) or any("classifier.6" in w for w in wrong):
            hint += "; pass --new-head to replace the classifier head"
        raise EdgeAlexError(source, "weights do not fit the model (" + " | ".join(parts) + ")", hint)
    model.load_state_dict(state_dict, strict=True)
    return model
