"""Fully connected MNIST classifiers: model, data and full-batch trainer (no Optuna here).

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
    "FCNet": "mnist_fc.model",
    "build_model": "mnist_fc.model",
    "TrainResult": "mnist_fc.trainer",
    "train": "mnist_fc.trainer",
}

if TYPE_CHECKING:
    from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig, article_preset
    from mnist_fc.data import Split, load_split
    from mnist_fc.errors import ConfigError, DataError, MnistFcError
    from mnist_fc.model import FCNet, build_model
    from mnist_fc.trainer import TrainResult, train


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mnist_fc' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = [
    "ConfigError",
    "DataConfig",
    "DataError",
    "FCNet",
    "MnistFcError",
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
