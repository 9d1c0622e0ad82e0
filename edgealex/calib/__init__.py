"""INT8 calibration: one pass of ONNX Runtime calibration over an image folder, written out as a
TensorRT-compatible Q/DQ ONNX, TensorRT calibration caches, an ORT-native INT8 model and a report.

Light at import time: :mod:`edgealex.calib.cache` is pure Python; everything that needs onnx,
onnxruntime or OpenCV imports it inside functions.
"""
