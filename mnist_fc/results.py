"""What a training run returns: learning curves, final metrics, and (with `fit`) the trained network.

Plain data, no training logic: the loops fill these in, and the study layer, exports and reports
read them without importing any loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mnist_fc.model import FCNet
from mnist_fc.normalize import Normalizer

# on_eval(epoch, metrics) -> True to stop early (e.g. an Optuna pruner said so).
EvalCallback = Callable[[int, dict[str, float]], bool]
# log(line) receives the article-style "Epoch, Loss, Acc" progress lines.
LogFn = Callable[[str], None]

# Why a run ended: all its epochs; `TrainConfig.stop_margin` epochs after the loss left the plateau
# (a normal finished run); its on_eval callback asked to stop (stopped_early); a non-finite loss.
STOP_REASONS = ("epochs", "plateau_margin", "callback", "diverged")


@dataclass
class Curves:
    """Learning curves: per-epoch training metrics and every-K-epochs validation metrics."""

    train_loss: list[float] = field(default_factory=list)  # one per epoch run
    train_accuracy: list[float] = field(default_factory=list)  # one per epoch run
    eval_epochs: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list]:
        return {k: list(v) for k, v in self.__dict__.items()}


@dataclass
class TrainResult:
    config: dict[str, Any]
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    test_accuracy: float
    epochs: int  # epochs actually run
    seconds: float  # training time only: no start-up, no data loading
    device: str
    precision: str
    diverged: bool
    stopped_early: bool  # by the on_eval callback (a pruner), not by stop_margin
    curves: Curves
    stop_reason: str = "epochs"  # one of STOP_REASONS
    # precision "auto": what the probe measured and why it chose `precision` (PrecisionChoice.summary());
    # None when the config named the precision.
    precision_probe: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """Everything but the curves, JSON-ready."""
        d = {k: v for k, v in self.__dict__.items() if k != "curves"}
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


@dataclass
class Fitted:
    """A finished run: its result, the trained network (in eval mode) and the input normaliser it expects."""

    result: TrainResult
    model: FCNet
    normalizer: Normalizer
