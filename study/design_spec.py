"""The vocabulary of designed experiments: a pre-registered prediction and the design that tests it.

A design is an ordinary Optuna study whose trials are *enqueued* cells (one or two factors varied
around a baseline, the rest held at the baseline) times replicate seeds; its predictions are
declared beside it and committed before its data are run (pre-registration). This module holds
only the types, so the declarations (`study.designs`) and the statistics that judge them
(`study.analysis`) share one definition without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Tests a prediction may name (implemented in study.analysis; each returns an effect size with a CI
# and a p-value, and the verdict rule is the same symmetric one for all):
#  "logrank"     two levels of `factor` (compare=(a, b)); measure is a censorable duration (plateau):
#                 effect = log ratio of median durations a/b (Kaplan-Meier), p from the log-rank test
#  "mannwhitney" two levels (compare=(a, b)); effect = Cliff's delta of a over b
#  "trend"       ordered levels of `factor`; effect = Spearman rho of measure vs level
#                 (censored durations: tested with a log-rank trend / AFT instead)
#  "u_shape"     ordered levels; the measure is lower in an interior level than at both ends
#                 (two one-sided comparisons, interior minimum vs each end; effect = the smaller one)
#  "interaction" factor x `by`: the trend of measure vs factor differs between the two levels of `by`
TESTS = ("logrank", "mannwhitney", "trend", "u_shape", "interaction")


@dataclass(frozen=True)
class Prediction:
    """One falsifiable prediction of the article, fixed before the data that test it are run."""

    claim: str  # row id in the claims table, e.g. "5a"
    statement: str  # what the article says, in words
    measure: str  # a per-trial measure stored as a user attribute, e.g. "plateau_epochs"
    test: str  # one of TESTS
    factor: str  # the design parameter whose levels are compared
    direction: int  # +1: measure larger at compare[0] (or rising with the factor); -1: smaller / falling
    min_effect: float  # smallest |effect| (in the test's effect units) that counts as the claimed effect
    compare: tuple[Any, ...] = ()  # two-level tests: (level_a, level_b)
    by: str | None = None  # "interaction": the second factor
    where: dict[str, Any] = field(default_factory=dict)  # restrict to trials whose params equal these
    primary: bool = True  # primary predictions share one Holm correction


@dataclass(frozen=True)
class Design:
    """Cells (the grid of `factors` around `baseline`) x replicate `seeds`, each cell an enqueued trial.

    `baseline` maps parameter names (fields of ModelConfig, DataConfig or TrainConfig) to values; the
    article's setup is the default baseline. `seeds` are init seeds; the training subset has its own
    `data_seed`, the same for every cell, so replicates differ only in the initial weights.
    """

    name: str  # the study name is f"{prefix}{name}"
    question: str  # the article's question this design answers
    factors: dict[str, tuple[Any, ...]]  # parameter -> levels; cells = their full grid
    predictions: tuple[Prediction, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    baseline: dict[str, Any] = field(default_factory=dict)  # overrides of the article baseline
    epochs: int = 1000
    train_size: int | None = 1000
    data_seed: int = 0
    # Stop a run this many epochs after its loss leaves the plateau (None = run all epochs). Only for
    # designs whose predictions use nothing but the plateau and the first step, which cannot change.
    stop_margin: int | None = None
