"""The Runner interface shared by every backend.

A runner is a context manager::

    with OrtRunner("model.onnx") as runner:
        logits = runner.infer(batch)          # float32 (N, 3, S, S) -> float32 (N, classes)
        runner.last_inference_ms              # device-synchronised time of that call

Public methods validate and time; subclasses implement the ``*_impl`` methods only.
"""

import time
from dataclasses import dataclass
from typing import Optional, Tuple

from edgealex.errors import EdgeAlexError
from edgealex.log import logger


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of an engine input. A ``None`` dimension is dynamic."""

    name: str
    shape: Tuple[Optional[int], ...]
    dtype: str = "float32"

    def __post_init__(self):
        if len(self.shape) == 4:  # NCHW: refuse a model input too large to allocate
            from edgealex.limits import check_pixels

            check_pixels(self.shape[3], self.shape[2], self.name, "model input")

    def check(self, array, subject="input"):
        """Raise a user error when ``array`` does not fit this spec."""
        if str(array.dtype) != self.dtype:
            raise EdgeAlexError(subject, f"dtype {array.dtype} but the engine expects {self.dtype}",
                                f"convert the batch with .astype('{self.dtype}')")
        if len(array.shape) != len(self.shape) or any(
                want is not None and want != got for want, got in zip(self.shape, array.shape)):
            raise EdgeAlexError(subject, "shape {} but the engine expects {}".format(
                tuple(array.shape), tuple("N" if d is None else d for d in self.shape)),
                "preprocess frames with the model's own preprocessing and batch size")


class Runner:
    """Base class of every backend runner."""

    name = "runner"

    def __init__(self):
        self.is_active = False
        self._last_inference_ms = None

    def __enter__(self):
        self.activate()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.deactivate()
        return False

    def activate(self):
        """Load the engine and allocate what inference needs. Idempotent (warns when repeated)."""
        if self.is_active:
            logger.warning("%s is already active; ignoring activate()", self.name)
            return
        self.activate_impl()
        self.is_active = True

    def deactivate(self):
        """Free device memory and sessions. Idempotent (warns when repeated)."""
        if not self.is_active:
            logger.debug("%s is not active; ignoring deactivate()", self.name)
            return
        try:
            self.deactivate_impl()
        finally:
            self.is_active = False

    @property
    def input_spec(self):
        """:class:`TensorSpec` of the input."""
        return self.input_spec_impl()

    @property
    def batch_size(self):
        """Static batch size of the engine, or None when the batch axis is dynamic."""
        return self.input_spec.shape[0]

    def infer(self, batch, check_inputs=True):
        """Run one batch.

        Args:
            batch (np.ndarray): preprocessed input, shape and dtype of :attr:`input_spec`.
            check_inputs (bool): validate shape and dtype first. Defaults to True.

        Returns:
            np.ndarray: logits (N, classes). The array may be a reused buffer: copy it to keep it.
        """
        if not self.is_active:
            raise EdgeAlexError(self.name, "infer() called on an inactive runner",
                                "use the runner as a context manager: `with runner: runner.infer(x)`")
        if check_inputs:
            self.input_spec.check(batch)
        start = time.perf_counter()
        out = self.infer_impl(batch)
        self._last_inference_ms = (time.perf_counter() - start) * 1e3
        return out

    @property
    def last_inference_ms(self):
        """Wall time of the last :meth:`infer`, device-synchronised (the result was ready)."""
        return self._last_inference_ms

    # -- implemented by backends --------------------------------------------------------------
    def activate_impl(self):
        raise NotImplementedError

    def deactivate_impl(self):
        raise NotImplementedError

    def input_spec_impl(self):
        raise NotImplementedError

    def infer_impl(self, batch):
        raise NotImplementedError
