"""Optional heavy dependencies: the only place that maps modules to extras and install hints."""

import importlib
import os
import sys

# module name -> (pip extra, what it is for, install hint override)
_EXTRAS = {
    "torch": ("export", "PyTorch (export and training)",
              "pip install torch  (CPU-only machine: pip install torch --index-url "
              "https://download.pytorch.org/whl/cpu), then pip install 'edgealex[export]'"),
    "onnx": ("ort", "the ONNX library", None),
    "onnxruntime": ("ort", "ONNX Runtime (CPU backend, calibration)", None),
    "onnxscript": ("export", "onnxscript (PyTorch's ONNX exporter)", None),
    "cv2": ("opencv", "OpenCV (images, video, cameras)",
            "pip install 'edgealex[opencv]' on a desktop; on a Jetson use JetPack's OpenCV "
            "(sudo apt install python3-opencv) and never a pip wheel, which lacks GStreamer"),
    "tensorrt": ("trt", "TensorRT",
                 "on a Jetson TensorRT comes with JetPack for the system python3 only "
                 "(sudo apt install python3-libnvinfer); on a desktop: pip install tensorrt"),
    "pycuda": ("pycuda", "pycuda (GPU memory for TensorRT)", None),
    "cuda": ("cuda", "cuda-python (GPU memory for TensorRT)", None),
    "jtop": ("jetson", "jetson-stats (jtop power readings)", None),
    "pynvml": ("nvml", "nvidia-ml-py (NVML power readings)", None),
    "matplotlib": ("report", "matplotlib (report plots)", None),
    "paho": ("mqtt", "paho-mqtt (MQTT verdicts)", None),
    "Jetson": ("gpio", "Jetson.GPIO (reject pulses)",
               "pip install 'edgealex[gpio]' on a Jetson (JetPack also packages it: sudo apt install python3-jetson-gpio)"),
}


def install_hint(module):
    """The command that installs ``module`` for edgealex."""
    top = module.split(".")[0]
    extra, _, hint = _EXTRAS.get(top, (None, None, None))
    if hint:
        return hint
    if extra:
        return f"pip install 'edgealex[{extra}]'"
    return f"pip install {top}"


def require(module, purpose=None):
    """Import ``module`` or raise an EdgeAlexError naming the extra that provides it.

    Args:
        module (str): dotted module name, e.g. "onnxruntime" or "onnxruntime.quantization".
        purpose (str): what needs it, e.g. "edgealex export". Defaults to the module's role.

    Returns:
        module: the imported module.
    """
    loaded = sys.modules.get(module)
    if loaded is not None:  # the hot path: called per frame by the preprocessing
        return loaded
    from edgealex.errors import EdgeAlexError

    if module == "cv2":  # OpenCV reads its decoder's pixel limit once, at import
        from edgealex.limits import ENV_OPENCV_LIMIT, MAX_IMAGE_PIXELS

        os.environ.setdefault(ENV_OPENCV_LIMIT, str(MAX_IMAGE_PIXELS))
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        role = _EXTRAS.get(top, (None, top, None))[1]
        raise EdgeAlexError(
            purpose or module,
            f"{role} is not installed in this Python ({type(exc).__name__}: {exc})",
            "install it: " + install_hint(module),
        )


def available(module):
    """True when ``module`` can be imported (it is imported to find out)."""
    try:
        importlib.import_module(module)
        return True
    except Exception:
        return False
