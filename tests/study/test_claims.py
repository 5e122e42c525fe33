"""Claim statistics and verdicts on synthetic trials whose effects are planted (or absent) by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from study.analysis import claims as cl

RNG_SEED = 7  # fixed: alpha = 0.05 means a pure-noise claim is "supported" 5% of the time for SOME seed


def _noise(n: int, seed: int) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).normal(size=n))


def test_spearman_planted_reversed_absent_and_too_few() -> None:
    x = _noise(200, 1)
    assert cl.verdict(cl.spearman(x, x + _noise(200, 2)), +1) == cl.SUPPORTED
    assert cl.verdict(cl.spearman(x, -x + _noise(200, 2)), +1) == cl.CONTRADICTED
    assert cl.verdict(cl.spearman(x, _noise(200, 3)), +1) == cl.NOT_ENOUGH  # CI too wide to exclude an effect
    big = _noise(5000, 4)
    r = cl.spearman(big, _noise(5000, 5))
    assert abs(r.value) < cl.NEGLIGIBLE and cl.verdict(r, +1) == cl.CONTRADICTED  # effect excluded
    few = x.head(cl.MIN_N - 1)
    assert cl.verdict(cl.spearman(few, few), +1) == cl.NOT_ENOUGH


def test_spearman_ci_contains_the_estimate_and_handles_constant_input() -> None:
    x = _noise(100, 1)
    r = cl.spearman(x, x + _noise(100, 2))
    assert r.ci_low < r.value < r.ci_high and r.n == 100
    const = cl.spearman(x, pd.Series(np.ones(100)))
    assert np.isnan(const.value) and cl.verdict(const, +1) == cl.NOT_ENOUGH


def test_cliffs_delta_planted_shift_and_none() -> None:
    a, b = _noise(80, 1) + 1.0, _noise(80, 2)
    r = cl.cliffs_delta(a, b)
    assert 0.3 < r.value < 0.8 and r.ci_low < r.value < r.ci_high
    assert cl.verdict(r, +1) == cl.SUPPORTED and cl.verdict(r, -1) == cl.CONTRADICTED
    assert cl.verdict(cl.cliffs_delta(_noise(80, 3), b), +1) == cl.NOT_ENOUGH
    assert cl.cliffs_delta(pd.Series([1.0, 2.0]), pd.Series([0.0, 0.5])).value == 1.0  # all of a above all of b


def test_cliffs_delta_needs_min_n_per_group() -> None:
    r = cl.cliffs_delta(_noise(cl.MIN_N - 1, 1) + 5, _noise(200, 2))
    assert r.p_value < cl.ALPHA and cl.verdict(r, +1) == cl.NOT_ENOUGH


def test_rho_difference_planted_interaction() -> None:
    x1, x2 = _noise(150, 1), _noise(150, 2)
    r = cl.rho_difference(x1, x1 + 0.3 * _noise(150, 3), x2, _noise(150, 4))
    assert r.value > 0.5 and cl.verdict(r, +1) == cl.SUPPORTED
    same = cl.rho_difference(x1, x1 + _noise(150, 3), x2, x2 + _noise(150, 4))
    assert cl.verdict(same, +1) != cl.SUPPORTED


def test_kruskal_any_difference() -> None:
    groups = pd.Series(np.repeat(list("abcde"), 40))
    shift = groups.map({"a": 0, "b": 0, "c": 0, "d": 0, "e": 1.5})
    assert cl.verdict(cl.kruskal(_noise(200, 1) + shift, groups), 0) == cl.SUPPORTED
    assert cl.verdict(cl.kruskal(_noise(200, 1), groups), 0) == cl.NOT_ENOUGH


def synthetic_trials(n: int, *, planted: bool, seed: int = RNG_SEED) -> pd.DataFrame:
    """Trials with the columns the claims read; with planted=True every claim's effect is built in."""
    rng = np.random.default_rng(seed)
    k = 1.0 if planted else 0.0
    units = np.exp(rng.uniform(np.log(16), np.log(1024), n)).round()
    std = np.exp(rng.uniform(np.log(1e-3), np.log(1.0), n))
    mean = rng.uniform(-0.1, 0.1, n)
    lr = np.exp(rng.uniform(np.log(1e-3), np.log(10.0), n))
    bn = rng.random(n) < 0.5
    fan = rng.random(n) < 0.5
    norm = rng.choice(["article", "raw", "unit", "global", "per_pixel"], n)
    sat_l2 = expit(k * (np.where(fan, 0.0, np.log(units) - 4.0) + 1.5 * np.log(std) + 3.0) + rng.normal(0, 0.5, n))
    sat = expit(k * (np.where(fan, -3.0, 0.0) + 1.5 * np.log(std) + 2.0) + rng.normal(0, 0.5, n))
    small_lr = lr < cl.LR_SPLIT
    plateau = np.where(
        bn & planted,
        5.0,
        20 + k * (150 * sat + 20 * -np.log10(lr) + np.where(small_lr & ~fan, 0.3 * units, 0.0)),
    ) + rng.normal(0, 10, n)
    trouble = (np.abs(mean) > std) & (std >= cl.NARROW_STD) | (std < cl.NARROW_STD)
    value = 0.9 + k * (-0.3 * sat - 0.2 * trouble - 0.3 * (norm == "raw") + 0.08 * bn) + rng.normal(0, 0.05, n)
    oscillation = np.exp(k * np.log(lr) + rng.normal(0, 1, n))
    return pd.DataFrame(
        {
            "number": np.arange(n),
            "state": "COMPLETE",
            "value": value,
            "n_units_l1": units.astype(int),
            "init_std": std,
            "init_mean": mean,
            "lr": lr,
            "batchnorm": bn,
            "fan_in_scaling": fan,
            "normalization": norm,
            "saturation_init": sat,
            "saturation_init_l2": sat_l2,
            "plateau_epochs": plateau.clip(0).round(),
            "oscillation": oscillation,
        }
    )


def test_every_claim_supported_when_every_effect_is_planted() -> None:
    table = cl.evaluate_claims(synthetic_trials(1200, planted=True))
    assert list(table["id"]) == [c.id for c in cl.CLAIMS]
    assert table.set_index("id")["verdict"].to_dict() == {c.id: cl.SUPPORTED for c in cl.CLAIMS}


def test_no_claim_supported_on_pure_noise() -> None:
    table = cl.evaluate_claims(synthetic_trials(1200, planted=False))
    assert cl.SUPPORTED not in set(table["verdict"]), table[["id", "value", "p_value", "verdict"]]


def test_pruned_trials_are_left_out_and_tiny_studies_have_not_enough_data() -> None:
    df = synthetic_trials(1200, planted=True)
    df.loc[df.index[6:], "state"] = "PRUNED"
    table = cl.evaluate_claims(df)
    assert set(table["verdict"]) == {cl.NOT_ENOUGH}
    assert table["n"].max() <= 6


def test_markdown_table_has_one_row_per_claim_and_no_stray_pipes() -> None:
    md = cl.claims_markdown(cl.evaluate_claims(synthetic_trials(300, planted=True)))
    rows = md.strip().splitlines()
    assert len(rows) == 2 + len(cl.CLAIMS)
    assert all(r.count("|") == 9 for r in rows)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_measures_are_dropped(bad: float) -> None:
    x = _noise(100, 1)
    y = x.copy()
    y.iloc[:10] = bad
    assert cl.spearman(x, y).n == 90
