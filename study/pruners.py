"""Pruners for `mnist-study run --pruner`, and why the default prunes nothing.

The article's subject is the slow start: a sigmoid network with a poor init or input scaling
sits on the ln(10) loss plateau (10% accuracy) for a long time, then takes off. A pruner that
compares intermediate validation accuracy at early epochs kills exactly those trials, so the
study would never learn which of them would have escaped the plateau — the evidence the report
needs. Hence the default is "none". "median" waits half the epochs before judging (a plateau
that has not ended by then is counted as one); "hyperband" is the aggressive choice for users
who want the best final accuracy fast and do not study plateaus. Diverged trials are pruned at
once whatever the pruner (see study.objective).
"""

from __future__ import annotations

import optuna

from study.defaults import DEFAULT_PRUNER, PRUNERS
from study.errors import UserError

__all__ = ["DEFAULT_PRUNER", "PRUNERS", "make_pruner"]

MEDIAN_STARTUP_TRIALS = 5  # complete trials before the median means anything
MEDIAN_WARMUP_FRACTION = 0.5  # no median pruning in the first half of the epochs: plateaus get time
HYPERBAND_MIN_FRACTION = 0.1  # Hyperband's smallest budget: a tenth of the epochs
HYPERBAND_REDUCTION = 3


def make_pruner(name: str, *, epochs: int, report_every: int) -> optuna.pruners.BasePruner:
    """The Optuna pruner called `name`; steps are epochs, reported every `report_every` epochs."""
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=MEDIAN_STARTUP_TRIALS,
            n_warmup_steps=int(epochs * MEDIAN_WARMUP_FRACTION),
            interval_steps=report_every,
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(report_every, int(epochs * HYPERBAND_MIN_FRACTION)),
            max_resource=epochs,
            reduction_factor=HYPERBAND_REDUCTION,
        )
    raise UserError(f"unknown pruner {name!r} (choose from {', '.join(PRUNERS)})")
