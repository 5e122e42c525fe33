"""Figure data computed without drawing: buckets, median/IQR bands, scatter subsets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mnist_fc.trainer import Curves
from study.analysis import figures as fg


def test_bucket_labels_cover_the_article_space() -> None:
    labels = fg.bucket_labels(pd.Series([16, 63, 64, 1024]), "n_units_l1")
    assert list(labels) == ["16–64", "16–64", "64–256", "256–1024"]
    assert list(fg.bucket_labels(pd.Series([1e-3, 10.0]), "lr")) == ["0.001–0.01", "1–10"]
    assert list(fg.bucket_labels(pd.Series([True, False]), "batchnorm")) == ["BN on", "BN off"]


def _trials() -> tuple[pd.DataFrame, dict[int, Curves]]:
    trials = pd.DataFrame({"number": [0, 1, 2, 3], "batchnorm": [True, True, True, False]})
    curves = {
        n: Curves(train_loss=[float(n), float(n) / 2], eval_epochs=[10, 20], val_accuracy=[0.1 * n, 0.2 * n])
        for n in range(4)
    }
    curves[2] = Curves(train_loss=[2.0], eval_epochs=[10], val_accuracy=[0.2])  # stopped after 1 epoch
    return trials, curves


def test_curve_bands_median_and_quartiles_per_bucket_and_epoch() -> None:
    trials, curves = _trials()
    bands = fg.curve_bands(trials, curves, factor="batchnorm", metric="train_loss")
    on = bands[bands["bucket"] == "BN on"].set_index("epoch")
    assert on.loc[0, "median"] == 1.0 and on.loc[0, "n"] == 3  # losses 0, 1, 2
    assert on.loc[1, "median"] == pytest.approx(0.25) and on.loc[1, "n"] == 2  # 0, 0.5 (trial 2 stopped)
    assert on.loc[0, "q25"] == 0.5 and on.loc[0, "q75"] == 1.5
    off = bands[bands["bucket"] == "BN off"]
    assert list(off["median"]) == [3.0, 1.5]


def test_curve_bands_of_validation_accuracy_use_evaluation_epochs() -> None:
    trials, curves = _trials()
    bands = fg.curve_bands(trials, curves, factor="batchnorm", metric="val_accuracy")
    assert sorted(set(bands["epoch"])) == [10, 20]
    on = bands[bands["bucket"] == "BN on"].set_index("epoch")
    assert on.loc[10, "median"] == pytest.approx(0.1)


def test_plateau_points_leave_out_batchnorm_and_oscillation_points_need_a_value() -> None:
    df = pd.DataFrame(
        {
            "number": [0, 1, 2],
            "batchnorm": [False, True, False],
            "init_std": [0.1, 0.2, 0.3],
            "plateau_epochs": [10, 20, 30],
            "plateau_censored": [False, False, True],
            "fan_in_scaling": [True, False, False],
            "lr": [0.1, 1.0, 10.0],
            "oscillation": [0.01, np.nan, 0.3],
        }
    )
    pts = fg.plateau_points(df, x="init_std")
    assert list(pts["number"]) == [0, 2] and list(pts["fan_in_scaling"]) == [True, False]
    assert list(fg.oscillation_points(df)["number"]) == [0, 2]


def test_bn_comparison_long_format() -> None:
    df = pd.DataFrame(
        {"number": [0, 1], "batchnorm": [True, False], "value": [0.9, 0.5], "train_accuracy": [0.95, 0.5]}
    )
    df["plateau_epochs"] = [3, None]
    long = fg.bn_comparison(df)
    assert len(long) == 5  # 2 + 2 + 1 (a missing plateau is dropped)
    assert long[(long["batchnorm"] == "BN on") & (long["measure"] == "value")]["value"].item() == 0.9
