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


def torch_model_fn(model_info, weights=None, seed=0):
    """A factory for the PyTorch model: from an edgealex checkpoint (or the FP32 ONNX exported
    from one: its initializers are the same float32 weights), else random init.

    Returns:
        (callable, str): the factory and a note ("weights: FILE" or "random init: timing only").
    """
    from edgealex.models.alexnet import build_model, checkpoint_from_onnx, load_checkpoint, model_from_checkpoint

    if weights:
        # Loaded and fitted now, while the subjects are prepared: a bad --torch-weights is refused
        # before any engine is measured, not after. A pruned checkpoint rebuilds from its own widths.
        ckpt = checkpoint_from_onnx(weights) if str(weights).lower().endswith(".onnx") else load_checkpoint(weights)
        model = model_from_checkpoint(ckpt, source=str(weights), arch=model_info.arch)
        return (lambda: model), f"weights {weights}"

    widths = (getattr(model_info, "provenance", None) or {}).get("widths")  # pruned models record theirs

    def build():
        return build_model(model_info.arch or "alexnet", num_classes=model_info.num_classes, seed=seed, widths=widths)

    return build, "random init (timing only; pass --torch-weights for accuracy)"


def check_baseline_names(names):
    bad = [n for n in names if n not in BASELINES]
    if bad:
        raise EdgeAlexError("--baselines", "unknown baseline(s) {}".format(", ".join(bad)),
                            "use any of {} or 'auto'/'none'".format(", ".join(BASELINES)))
    return names
