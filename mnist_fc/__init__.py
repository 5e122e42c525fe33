"""Fully connected MNIST classifiers: model, data and training loops (no Optuna here).

from mnist_fc import article_preset, fit
fitted = fit(article_preset(epochs=300, device="cpu"), log=print, log_every=100)
print(fitted.result.test_accuracy)
"""

from mnist_fc.batched import train_batched
from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig, article_preset
from mnist_fc.data import Split, load_split
from mnist_fc.errors import DataError
from mnist_fc.model import FCNet, build_model
from mnist_fc.results import Curves, EvalCallback, Fitted, TrainResult
from mnist_fc.trainer import fit, train

__all__ = [
    "Curves",
    "DataConfig",
    "DataError",
    "EvalCallback",
    "FCNet",
    "Fitted",
    "ModelConfig",
    "RunConfig",
    "Split",
    "TrainConfig",
    "TrainResult",
    "article_preset",
    "build_model",
    "fit",
    "load_split",
    "train",
    "train_batched",
]
