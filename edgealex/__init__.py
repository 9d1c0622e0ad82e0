"""edgealex: AlexNet-class classifiers from PyTorch to measured deployments on Jetson, GPUs and CPUs.

Importing this package is cheap: no heavy dependency (torch, onnxruntime, tensorrt, cv2, ...) is
imported here or at the top of any submodule. They are loaded by the function that needs them.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "EdgeAlexError", "load"]

from edgealex.errors import EdgeAlexError  # noqa: E402  (stdlib-only module)


def load(path, **options):
    """The runner for an engine or ONNX file (see :func:`edgealex.runtime.registry.load_runner`).

    >>> with edgealex.load("alexnet-int8-cpu-ort1.32.0-cpu.onnx") as runner:  # doctest: +SKIP
    ...     logits = runner.infer(batch)
    """
    from edgealex.runtime.registry import load_runner

    return load_runner(path, **options)
