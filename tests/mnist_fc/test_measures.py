"""The article's per-run measures on curves and models whose answer is known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mnist_fc.config import ModelConfig
from mnist_fc.measures import (
    CHANCE_LOSS,
    PLATEAU_DELTA,
    SATURATION_Z,
    epochs_to_accuracy,
    oscillation,
    plateau_length,
    run_measures,
    saturated_fraction,
    saturation_at_init,
)
from mnist_fc.model import build_model


def test_plateau_ends_at_first_step_clearly_below_chance_level() -> None:
    # 2.5 at init, fast drop to chance level (the output bias learns the prior), flat, then learning.
    loss = [2.5, 2.31, 2.303, 2.302, 2.30, 2.25, CHANCE_LOSS - PLATEAU_DELTA - 1e-3, 1.0]
    p = plateau_length(loss)
    assert (p.epochs, p.censored) == (6, False)
    assert p.threshold == pytest.approx(CHANCE_LOSS - PLATEAU_DELTA)


def test_plateau_uses_initial_loss_when_it_starts_below_chance() -> None:
    p = plateau_length([1.5, 1.45, 1.39, 1.0])
    assert p.threshold == pytest.approx(1.5 - PLATEAU_DELTA)
    assert (p.epochs, p.censored) == (2, False)


def test_plateau_never_left_is_censored_at_epochs_run() -> None:
    p = plateau_length([2.31] * 40 + [float("nan")] * 3)
    assert (p.epochs, p.censored) == (43, True)


def test_oscillation_is_zero_for_a_straight_descent_and_grows_with_bouncing() -> None:
    smooth = np.linspace(2.0, 1.0, 100)
    bouncing = smooth + 0.05 * (-1.0) ** np.arange(100)
    assert oscillation(smooth) == pytest.approx(0.0, abs=1e-9)
    osc = oscillation(bouncing)
    # last 20 points: residual std 0.05 around a mean of ~1.1
    assert osc == pytest.approx(0.05 / smooth[-20:].mean(), rel=0.05)


def test_oscillation_undefined_for_diverged_or_short_curves() -> None:
    assert oscillation([1.0, 2.0, float("nan")] * 10) is None
    assert oscillation([1.0, 0.9, 0.8]) is None


def test_epochs_to_accuracy_first_evaluation_reaching_target() -> None:
    assert epochs_to_accuracy([10, 20, 30], [0.5, 0.91, 0.95], 0.9) == 20
    assert epochs_to_accuracy([10, 20, 30], [0.5, 0.91, 0.95], 0.97) is None


def test_saturated_fraction_counts_entries_beyond_threshold() -> None:
    z = torch.tensor([[0.0, SATURATION_Z + 0.1], [-SATURATION_Z - 1, 1.0]])
    assert saturated_fraction([z]) == 0.5
    assert saturated_fraction([z, torch.zeros(2, 2)]) == 0.25


def test_large_init_saturates_and_batchnorm_or_fan_in_scaling_does_not() -> None:
    x = torch.randn(256, 784) * 0.3
    big = ModelConfig(n_units_l1=200, n_units_l2=50, init_mean=0.0, init_std=1.0)
    small = ModelConfig(n_units_l1=200, n_units_l2=50, init_mean=0.0, init_std=0.01)
    sat_big = saturation_at_init(build_model(big, seed=0), x)
    assert sat_big[0] > 0.5  # std(w.x) = 1.0 * 0.3 * sqrt(784) = 8.4: most |z| > 4
    assert max(saturation_at_init(build_model(small, seed=0), x)) == 0.0
    bn = ModelConfig(**{**big.__dict__, "batchnorm": True})
    assert saturation_at_init(build_model(bn, seed=0), x)[0] < 0.01  # BN output ~ N(0, 1)
    scaled = ModelConfig(**{**big.__dict__, "init_scaling": "sqrt_fan_in"})
    assert saturation_at_init(build_model(scaled, seed=0), x)[0] < 0.01  # std(w.x) = 0.3


def test_run_measures_weights_layers_by_width() -> None:
    m = run_measures(
        train_loss=[2.4, 2.3, 1.0] + [0.9] * 10,
        eval_epochs=[10],
        val_accuracy=[0.92],
        saturation_by_layer=[1.0, 0.0],
        layer_sizes=(300, 100),
    )
    assert m.saturation_init == pytest.approx(0.75)
    assert (m.plateau_epochs, m.epochs_to_val90, m.epochs_to_val97) == (2, 10, None)
    assert m.oscillation is not None and math.isfinite(m.oscillation)
