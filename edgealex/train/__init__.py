"""Training AlexNet classifiers on ImageFolder datasets (the synthetic defects or a user's own)."""

from edgealex.train.data import TrainData, find_train_data  # noqa: F401
from edgealex.train.trainer import (  # noqa: F401
    PRESETS,
    EvalResult,
    LogProgress,
    TrainResult,
    TrainSettings,
    evaluate,
    last_path_for,
    settings_for,
    train,
)
