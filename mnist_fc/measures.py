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
- first-step jump: train_loss[1] - train_loss[0], the change of the loss made by the very first
  gradient step. The article: too large a learning rate makes a big first update that throws the
  sigmoids into saturation, so the loss jumps UP and then does not move (a long plateau).
- oscillation (version 2, the up-movement ratio): over the tail (the last OSCILLATION_TAIL of the
  epochs run, at least OSCILLATION_MIN_POINTS losses), with the epoch-to-epoch changes d_t,
  U = sum of the rises, D = sum of the falls (as positive numbers), oscillation = U / (U + D).
  Changes smaller than OSCILLATION_RTOL x the loss count as no movement (float round-off on a
  converged curve must not look like bouncing); a tail that does not move at all gives 0.
  0 = the loss only falls (however bent the curve), 0.5 = it rises as much as it falls (bouncing
  with no net progress), 1 = it only rises. Why this and not a detrended std (version 1, the
  `reference` study's stored value): a std around a straight line keeps the curve's bend and
  scales with 1/mean loss, so a smooth, merely curved tail scored high. Why the ratio and not the
  fraction of rising epochs: it weighs each rise by its size, so a few big bounces count more than
  many tiny ones; it is a bounded, monotone transform of "total rise / net decrease", U / (D - U),
  that stays defined when the tail makes no net progress. `loss_up_fraction` (the fraction of tail
  steps that rise) is stored beside it as a check.
- epochs to a validation accuracy: the first evaluation epoch whose validation accuracy reaches it;
  None (censored at `epochs_run`) if it never does.
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
OSCILLATION_RTOL = 1e-5  # a change below this fraction of the loss is round-off, not a movement
MEASURES_VERSION = 2  # 1: the `reference` study (oscillation = detrended relative std); 2: this module
ACCURACY_TARGETS = (0.90, 0.97)
ACCURACY_ATOL = 1e-6  # float32 round-trip of a stored accuracy (see epochs_to_accuracy)


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


def first_step_jump(train_loss: Sequence[float]) -> float | None:
    """Loss after the first step minus the initial loss (> 0: the first step made it worse); None if
    there is no first step or either loss is not finite (a first step that diverged)."""
    if len(train_loss) < 2:
        return None
    jump = float(train_loss[1]) - float(train_loss[0])
    return jump if math.isfinite(jump) else None


def _tail_moves(train_loss: Sequence[float], tail: float) -> np.ndarray | None:
    """Epoch-to-epoch changes over the tail, round-off set to 0; None if too short or not finite."""
    loss = np.asarray(train_loss, dtype=np.float64)
    n = max(round(loss.size * tail), OSCILLATION_MIN_POINTS)
    window = loss[-n:]
    if window.size < OSCILLATION_MIN_POINTS or not np.all(np.isfinite(window)):
        return None
    moves = np.diff(window)
    moves[np.abs(moves) < OSCILLATION_RTOL * np.abs(window[:-1])] = 0.0
    return moves


def oscillation(train_loss: Sequence[float], *, tail: float = OSCILLATION_TAIL) -> float | None:
    """Up-movement ratio U / (U + D) over the tail (see the module docstring); None if too short or
    not finite; 0 for a tail that does not move."""
    moves = _tail_moves(train_loss, tail)
    if moves is None:
        return None
    up, down = float(moves[moves > 0].sum()), float(-moves[moves < 0].sum())
    return 0.0 if up + down == 0 else up / (up + down)


def loss_up_fraction(train_loss: Sequence[float], *, tail: float = OSCILLATION_TAIL) -> float | None:
    """Fraction of the tail's epoch-to-epoch changes that are rises (beyond round-off)."""
    moves = _tail_moves(train_loss, tail)
    return None if moves is None else float((moves > 0).mean())


def epochs_to_accuracy(eval_epochs: Sequence[int], val_accuracy: Sequence[float], target: float) -> int | None:
    """First evaluation epoch with validation accuracy >= target, or None if never reached.

    Within ACCURACY_ATOL: curves are stored as float32, where 0.9 reads back as 0.89999998, so a measure
    recomputed from stored curves would otherwise move one evaluation later than the one stored at the
    end of training. Accuracies are multiples of 1/n, so the tolerance changes nothing else for any
    validation set below 10^6 images."""
    for epoch, acc in zip(eval_epochs, val_accuracy, strict=True):
        if math.isfinite(acc) and acc >= target - ACCURACY_ATOL:
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
    oscillation: float | None  # version 2: up-movement ratio U / (U + D) over the tail
    epochs_to_val90: int | None  # None: never reached (censored at epochs_run)
    epochs_to_val97: int | None
    first_step_jump: float | None = None  # train_loss[1] - train_loss[0]
    loss_up_fraction: float | None = None  # fraction of tail steps where the loss rises
    epochs_run: int | None = None  # length of the loss curve: the censoring time of the durations
    measures_version: int | None = None  # MEASURES_VERSION; None in studies stored before version 2

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
    curve = curve_measures(train_loss=train_loss, eval_epochs=eval_epochs, val_accuracy=val_accuracy)
    sizes = np.asarray(layer_sizes, dtype=np.float64)
    sat = np.asarray(saturation_by_layer, dtype=np.float64)
    overall = float((sat * sizes).sum() / sizes.sum())  # per-unit fractions weighted by layer width
    return RunMeasures(
        saturation_init=overall,
        saturation_init_l1=float(sat[0]),
        saturation_init_l2=float(sat[1]),
        **curve,
    )


def curve_measures(
    *, train_loss: Sequence[float], eval_epochs: Sequence[int], val_accuracy: Sequence[float]
) -> dict[str, Any]:
    """The measures that need only the curves (everything but saturation): also used to recompute
    version-2 measures from the stored curves of a study made before they existed."""
    plateau = plateau_length(train_loss)
    to90, to97 = (epochs_to_accuracy(eval_epochs, val_accuracy, t) for t in ACCURACY_TARGETS)
    return {
        "plateau_epochs": plateau.epochs,
        "plateau_censored": plateau.censored,
        "oscillation": oscillation(train_loss),
        "epochs_to_val90": to90,
        "epochs_to_val97": to97,
        "first_step_jump": first_step_jump(train_loss),
        "loss_up_fraction": loss_up_fraction(train_loss),
        "epochs_run": len(train_loss),
        "measures_version": MEASURES_VERSION,
    }


MEASURE_NAMES = tuple(f.name for f in RunMeasures.__dataclass_fields__.values())
