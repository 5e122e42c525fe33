"""Fully connected MNIST classifiers: model, data and full-batch trainer (no Optuna here)."""

from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig, article_preset
from mnist_fc.data import Split, load_split
from mnist_fc.errors import DataError
from mnist_fc.model import FCNet, build_model
from mnist_fc.trainer import TrainResult, train

__all__ = [
    "DataConfig",
    "DataError",
    "FCNet",
    "ModelConfig",
    "RunConfig",
    "Split",
    "TrainConfig",
    "TrainResult",
    "article_preset",
    "build_model",
    "load_split",
    "train",
]
