"""The designed experiments that test the article's claims, one readable place, pre-registered.

Each `Design` varies one or two factors around the article's exact setup (784-100-30-10 sigmoid,
N(0.01, 0.1) init, (x - 127.5)/255 inputs, lr 0.1, full-batch plain gradient descent, no BN: the
defaults of mnist_fc.config) and carries the predictions that judge it. Predictions were written
and committed BEFORE any of their data were run (see docs/claims.md and the git log); changing one
afterwards must be said in the docs as a post-hoc change.

Common choices, justified by the pilot (scripts/claims_pilot.py, docs/claims.md):
- 1,000 training images (one stratified subset, `data_seed` 0, for every cell and seed): the plateau
  in gradient steps was the same at 1,000, 10,000 and 50,000 images;
- seeds are init seeds; replicates differ only in the initial weights;
- epochs are chosen so the slowest cell's plateau ends (the plateau scales like 1/lr: ~42/lr steps at
  the article's setup); designs whose predictions use only the plateau and the first step stop
  `stop_margin` epochs after the plateau's end (TrainConfig.stop_margin), which cannot change them.

Measures named here are user attributes stored by study.objective (mnist_fc.measures):
plateau_epochs (+ plateau_censored), first_step_jump, oscillation, val_accuracy, saturation_init.
Effect units (study.analysis.stats): rank tests give Cliff's delta / Spearman rho (min_effect 0.3 =
a clear, not a huge, effect); "logrank" gives the log ratio of Kaplan-Meier medians (0.4 = a 1.5x
longer or shorter plateau). For "u_shape", direction +1 = a U (an interior level lowest), -1 = an
inverted U; compare=(level,) names the interior level in advance. For "interaction", the effect is
the trend at the first level of `by` minus the trend at its second level.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from typing import Any

import optuna

from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig, validate
from study.design_spec import Design, Prediction
from study.spaces import Space

EVAL_EVERY = 20  # validation every 20 epochs: the plateau uses the per-epoch training loss, not these
RANK = 0.3  # min |Cliff's delta| or |rho| that counts as the claimed effect
LOG_RATIO = math.log(1.5)  # min |log ratio of median plateaus| (1.5x)
SQRT12 = math.sqrt(12.0)

# Pseudo-parameters a design may vary besides config fields: U(0, a) vs U(-a/2, a/2) at the same std.
# uniform_a = a sets the uniform distribution with std a/sqrt(12); uniform_positive picks the mean
# (a/2: every weight in [0, a], all positive; 0: symmetric). Both must be given together.
DERIVED = ("uniform_a", "uniform_positive")


def _p(claim: str, statement: str, measure: str, test: str, factor: str, direction: int, min_effect: float, **kw: Any):
    return Prediction(
        claim=claim,
        statement=statement,
        measure=measure,
        test=test,
        factor=factor,
        direction=direction,
        min_effect=min_effect,
        **kw,
    )


DESIGNS: tuple[Design, ...] = (
    Design(
        name="width_lr",
        question="Claim 1: more hidden units give a longer initial plateau, especially when the learning rate is small",
        factors={"n_units_l1": (25, 100, 400), "lr": (0.1, 1.0)},
        seeds=(0, 1, 2, 3, 4),
        epochs=3000,
        stop_margin=50,
        predictions=(
            _p(
                "1a",
                "More hidden units -> a longer initial plateau (at the article's lr 0.1)",
                "plateau_epochs",
                "trend",
                "n_units_l1",
                +1,
                RANK,
                where={"lr": 0.1},
            ),
            _p(
                "1b",
                "The width effect on the plateau is stronger at a small learning rate (0.1) than at a large one (1.0)",
                "plateau_epochs",
                "interaction",
                "n_units_l1",
                +1,
                RANK,
                by="lr",
            ),
            _p(
                "1c",
                "More hidden units -> a longer initial plateau (at lr 1.0)",
                "plateau_epochs",
                "trend",
                "n_units_l1",
                +1,
                RANK,
                where={"lr": 1.0},
                primary=False,
            ),
        ),
    ),
    Design(
        name="init_std",
        question="Claim 2: larger init values saturate and start slowly; all-equal weights (std -> 0) cause trouble",
        factors={"init_std": (0.0, 0.1, 1.0)},
        seeds=tuple(range(8)),  # two-level comparisons: 8 vs 8 (std 0 is deterministic: its seeds are equal)
        epochs=1000,
        predictions=(
            _p(
                "2a",
                "Larger init values -> a slower start (std 1.0 vs the article's 0.1)",
                "plateau_epochs",
                "logrank",
                "init_std",
                +1,
                LOG_RATIO,
                compare=(1.0, 0.1),
            ),
            _p(
                "2b",
                "All parameters equal (std 0) -> worse training than the article's std 0.1",
                "val_accuracy",
                "mannwhitney",
                "init_std",
                -1,
                RANK,
                compare=(0.0, 0.1),
            ),
            _p(
                "2c",
                "Larger init values -> more saturated units at init",
                "saturation_init",
                "trend",
                "init_std",
                +1,
                RANK,
                primary=False,
            ),
        ),
    ),
    Design(
        name="init_mean",
        question="Claim 2: an init that is not zero-centred causes trouble (std held at 0.1)",
        factors={"init_mean": (0.0, 0.01, 0.03, 0.1)},
        seeds=(0, 1, 2),
        epochs=1500,
        predictions=(
            _p(
                "2d",
                "A larger init mean (less centred) -> a longer plateau",
                "plateau_epochs",
                "trend",
                "init_mean",
                +1,
                RANK,
            ),
            _p(
                "2e",
                "A larger init mean -> lower validation accuracy",
                "val_accuracy",
                "trend",
                "init_mean",
                -1,
                RANK,
                primary=False,
            ),
        ),
    ),
    Design(
        name="init_positive",
        question="Claim 2: an all-positive init U(0, a) is worse than a symmetric one with the same spread",
        factors={"uniform_a": (0.02, 0.2), "uniform_positive": (False, True)},
        seeds=(0, 1, 2, 3),  # 8 vs 8 per compared level (pooled over a)
        epochs=1000,
        predictions=(
            _p(
                "2f",
                "All-positive U(0, a) -> a longer plateau than symmetric U(-a/2, a/2)",
                "plateau_epochs",
                "logrank",
                "uniform_positive",
                +1,
                LOG_RATIO,
                compare=(True, False),
            ),
            _p(
                "2g",
                "All-positive U(0, a) -> lower validation accuracy than symmetric U(-a/2, a/2)",
                "val_accuracy",
                "mannwhitney",
                "uniform_positive",
                -1,
                RANK,
                compare=(True, False),
                primary=False,
            ),
        ),
    ),
    Design(
        name="scaling",
        question="Claim 3: dividing each layer's init by its number of (input) units trains better, for any width",
        factors={"init_scaling": ("none", "sqrt_fan_in", "fan_in"), "n_units_l1": (100, 300)},
        seeds=(0, 1, 2, 3),  # 8 vs 8 per compared level (pooled over the width)
        epochs=1000,
        predictions=(
            _p(
                "3a",
                "The article's 1/n scaling -> a shorter plateau than no scaling",
                "plateau_epochs",
                "logrank",
                "init_scaling",
                -1,
                LOG_RATIO,
                compare=("fan_in", "none"),
            ),
            _p(
                "3b",
                "The article's 1/n scaling -> higher validation accuracy than no scaling",
                "val_accuracy",
                "mannwhitney",
                "init_scaling",
                +1,
                RANK,
                compare=("fan_in", "none"),
            ),
            _p(
                "3c",
                "1/sqrt(n) scaling -> a shorter plateau than no scaling",
                "plateau_epochs",
                "logrank",
                "init_scaling",
                -1,
                LOG_RATIO,
                compare=("sqrt_fan_in", "none"),
                primary=False,
            ),
            _p(
                "3d",
                "1/n scaling helps the wide net too (300 units): higher validation accuracy than no scaling",
                "val_accuracy",
                "mannwhitney",
                "init_scaling",
                +1,
                RANK,
                compare=("fan_in", "none"),
                where={"n_units_l1": 300},
                primary=False,
            ),
        ),
    ),
    Design(
        name="input_mean",
        question="Claim 4: the input's mean matters (inputs standardised, then shifted to mean m, std 0.3)",
        factors={"input_shift": (0.0, 0.4, 1.0, 2.0)},
        baseline={"normalization": "global", "input_scale": 0.3},
        seeds=(0, 1, 2),
        epochs=1000,
        predictions=(
            _p(
                "4a",
                "An input mean further from 0 -> a longer plateau",
                "plateau_epochs",
                "trend",
                "input_shift",
                +1,
                RANK,
            ),
            _p(
                "4b",
                "An input mean further from 0 -> lower validation accuracy",
                "val_accuracy",
                "trend",
                "input_shift",
                -1,
                RANK,
                primary=False,
            ),
        ),
    ),
    Design(
        name="input_std",
        question="Claim 4: the input's variance matters (inputs standardised to mean 0, then scaled to std s)",
        factors={"input_scale": (0.03, 0.3, 1.0, 3.0)},
        baseline={"normalization": "global"},
        seeds=tuple(range(6)),  # a U is two one-sided comparisons of 6 vs 6
        epochs=1000,
        predictions=(
            _p(
                "4c",
                "Too small or too large an input spread -> a longer plateau than a moderate one (a U over std)",
                "plateau_epochs",
                "u_shape",
                "input_scale",
                +1,
                RANK,
                compare=(1.0,),  # the pre-registered interior level (bottom / top of the U)
            ),
            _p(
                "4d",
                "Too small or too large an input spread -> lower validation accuracy (an inverted U)",
                "val_accuracy",
                "u_shape",
                "input_scale",
                -1,
                RANK,
                compare=(1.0,),  # the pre-registered interior level (bottom / top of the U)
                primary=False,
            ),
        ),
    ),
    Design(
        name="lr_plateau",
        question="Claim 5: a badly set (too large) learning rate keeps the loss from moving at first; "
        "the plateau is U-shaped in lr",
        factors={"lr": (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)},
        seeds=tuple(range(6)),  # a U is two one-sided comparisons of 6 vs 6
        epochs=2000,  # the plateau is ~42/lr steps in the pilot: ~1,400 at lr 0.03
        stop_margin=50,
        predictions=(
            _p(
                "5a",
                "The initial plateau is U-shaped in the learning rate (long at both ends of 0.03 ... 30)",
                "plateau_epochs",
                "u_shape",
                "lr",
                +1,
                RANK,
                compare=(3.0,),  # pre-registered bottom: the shortest plateau in the lr sweep (~17 steps at 3)
            ),
            _p(
                "5b",
                "Too large a learning rate (30) -> the first step raises the loss (a larger first-step jump than at 1)",
                "first_step_jump",
                "mannwhitney",
                "lr",
                +1,
                RANK,
                compare=(30.0, 1.0),
            ),
        ),
    ),
    Design(
        name="lr_oscillation",
        question="Claim 5: too large a learning rate makes the loss oscillate late in training",
        factors={"lr": (0.1, 0.3, 1.0, 3.0, 10.0)},
        seeds=(0, 1, 2, 3, 4),
        epochs=1000,
        predictions=(
            _p(
                "5c",
                "A larger learning rate -> more oscillation of the loss late in training",
                "oscillation",
                "trend",
                "lr",
                +1,
                RANK,
            ),
        ),
    ),
    Design(
        name="batchnorm",
        question="Claim 6: BatchNorm makes training much faster and better, across learning rates and inits",
        factors={"batchnorm": (False, True), "lr": (0.1, 1.0, 10.0), "init_std": (0.1, 1.0)},
        seeds=(0, 1, 2),
        epochs=1000,
        predictions=(
            _p(
                "6a",
                "BatchNorm -> a shorter initial plateau",
                "plateau_epochs",
                "logrank",
                "batchnorm",
                -1,
                LOG_RATIO,
                compare=(True, False),
            ),
            _p(
                "6b",
                "BatchNorm -> higher validation accuracy",
                "val_accuracy",
                "mannwhitney",
                "batchnorm",
                +1,
                RANK,
                compare=(True, False),
            ),
        ),
    ),
)

DESIGNS_BY_NAME: dict[str, Design] = {d.name: d for d in DESIGNS}


def expand(design: Design) -> list[dict[str, Any]]:
    """The design's trials as enqueue-able params: every cell of the factor grid x every seed.

    Seed-major order (all cells of seed 0, then of seed 1, ...): consecutive trials share the data,
    the epochs and the seed, which is what lets `--batch-trials` train them as one batched model.
    """
    names = list(design.factors)
    cells = [dict(zip(names, levels, strict=True)) for levels in itertools.product(*design.factors.values())]
    return [{**cell, "seed": seed} for seed in design.seeds for cell in cells]


_SECTIONS = {
    "model": {f.name for f in dataclasses.fields(ModelConfig)},
    "data": {f.name for f in dataclasses.fields(DataConfig)},
    "train": {f.name for f in dataclasses.fields(TrainConfig)},
}


def _apply(cfg: RunConfig, values: dict[str, Any]) -> RunConfig:
    """`cfg` with each named value set in the section (model/data/train) that has that field."""
    parts: dict[str, dict[str, Any]] = {"model": {}, "data": {}, "train": {}}
    values = dict(values)
    if "uniform_a" in values or "uniform_positive" in values:
        a, positive = values.pop("uniform_a", None), values.pop("uniform_positive", None)
        if a is None or positive is None:
            raise ValueError("uniform_a and uniform_positive go together")
        parts["model"].update(init_distribution="uniform", init_std=a / SQRT12, init_mean=a / 2 if positive else 0.0)
    for name, value in values.items():
        section = next((s for s, fields in _SECTIONS.items() if name in fields), None)
        if section is None:
            raise ValueError(f"unknown design parameter {name!r}")
        parts[section][name] = value
    return RunConfig(
        model=dataclasses.replace(cfg.model, **parts["model"]),
        data=dataclasses.replace(cfg.data, **parts["data"]),
        train=dataclasses.replace(cfg.train, **parts["train"]),
    )


def design_base(design: Design, base: RunConfig | None = None) -> RunConfig:
    """The design's baseline: the article's setup (or `base`'s device settings) with the design's
    epochs, subset, margin and overrides. Every cell of the design starts from this config."""
    base = base or RunConfig()
    common: dict[str, Any] = {"epochs": design.epochs, "eval_every": EVAL_EVERY, "train_size": design.train_size}
    # Fields that arrive with the trainer refactor (branch core): set them when this mnist_fc has them.
    if "subset_seed" in _SECTIONS["data"]:
        common["subset_seed"] = design.data_seed
    if "stop_margin" in _SECTIONS["train"]:
        common["stop_margin"] = design.stop_margin
    # bf16 changes late-training oscillation (docs/speed.md section 3): "auto" must not pick it for a design
    # that measures it. A named --precision bf16 still wins.
    if any(p.measure == "oscillation" for p in design.predictions):
        common["allow_bf16_auto"] = False
    return _apply(base, {**common, **design.baseline})


def design_config(design: Design, params: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """The RunConfig of one trial: the design's baseline with the cell's levels and its init seed."""
    params = dict(params)
    seed = params.pop("seed")
    unknown = set(params) - set(design.factors)
    if unknown:
        raise ValueError(f"design {design.name!r} has no factor {', '.join(sorted(unknown))}")
    cfg = _apply(design_base(design, base), {**params, "seed": seed})
    validate(cfg)
    return cfg


class NotACell(Exception):
    """A trial of a design study that was not enqueued (e.g. a worker asked past the queue)."""


def _enqueued(trial: optuna.trial.Trial) -> bool:
    return "fixed_params" in trial.study._storage.get_trial_system_attrs(trial._trial_id)


def design_space(design: Design) -> Space:
    """A search space (study.spaces.Space) whose every trial is one enqueued cell x seed of `design`.

    The enqueued values are fixed params, so suggest_categorical returns them; the categorical
    distributions over the declared levels make the study readable in optuna-dashboard and exports.
    A trial that was not enqueued raises NotACell: a design study never samples configurations.
    """

    def space(trial: optuna.Trial, base: RunConfig) -> RunConfig:
        if isinstance(trial, optuna.trial.Trial) and not _enqueued(trial):
            raise NotACell(f"trial {trial.number} of design {design.name!r} was not enqueued")
        params = {name: trial.suggest_categorical(name, list(levels)) for name, levels in design.factors.items()}
        params["seed"] = trial.suggest_categorical("seed", list(design.seeds))
        return design_config(design, params, base)

    return space


def spec_json(design: Design) -> str:
    """The whole declaration as canonical JSON: stored with the study, compared on resume."""
    return json.dumps(dataclasses.asdict(design), sort_keys=True, default=list)


def describe(design: Design) -> str:
    """A few lines for `mnist-study design --list`."""
    n_cells = math.prod(len(v) for v in design.factors.values())
    factors = "; ".join(f"{k} in {list(v)}" for k, v in design.factors.items())
    stop = f", stop {design.stop_margin} epochs after the plateau" if design.stop_margin is not None else ""
    lines = [
        f"{design.name}: {design.question}",
        f"  {factors}; baseline overrides {design.baseline or 'none'}",
        f"  {n_cells} cells x {len(design.seeds)} seeds = {n_cells * len(design.seeds)} trials, "
        f"{design.epochs} epochs{stop}, {design.train_size} images (subset seed {design.data_seed})",
    ]
    for p in design.predictions:
        where = f" where {p.where}" if p.where else ""
        if len(p.compare) == 2:
            extra = f" {p.compare[0]!r} vs {p.compare[1]!r}"
        elif p.compare:  # u_shape: the interior level named in advance
            extra = f", {'bottom' if p.direction > 0 else 'top'} at {p.compare[0]!r}"
        else:
            extra = f" by {p.by}" if p.by else ""
        kind = "primary" if p.primary else "secondary"
        lines.append(
            f"  [{p.claim}] {p.statement}: {p.test} of {p.measure} over {p.factor}{extra}{where}, "
            f"direction {p.direction:+d}, min effect {p.min_effect:.2f} ({kind})"
        )
    return "\n".join(lines)
