"""The article's per-run measures on curves and models whose answer is known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mnist_fc.config import ModelConfig
from mnist_fc.measures import (
    CHANCE_LOSS,
    MEASURE_NAMES,
    MEASURES_VERSION,
    OSCILLATION_TAIL,
    PLATEAU_DELTA,
    SATURATION_Z,
    curve_measures,
    epochs_to_accuracy,
    first_step_jump,
    loss_up_fraction,
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


def _smooth_bent(n: int = 500) -> np.ndarray:
    """Exponential decay to a floor: strongly curved, never rising (the old detrended std scored it high)."""
    return 0.05 + 2.25 * np.exp(-np.arange(n) / 60.0)


def test_oscillation_is_zero_for_straight_and_bent_descents() -> None:
    assert oscillation(np.linspace(2.0, 1.0, 100)) == 0.0
    assert oscillation(_smooth_bent()) == 0.0
    assert loss_up_fraction(_smooth_bent()) == 0.0


def test_oscillation_of_a_bouncing_curve() -> None:
    n = 200
    trend = np.linspace(2.0, 1.0, n)  # falls 1/199 per epoch
    bouncing = trend + 0.05 * (-1.0) ** np.arange(n)  # steps alternate -0.105, +0.095 (approx.)
    step = 1.0 / (n - 1)
    up, down = 0.1 - step, 0.1 + step
    tail = round(n * OSCILLATION_TAIL)  # 40 points, 39 steps: 19 or 20 rises
    osc = oscillation(bouncing)
    assert osc == pytest.approx(up / (up + down), rel=0.05)  # ~0.47: rises almost as much as it falls
    assert loss_up_fraction(bouncing) == pytest.approx(0.5, abs=1.0 / (tail - 1))


def test_oscillation_of_flat_rising_and_round_off_tails() -> None:
    assert oscillation([2.3] * 50) == 0.0  # stuck on the plateau: no movement, no oscillation
    assert oscillation(np.linspace(1.0, 2.0, 50)) == 1.0
    rng = np.random.default_rng(0)
    converged = 1e-3 * (1 + 1e-7 * rng.standard_normal(100))  # float round-off around a converged loss
    assert oscillation(converged) == 0.0 and loss_up_fraction(converged) == 0.0


def test_oscillation_grows_with_bounce_size() -> None:
    trend = np.linspace(2.0, 1.0, 200)
    values = [oscillation(trend + a * (-1.0) ** np.arange(200)) for a in (0.0, 0.001, 0.01, 0.1)]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] > 0.45


def test_oscillation_ignores_the_plateau_and_drop_before_the_tail() -> None:
    loss = np.r_[np.full(300, 2.303), 2.303 * np.exp(-np.arange(200) / 20.0)]  # plateau, then a smooth drop
    assert oscillation(loss) == 0.0


def test_oscillation_undefined_for_diverged_or_short_curves() -> None:
    assert oscillation([1.0, 2.0, float("nan")] * 10) is None
    assert oscillation([1.0, 0.9, 0.8]) is None
    assert loss_up_fraction([1.0, float("inf")] * 10) is None


def test_first_step_jump() -> None:
    assert first_step_jump([2.4, 3.9, 3.9]) == pytest.approx(1.5)  # too large a step: the loss jumps up
    assert first_step_jump([2.4, 2.3]) == pytest.approx(-0.1)
    assert first_step_jump([2.4]) is None
    assert first_step_jump([2.4, float("nan")]) is None


def test_plateau_then_drop_and_censored_plateau() -> None:
    loss = np.r_[np.full(120, 2.31), np.linspace(2.3, 0.5, 80)]
    p = plateau_length(loss)
    threshold = CHANCE_LOSS - PLATEAU_DELTA
    assert not p.censored and p.epochs == 120 + int(np.flatnonzero(np.linspace(2.3, 0.5, 80) < threshold)[0])
    p = plateau_length(np.full(400, 2.31))
    assert (p.epochs, p.censored) == (400, True)


def test_curve_measures_of_a_diverged_run() -> None:
    m = curve_measures(train_loss=[2.4, 9.0, float("nan")], eval_epochs=[], val_accuracy=[])
    assert m["plateau_censored"] and m["plateau_epochs"] == 3 and m["epochs_run"] == 3
    assert m["oscillation"] is None and m["epochs_to_val90"] is None
    assert m["first_step_jump"] == pytest.approx(6.6)
    assert m["measures_version"] == MEASURES_VERSION


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


def test_every_measure_is_a_stored_field() -> None:
    m = run_measures(
        train_loss=list(_smooth_bent(50)),
        eval_epochs=[50],
        val_accuracy=[0.5],
        saturation_by_layer=[0.0, 0.0],
        layer_sizes=(10, 10),
    )
    assert set(m.to_dict()) == set(MEASURE_NAMES)
    assert {"first_step_jump", "loss_up_fraction", "epochs_run", "measures_version"} <= set(MEASURE_NAMES)
    assert m.epochs_run == 50 and m.oscillation == 0.0


def test_an_accuracy_read_back_from_float32_still_reaches_its_target() -> None:
    """Curves are stored as float32: 0.9 comes back as 0.89999998, and a recomputed measure moved late."""
    import numpy as np

    from mnist_fc.measures import epochs_to_accuracy

    stored = [float(np.float32(a)) for a in (0.85, 0.9, 0.95)]
    assert stored[1] < 0.9
    assert epochs_to_accuracy([10, 20, 30], stored, 0.9) == 20
    assert epochs_to_accuracy([10, 20, 30], [0.85, 0.8999, 0.95], 0.9) == 30  # one image short is short
