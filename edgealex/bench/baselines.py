"""What a user would run instead of an edgealex engine, for ``bench --mode compare``.

- ``ort``: a bare ONNX Runtime session on the raw ONNX (default session options, CPU).
- ``torch``: PyTorch eager FP32.
- ``torch-int8``: PyTorch ``torch.ao.quantization.quantize_dynamic`` on the Linear layers (INT8
  weights, activations quantised on the fly): the seed article's approach.

PyTorch baselines load an edgealex checkpoint (``--torch-weights``); without one they use the
architecture recorded in the ONNX with random weights, which is fine for timing (speed does not
depend on the weight values) and is labelled "timing only".
"""

from edgealex._optional import require
from edgealex.errors import EdgeAlexError
from edgealex.runtime.base import Runner, TensorSpec

BASELINES = ("ort", "torch", "torch-int8")


class BareOrtRunner(Runner):
    """``onnxruntime.InferenceSession(path)`` with default options on the CPU provider."""

    name = "onnxruntime-bare"

    def __init__(self, onnx_path):
        super().__init__()
        self.onnx_path = str(onnx_path)
        self._session = None
        self._input = None

    def activate_impl(self):
        ort = require("onnxruntime", "the bare ONNX Runtime baseline")
        self._session = ort.InferenceSession(self.onnx_path, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0]

    def deactivate_impl(self):
        self._session = None

    def input_spec_impl(self):
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in self._input.shape)
        return TensorSpec(self._input.name, shape, "float32")

    def infer_impl(self, batch):
        return self._session.run(None, {self._input.name: batch})[0]


class TorchRunner(Runner):
    """A PyTorch model in eager mode (FP32) or after ``quantize_dynamic`` (INT8 Linear layers).

    Args:
        model_fn (callable): returns the ``torch.nn.Module`` (built lazily on activate).
        input_shape (tuple): (N, 3, S, S); N None means any batch.
        int8_dynamic (bool): apply ``torch.ao.quantization.quantize_dynamic({Linear}, qint8)``.
        threads (int): ``torch.set_num_threads`` value, None keeps torch's default.
    """

    def __init__(self, model_fn, input_shape, int8_dynamic=False, threads=None):
        super().__init__()
        self.model_fn = model_fn
        self.input_shape = tuple(input_shape)
        self.int8_dynamic = int8_dynamic
        self.threads = threads
        self.name = "pytorch-int8-dynamic" if int8_dynamic else "pytorch-eager"
        self._torch = None
        self._model = None

    def activate_impl(self):
        torch = require("torch", "the PyTorch baselines")
        if self.threads:
            torch.set_num_threads(int(self.threads))
        model = self.model_fn().eval()
        if self.int8_dynamic:
            quantization = getattr(getattr(torch, "ao", None), "quantization", None) or torch.quantization
            model = quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self._torch, self._model = torch, model

    def deactivate_impl(self):
        self._model = None

    def input_spec_impl(self):
        return TensorSpec("input", self.input_shape, "float32")

    def infer_impl(self, batch):
        torch = self._torch
        with torch.inference_mode():
            return self._model(torch.from_numpy(batch)).numpy()


def torch_model_fn(model_info, weights=None, seed=0, engine=None):
    """A factory for the PyTorch model: from an edgealex checkpoint (or the FP32 ONNX exported
    from one: its initializers are the same float32 weights), else random init.

    Args:
        model_info (ModelInfo): the engine's model (architecture, classes, provenance).
        weights (str or None): ``--torch-weights``: a .pt checkpoint or an FP32 ONNX.
        seed (int): seed of the random init without weights.
        engine (dict or None): the first engine's ``engine`` section (path, sidecar): the weights are
            checked against the model it was built from (:func:`weights_mismatch`).

    Returns:
        (callable, str, str or None): the factory, a note ("weights FILE" or "random init: timing
        only") and why the weights are provably not the engine's model (None: the same, or it
        cannot be told).
    """
    from edgealex.models.alexnet import build_model, load_checkpoint, model_from_checkpoint

    if weights:
        # Loaded and fitted now, while the subjects are prepared: a bad --torch-weights is refused
        # before any engine is measured, not after. A pruned checkpoint rebuilds from its own widths.
        ckpt = load_checkpoint(weights)  # an edgealex checkpoint or the FP32 ONNX exported from one
        model = model_from_checkpoint(ckpt, source=str(weights), arch=model_info.arch)
        return (lambda: model), f"weights {weights}", weights_mismatch(weights, ckpt, model_info, engine)

    widths = (getattr(model_info, "provenance", None) or {}).get("widths")  # pruned models record theirs

    def build():
        return build_model(model_info.arch or "alexnet", num_classes=model_info.num_classes, seed=seed, widths=widths)

    return build, "random init (timing only; pass --torch-weights for accuracy)", None


