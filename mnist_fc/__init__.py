"""Fully connected MNIST classifiers: model, data and training loops (no Optuna here).

    from mnist_fc import article_preset, fit
    fitted = fit(article_preset(epochs=300, device="cpu"), log=print, log_every=100)
    print(fitted.result.test_accuracy)

Names are imported on first use (PEP 562), so that `import mnist_fc.config` or
`mnist-study --help` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DataConfig": "mnist_fc.config",
    "ModelConfig": "mnist_fc.config",
    "RunConfig": "mnist_fc.config",
    "TrainConfig": "mnist_fc.config",
    "article_preset": "mnist_fc.config",
    "Split": "mnist_fc.data",
    "load_split": "mnist_fc.data",
    "ConfigError": "mnist_fc.errors",
    "DataError": "mnist_fc.errors",
    "MnistFcError": "mnist_fc.errors",
    "ModelFileError": "mnist_fc.errors",
    "FCNet": "mnist_fc.model",
    "build_model": "mnist_fc.model",
    "Curves": "mnist_fc.results",
    "EvalCallback": "mnist_fc.results",
    "Fitted": "mnist_fc.results",
    "TrainResult": "mnist_fc.results",
    "fit": "mnist_fc.trainer",
    "train": "mnist_fc.trainer",
    "train_batched": "mnist_fc.batched",
}

if TYPE_CHECKING:
    from mnist_fc.batched import train_batched
    from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig, article_preset
    from mnist_fc.data import Split, load_split
    from mnist_fc.errors import ConfigError, DataError, MnistFcError, ModelFileError
    from mnist_fc.model import FCNet, build_model
    from mnist_fc.results import Curves, EvalCallback, Fitted, TrainResult
    from mnist_fc.trainer import fit, train


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mnist_fc' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = [
    "ConfigError",
    "Curves",
    "DataConfig",
    "DataError",
    "EvalCallback",
    "FCNet",
    "Fitted",
    "MnistFcError",
    "ModelConfig",
    "ModelFileError",
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
