"""INT8 calibration: one pass of ONNX Runtime calibration over an image folder, written out as a
TensorRT-compatible Q/DQ ONNX, TensorRT calibration caches, an ORT-native INT8 model and a report.

Light at import time: :mod:`edgealex.calib.cache` is pure Python; everything that needs onnx,
onnxruntime or OpenCV imports it inside functions.
"""

from edgealex.calib.cache import (  # noqa: F401,E402  (pure Python)
    CalibrationCache, decode_scale, encode_scale, read_cache, write_cache,
)
from edgealex.calib.pipeline import CalibrationResult, calibrate, read_calibration  # noqa: F401,E402
