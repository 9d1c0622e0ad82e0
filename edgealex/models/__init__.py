"""AlexNet-class models (PyTorch). Importing this package does not import torch."""

from edgealex.models.alexnet import (
    ARCHS,
    build_model,
    load_checkpoint,
    model_from_checkpoint,
    parameter_count,
    save_checkpoint,
)

__all__ = ["ARCHS", "build_model", "load_checkpoint", "model_from_checkpoint", "parameter_count", "save_checkpoint"]
