"""``edgealex build``: ONNX -> TensorRT engine (Python API or trtexec) or ONNX Runtime engine.

Entry point: :func:`edgealex.build.api.build_engine`. The version-dependent TensorRT decisions are
data (:mod:`edgealex.build.plan`), shared by the Python-API builder (:mod:`edgealex.build.trt`) and
the trtexec command (:mod:`edgealex.build.trtexec`). Importing this package imports no heavy module.
"""
