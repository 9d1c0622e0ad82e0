"""PyTorch -> ONNX export (stage 1 of the pipeline)."""
