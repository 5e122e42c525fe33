"""Per-run measures of the article's phenomena, computed from a finished run's curves and initial model.

Pure functions (no Optuna): the study layer stores their results with each trial so the report,
the dashboard and exports all read the same numbers instead of recomputing them differently.

Definitions (the report and README quote these):
- plateau length: the number of gradient steps before the training loss first falls below
  `min(loss at init, ln 10) - PLATEAU_DELTA`. ln 10 ≈ 2.303 is the loss of a net that predicts
  uniform class probabilities, the level the article's loss sits at while its sigmoids are saturated;
  taking the min with the initial loss keeps a lucky start from counting as "already off the plateau".
  A run that never gets there is *censored*: its plateau is the number of epochs run (a lower bound).
- saturation at init: the fraction of (image, hidden unit) pairs, over both hidden layers, whose
  pre-activation |z| exceeds SATURATION_Z on a fixed batch of training images; there the sigmoid's
  slope s(1-s) is below 0.018, i.e. < 7% of its maximum 0.25, so almost no gradient flows back.
- oscillation: over the last OSCILLATION_TAIL of the epochs run, the standard deviation of the
  training loss around its least-squares line, divided by the mean loss there. Removing the trend
  keeps a smoothly falling curve near 0; epoch-to-epoch bouncing (too large a step) shows up.
- epochs to a validation accuracy: the first evaluation epoch whose validation accuracy reaches it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

PLATEAU_DELTA = 0.1  # nats below the plateau level that count as "clearly below"
CHANCE_LOSS = math.log(10.0)  # cross-entropy of uniform predictions over 10 classes
SATURATION_Z = 4.0  # |pre-activation| above which a sigmoid unit counts as saturated
SATURATION_BATCH = 1000  # images in the fixed batch (the first ones of the training subsample)
OSCILLATION_TAIL = 0.2  # last fraction of the curve used for the oscillation measure
OSCILLATION_MIN_POINTS = 5  # fewer finite points than this: no oscillation value
ACCURACY_TARGETS = (0.90, 0.97)


@dataclass(frozen=True)
class Plateau:
    epochs: int  # gradient steps before the loss fell below `threshold` (or epochs run if it never did)
    censored: bool  # True when it never fell below: `epochs` is a lower bound
    threshold: float


def plateau_length(train_loss: Sequence[float], *, delta: float = PLATEAU_DELTA) -> Plateau:
    """See the module docstring. train_loss[i] is the loss after i steps (the trainer's pre-step values)."""
    loss = np.asarray(train_loss, dtype=np.float64)
    if loss.size == 0 or not math.isfinite(loss[0]):
        return Plateau(epochs=0, censored=True, threshold=float("nan"))
    threshold = min(float(loss[0]), CHANCE_LOSS) - delta
    below = np.flatnonzero(np.isfinite(loss) & (loss < threshold))
    if below.size == 0:
        return Plateau(epochs=int(loss.size), censored=True, threshold=threshold)
    return Plateau(epochs=int(below[0]), censored=False, threshold=threshold)


def oscillation(train_loss: Sequence[float], *, tail: float = OSCILLATION_TAIL) -> float | None:
    """Detrended relative std of the last `tail` of the curve; None if it is too short or not finite."""
    loss = np.asarray(train_loss, dtype=np.float64)
    n = max(round(loss.size * tail), OSCILLATION_MIN_POINTS)
    window = loss[-n:]
    if window.size < OSCILLATION_MIN_POINTS or not np.all(np.isfinite(window)):
        return None
    mean = float(window.mean())
    if mean <= 0:
        return None
    t = np.arange(window.size, dtype=np.float64)
    slope, intercept = np.polyfit(t, window, 1)
    residual = window - (slope * t + intercept)
    return float(residual.std() / mean)


def epochs_to_accuracy(eval_epochs: Sequence[int], val_accuracy: Sequence[float], target: float) -> int | None:
    """First evaluation epoch with validation accuracy >= target, or None if never reached."""
    for epoch, acc in zip(eval_epochs, val_accuracy, strict=True):
        if math.isfinite(acc) and acc >= target:
            return int(epoch)
    return None


def saturated_fraction(preactivations: Sequence[torch.Tensor], *, threshold: float = SATURATION_Z) -> float:
    """Fraction of all entries of the given pre-activation tensors with |z| > threshold."""
    total = sum(int(z.numel()) for z in preactivations)
    if total == 0:
        return float("nan")
    hits = sum(int((z.abs() > threshold).sum()) for z in preactivations)
    return hits / total


@torch.no_grad()
def saturation_at_init(model: nn.Module, x: torch.Tensor, *, threshold: float = SATURATION_Z) -> list[float]:
    """Per hidden layer, the saturated fraction of `model` (freshly built) on batch `x`.

    Train mode, as in the first training step: BatchNorm normalises with the batch's own statistics.
    The model is left in the mode it was in.
    """
    was_training = model.training
    model.train()
    try:
        pre = model.hidden_preactivations(x)  # type: ignore[operator]
    finally:
        model.train(was_training)
    return [saturated_fraction([z.float()], threshold=threshold) for z in pre]


@dataclass(frozen=True)
class RunMeasures:
    plateau_epochs: int
    plateau_censored: bool
    saturation_init: float  # both hidden layers together
    saturation_init_l1: float
    saturation_init_l2: float
    oscillation: float | None
    epochs_to_val90: int | None
    epochs_to_val97: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_measures(
    *,
    train_loss: Sequence[float],
    eval_epochs: Sequence[int],
    val_accuracy: Sequence[float],
    saturation_by_layer: Sequence[float],
    layer_sizes: Sequence[int],
) -> RunMeasures:
    """All measures of one run; `saturation_by_layer` comes from `saturation_at_init`."""
    plateau = plateau_length(train_loss)
    sizes = np.asarray(layer_sizes, dtype=np.float64)
    sat = np.asarray(saturation_by_layer, dtype=np.float64)
    overall = float((sat * sizes).sum() / sizes.sum())  # per-unit fractions weighted by layer width
    to90, to97 = (epochs_to_accuracy(eval_epochs, val_accuracy, t) for t in ACCURACY_TARGETS)
    return RunMeasures(
        plateau_epochs=plateau.epochs,
        plateau_censored=plateau.censored,
        saturation_init=overall,
        saturation_init_l1=float(sat[0]),
        saturation_init_l2=float(sat[1]),
        oscillation=oscillation(train_loss),
        epochs_to_val90=to90,
        epochs_to_val97=to97,
    )


MEASURE_NAMES = tuple(f.name for f in RunMeasures.__dataclass_fields__.values())
