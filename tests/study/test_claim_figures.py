"""Per-claim figure data on curves whose medians and quartiles are known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mnist_fc.trainer import Curves
from study.analysis import claim_figures as cf
from study.design_spec import Design, Prediction


def _design() -> Design:
    return Design(
        name="w",
        question="q",
        factors={"n_units_l1": (16, 256), "lr": (0.1, 1.0)},
        predictions=(
            Prediction(
                "1", "wider: longer plateau", "plateau_epochs", "trend", "n_units_l1", 1, 0.3, where={"lr": 0.1}
            ),
            Prediction("1x", "especially at small lr", "plateau_epochs", "interaction", "n_units_l1", 1, 0.3, by="lr"),
        ),
    )


def _frame_and_curves(epochs: int = 10) -> tuple[pd.DataFrame, dict[int, Curves]]:
    rows, curves = [], {}
    for w in (16, 256):
        for lr in (0.1, 1.0):
            for seed in range(3):
                n = len(rows)
                rows.append(
                    {"number": n, "state": "COMPLETE", "n_units_l1": w, "lr": lr, "seed": seed, "plateau_epochs": 3}
                )
                base = 1.0 + seed  # seeds at 1, 2, 3: median 2, quartiles 1.5 and 2.5
                loss = [base * (w / 16) * (lr * 10)] * epochs
                curves[n] = Curves(train_loss=loss, train_accuracy=[0.1 * seed] * epochs)
    return pd.DataFrame(rows), curves


def test_bands_are_median_and_quartiles_over_seeds_per_level() -> None:
    frame, curves = _frame_and_curves()
    bands = cf.claim_curve_bands(_design(), frame, curves, factor="n_units_l1", where={"lr": 0.1})
    assert list(bands.columns) == list(cf.BAND_COLUMNS)
    assert list(dict.fromkeys(bands["level"])) == ["16", "256"]
    small = bands[bands["level"] == "16"]
    assert small["median"].to_numpy() == pytest.approx(2.0)
    assert small["q25"].to_numpy() == pytest.approx(1.5) and small["q75"].to_numpy() == pytest.approx(2.5)
    assert (small["n"] == 3).all() and small["epoch"].tolist() == list(range(10))
    assert bands[bands["level"] == "256"]["median"].to_numpy() == pytest.approx(32.0)


def test_bands_by_a_second_factor_and_runs_of_unequal_length() -> None:
    frame, curves = _frame_and_curves()
    curves[0] = Curves(train_loss=[1.0] * 4 + [float("nan")], train_accuracy=[0.0] * 5)  # diverged at epoch 4
    bands = cf.claim_curve_bands(_design(), frame, curves, factor="n_units_l1", by="lr")
    assert set(zip(bands["level"], bands["by_level"], strict=True)) == {
        ("16", "0.1"),
        ("16", "1"),
        ("256", "0.1"),
        ("256", "1"),
    }
    cell = bands[(bands["level"] == "16") & (bands["by_level"] == "0.1")].set_index("epoch")
    assert cell.loc[0, "n"] == 3 and cell.loc[4, "n"] == 2 and cell.loc[9, "n"] == 2
    assert cell.loc[9, "median"] == pytest.approx(2.5)  # seeds 2 and 3 remain


def test_long_runs_are_thinned_but_keep_the_first_step_and_the_end() -> None:
    frame, curves = _frame_and_curves(epochs=5000)
    bands = cf.claim_curve_bands(_design(), frame, curves, factor="n_units_l1", where={"lr": 0.1})
    epochs = bands[bands["level"] == "16"]["epoch"].to_numpy()
    assert epochs.size <= cf.MAX_POINTS + 2 and {0, 1, 4999} <= set(epochs.tolist())
    assert np.all(np.diff(epochs) > 0)


def test_claim_figures_one_per_prediction_with_both_panels() -> None:
    frame, curves = _frame_and_curves()
    figs = cf.claim_figures(_design(), frame, curves)
    assert set(figs) == {"claim_1", "claim_1x"}
    medians = [t for t in figs["claim_1"].data if t.mode == "lines"]
    assert len(medians) == 2 * 2  # 2 levels x 2 panels
    assert len([t for t in figs["claim_1x"].data if t.mode == "lines"]) == 4 * 2
    assert "claim 1:" in figs["claim_1"].layout.title.text


def test_no_curves_gives_empty_bands_and_a_figure() -> None:
    frame, _ = _frame_and_curves()
    assert cf.claim_curve_bands(_design(), frame, {}, factor="n_units_l1").empty
    assert cf.claim_figures(_design(), frame, {})["claim_1"] is not None
