"""Search spaces: each one maps an Optuna trial to a RunConfig, declared in one readable place.

A space only *samples*; training is `mnist_fc`'s job, and the objective glues the two.
"""

from __future__ import annotations

import dataclasses
import math
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
        # param name kept from before init_scaling had 3 levels: the stored reference study uses it
        init_scaling="sqrt_fan_in" if trial.suggest_categorical("fan_in_scaling", [False, True]) else "none",
        batchnorm=trial.suggest_categorical("batchnorm", [False, True]),
    )
    data = dataclasses.replace(base.data, normalization=trial.suggest_categorical("normalization", NORMALIZATIONS))
    train = dataclasses.replace(base.train, lr=trial.suggest_float("lr", 1e-3, 10.0, log=True), momentum=0.0)
    return RunConfig(model=model, data=data, train=train)


# The `accuracy` space's augmentation at strength 1 (Ciresan et al. 2010 used similar amounts); the
# sampled strength scales all of them together. Elastic alpha/sigma follow Simard et al. (2003).
AUG_AT_STRENGTH_1 = {"aug_shift": 2.0, "aug_rotate": 10.0, "aug_scale": 0.1, "aug_shear": 10.0}
ELASTIC_ALPHA_AT_STRENGTH_1, ELASTIC_SIGMA = 34.0, 4.0
NESTEROV_MOMENTUM = 0.9
ACCURACY_WIDTHS = [256, 512, 1024]
ACCURACY_BATCH_SIZES = [None, 128, 256, 512]  # None = full batch


def accuracy_space(trial: optuna.Trial, base: RunConfig) -> RunConfig:
    """Everything that might push a network with exactly two hidden FC layers to high *test* accuracy.

    Fixed by design: "global" input normalisation (a per-pixel one turns shifted-in border pixels,
    whose training std is ~0, into huge inputs) and He/LeCun-style init (mean 0, std sqrt(2) or 1
    times 1/sqrt(fan_in)). Epochs are sampled between half and all of the run's --epochs.
    """
    activation = trial.suggest_categorical("activation", ["relu", "gelu", "silu", "sigmoid", "tanh"])
    model = dataclasses.replace(
        base.model,
        n_units_l1=trial.suggest_categorical("n_units_l1", ACCURACY_WIDTHS),
        n_units_l2=trial.suggest_categorical("n_units_l2", ACCURACY_WIDTHS),
        activation=activation,
        batchnorm=trial.suggest_categorical("batchnorm", [False, True]),
        dropout=trial.suggest_float("dropout", 0.0, 0.5),
        init_distribution="normal",
        init_mean=0.0,
        init_std=math.sqrt(2.0) if activation in ("relu", "gelu", "silu") else 1.0,
        init_scaling="sqrt_fan_in",
    )
    optimizer = trial.suggest_categorical("optimizer", ["sgd", "nesterov", "adam", "adamw"])
    if optimizer in ("adam", "adamw"):
        lr = trial.suggest_float("lr_adam", 1e-4, 1e-2, log=True)
    else:
        lr = trial.suggest_float("lr_sgd", 1e-3, 3.0, log=True)
    max_epochs = base.train.epochs
    epochs = trial.suggest_int("epochs", max(1, max_epochs // 2), max_epochs)
    schedule = trial.suggest_categorical("schedule", ["none", "cosine", "onecycle"])
    warmup = trial.suggest_float("warmup_fraction", 0.0, 0.3) * epochs if schedule != "none" else 0.0
    strength = trial.suggest_float("aug_strength", 0.0, 1.25)
    elastic = trial.suggest_categorical("elastic", [False, True]) if strength > 0 else False
    train = dataclasses.replace(
        base.train,
        epochs=epochs,
        optimizer=optimizer,
        lr=lr,
        momentum=NESTEROV_MOMENTUM if optimizer == "nesterov" else 0.0,
        batch_size=trial.suggest_categorical("batch_size", ACCURACY_BATCH_SIZES),
        schedule=schedule,
        warmup_epochs=warmup,
        weight_decay=trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
        label_smoothing=trial.suggest_float("label_smoothing", 0.0, 0.2),
        **{k: v * strength for k, v in AUG_AT_STRENGTH_1.items()},
        aug_elastic_alpha=ELASTIC_ALPHA_AT_STRENGTH_1 * strength if elastic else 0.0,
        aug_elastic_sigma=ELASTIC_SIGMA,
    )
    data = dataclasses.replace(base.data, normalization="global")
    return RunConfig(model=model, data=data, train=train)


SPACES: dict[str, Space] = {
    "article": article_space,
    "accuracy": accuracy_space,
}