def _short(sha):
    return str(sha)[:12]


def weights_mismatch(weights, ckpt, model_info, engine=None):
    """Why ``--torch-weights`` provably hold another model than the engine's, else None.

    The engine's model is known by the sha256 of the ONNX it was built from (the engine sidecar's
    ``onnx_sha256``, or the file itself for a plain ONNX) and by that ONNX's export provenance
    (``weights_sha256``: the sha256 of the checkpoint file it was exported from, or ``init``
    "random (seed N)"), its architecture and labels. The weights are the same model when the ONNX
    sha256 or the checkpoint sha256 match; they are provably another when the architecture or the
    labels differ, or when both sides record where their weights came from and those differ.
    Nothing recorded on one side: None (cannot be told).

    Args:
        weights (str): the ``--torch-weights`` path (.onnx or .pt).
        ckpt (dict): what it holds (:func:`edgealex.models.alexnet.load_checkpoint` /
            :func:`~edgealex.models.alexnet.checkpoint_from_onnx`).
        model_info (ModelInfo): the engine's model.
        engine (dict or None): the engine section of a result (``path``, ``sidecar``).

    Returns:
        str or None: a reason ("... is not the engine's model: ...") or None.
    """
    from edgealex.artifacts import sha256_file

    engine = engine or {}
    sidecar = engine.get("sidecar") or {}
    arch = ckpt.get("arch")
    if arch and model_info.arch and arch != model_info.arch:
        return f"its architecture is {arch}, the engine's is {model_info.arch}"
    labels = ckpt.get("labels")
    if labels and model_info.labels and list(labels) != list(model_info.labels):
        return "its labels ({}) are not the engine's ({})".format(",".join(map(str, labels)),
                                                                   ",".join(map(str, model_info.labels)))
    engine_onnx_sha = sidecar.get("onnx_sha256")
    if not engine_onnx_sha and not sidecar and str(engine.get("path") or "").lower().endswith(".onnx"):
        engine_onnx_sha = sha256_file(engine["path"])  # a plain ONNX benchmarked as it is
    prov = getattr(model_info, "provenance", None) or {}
    engine_from = prov.get("weights_sha256")
    engine_init = prov.get("init") if not engine_from else None
    sha = sha256_file(weights)
    if sha == engine_onnx_sha or sha == engine_from:
        return None
    if str(weights).lower().endswith(".onnx"):
        their = ckpt.get("provenance") or {}
        their_from = their.get("weights_sha256")
        their_init = their.get("init") if not their_from else None
        if their_from and engine_from:
            return None if their_from == engine_from else \
                f"it was exported from checkpoint sha256 {_short(their_from)}, the engine's ONNX from {_short(engine_from)}"
        if their_init and engine_from:
            return f"it was exported with {their_init} weights, the engine's ONNX from checkpoint sha256 {_short(engine_from)}"
        if their_from and engine_init:
            return f"it was exported from checkpoint sha256 {_short(their_from)}, the engine's ONNX with {engine_init} weights"
        if their_init and engine_init and their_init != engine_init:
            return f"it was exported with {their_init} weights, the engine's ONNX with {engine_init} weights"
        return None
    if engine_from:  # an edgealex checkpoint: the engine's ONNX records the sha256 of the file it came from
        return f"its sha256 {_short(sha)} is not the checkpoint the engine's ONNX was exported from ({_short(engine_from)})"
    if engine_init:
        return f"the engine's ONNX was exported with {engine_init} weights, not from a checkpoint"
    return None


def check_baseline_names(names):
    bad = [n for n in names if n not in BASELINES]
    if bad:
        raise EdgeAlexError("--baselines", "unknown baseline(s) {}".format(", ".join(bad)),
                            "use any of {} or 'auto'/'none'".format(", ".join(BASELINES)))
    return names
