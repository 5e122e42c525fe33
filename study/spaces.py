"""Search spaces: each one maps an Optuna trial to a RunConfig, declared in one readable place.

A space only *samples*; training is `mnist_fc`'s job, and the objective glues the two.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import optuna

from mnist_fc.config import NORMALIZATIONS, RunConfig

Space = Callable[[optuna.Trial, RunConfig], RunConfig]


def article_space(trial: optuna.Trial, base: RunConfig) -> RunConfig:
    """The article's factors: hidden sizes, init mean/std/distribution/scaling, input normalisation,
    learning rate and BatchNorm. Sigmoid and full-batch plain gradient descent stay fixed."""
    model = dataclasses.replace(
        base.model,
        activation="sigmoid",
        n_units_l1=trial.suggest_int("n_units_l1", 16, 1024, log=True),
        n_units_l2=trial.suggest_int("n_units_l2", 8, 512, log=True),
        init_mean=trial.suggest_float("init_mean", -0.1, 0.1),
        init_std=trial.suggest_float("init_std", 1e-3, 1.0, log=True),
        init_distribution=trial.suggest_categorical("init_distribution", ["normal", "uniform"]),
        fan_in_scaling=trial.suggest_categorical("fan_in_scaling", [False, True]),
        batchnorm=trial.suggest_categorical("batchnorm", [False, True]),
    )
    data = dataclasses.replace(base.data, normalization=trial.suggest_categorical("normalization", NORMALIZATIONS))
    train = dataclasses.replace(base.train, lr=trial.suggest_float("lr", 1e-3, 10.0, log=True), momentum=0.0)
    return RunConfig(model=model, data=data, train=train)


SPACES: dict[str, Space] = {
    "article": article_space,
}
