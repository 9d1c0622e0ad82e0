"""edgealex: AlexNet-class classifiers from PyTorch to measured deployments on Jetson, GPUs and CPUs.

Importing this package is cheap: no heavy dependency (torch, onnxruntime, tensorrt, cv2, ...) is
imported here or at the top of any submodule. They are loaded by the function that needs them.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "EdgeAlexError", "load"]

from edgealex.errors import EdgeAlexError  # noqa: E402  (stdlib-only module)


def _openblas_on_jetson(environ=None, marker="/etc/nv_tegra_release"):
    """Set ``OPENBLAS_CORETYPE=ARMV8`` on a Jetson unless the user chose a value; returns the user's value.

    numpy 1.19.5 (the last numpy for the Nano's Python 3.6, and the one onnxruntime 1.10 requires)
    dies with "Illegal instruction" when OpenBLAS detects the Jetson's CPU (numpy#18131, numpy#18175);
    OpenBLAS reads the variable when numpy loads, so setting it before numpy is imported is the
    documented fix. ``edgealex doctor`` reports whether the user's own shell still needs it.
    """
    import os

    environ = os.environ if environ is None else environ
    user = environ.get("OPENBLAS_CORETYPE")
    if user is None and os.path.exists(marker):
        environ["OPENBLAS_CORETYPE"] = "ARMV8"
    return user


_USER_OPENBLAS_CORETYPE = _openblas_on_jetson()


def load(path, **options):
    """The runner for an engine or ONNX file (see :func:`edgealex.runtime.registry.load_runner`).

    >>> with edgealex.load("alexnet-int8-cpu-ort1.32.0-cpu.onnx") as runner:  # doctest: +SKIP
    ...     logits = runner.infer(batch)
    """
    from edgealex.runtime.registry import load_runner

    return load_runner(path, **options)
