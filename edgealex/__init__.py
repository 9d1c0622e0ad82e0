"""edgealex: AlexNet-class classifiers from PyTorch to measured deployments on Jetson, GPUs and CPUs.

Importing this package is cheap: no heavy dependency (torch, onnxruntime, tensorrt, cv2, ...) is
imported here or at the top of any submodule. They are loaded by the function that needs them.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "EdgeAlexError"]

from edgealex.errors import EdgeAlexError  # noqa: E402  (stdlib-only module)
