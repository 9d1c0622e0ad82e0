"""Runners: one inference lifecycle for every backend (ONNX Runtime, TensorRT)."""
