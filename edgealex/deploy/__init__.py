"""Deployments edgealex writes but does not run: NVIDIA DeepStream (Gst-nvinfer, many cameras per
board) and Triton Inference Server (many clients).

- :mod:`edgealex.deploy.deepstream` -- ``edgealex deploy deepstream``: a DeepStream-ready ONNX
  (per-channel 1/std folded into the first convolution, Softmax appended, batch axis for N
  sources), the nvinfer config, labels in nvinfer's format, a deepstream-app config and a README.
- :mod:`edgealex.deploy.triton` -- ``edgealex deploy triton``: a Triton model repository
  (config.pbtxt, 1/model.onnx or 1/model.plan, labels one per line).
- :mod:`edgealex.deploy.graph` -- the ONNX rewrites and the parity check both share (workstation
  side: needs onnx and onnxruntime).
- :mod:`edgealex.deploy.common` -- labels files, engine sidecar checks and release pairings (pure
  Python, Python 3.6 compatible: runs on a Jetson).

Facts and sources: integration-facts.md §1 (DeepStream 6.0/6.2/7.0 nvinfer sources) and §2
(Triton server/client sources).
"""
