"""Figure data computed without drawing: buckets, median/IQR bands, scatter subsets."""

from __future__ import annotations

import numpy as np
import optuna
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


def test_top_numeric_params_skip_booleans_and_categories() -> None:
    frame = pd.DataFrame({"param": ["batchnorm", "lr", "normalization", "init_std", "n_units_l1"]})
    assert fg.top_numeric_params(frame, {"lr", "init_std", "n_units_l1"}) == ["lr", "init_std"]
    assert fg.top_numeric_params(frame, {"lr"}) == ["lr"]  # fewer than two: the report draws no contour


def _study_with_reports() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    dist = {"lr": optuna.distributions.FloatDistribution(1e-3, 10, log=True)}
    for i, values in enumerate([[0.1, 0.5], [0.3, 0.7], [0.2]]):  # the third trial stopped after one report
        study.add_trial(
            optuna.trial.create_trial(
                params={"lr": 10.0 ** (i - 2)},
                distributions=dist,
                value=values[-1],
                intermediate_values={10 * (s + 1): v for s, v in enumerate(values)},
            )
        )
    return study


def test_intermediate_bands_are_quantiles_over_trials_per_step() -> None:
    bands = fg.intermediate_bands(_study_with_reports()).set_index("step")
    assert bands.loc[10, "q50"] == pytest.approx(0.2) and bands.loc[10, "n"] == 3
    assert bands.loc[20, "q50"] == pytest.approx(0.6) and bands.loc[20, "n"] == 2
    assert bands.loc[10, "q10"] == pytest.approx(0.12)  # numpy's linear interpolation of 0.1, 0.2, 0.3
    assert fg.log_params(_study_with_reports()) == {"lr"}


def test_slice_points_are_long_over_complete_trials() -> None:
    trials = pd.DataFrame(
        {
            "number": [0, 1, 2],
            "state": ["COMPLETE", "PRUNED", "COMPLETE"],
            "value": [0.5, None, 0.7],
            "lr": [0.1, 1.0, 10.0],
            "batchnorm": [True, False, False],
        }
    )
    pts = fg.slice_points(trials, ["lr", "batchnorm", "absent"])
    assert len(pts) == 4 and set(pts["param"]) == {"lr", "batchnorm"}
    assert list(pts.loc[pts["param"] == "lr", "x"]) == [0.1, 10.0]


def test_wall_time_points_use_the_clock_and_keep_the_best_so_far() -> None:
    t0 = pd.Timestamp("2026-01-01 10:00:00")
    trials = pd.DataFrame(
        {
            "number": [0, 1, 2, 3],
            "state": ["COMPLETE", "COMPLETE", "RUNNING", "COMPLETE"],
            "value": [0.5, 0.4, None, 0.9],
            "datetime_start": [t0, t0, t0 + pd.Timedelta(minutes=1), t0 + pd.Timedelta(minutes=2)],
            # trial 1 finished first (parallel workers): points come in completion order
            "datetime_complete": [
                t0 + pd.Timedelta(minutes=3),
                t0 + pd.Timedelta(minutes=1),
                None,
                t0 + pd.Timedelta(minutes=6),
            ],
        }
    )
    pts = fg.wall_time_points(trials)
    assert list(pts["number"]) == [1, 0, 3]
    assert list(pts["elapsed_min"]) == [1.0, 3.0, 6.0]
    assert list(pts["best_so_far"]) == [0.4, 0.5, 0.9]


def test_wall_time_leaves_out_pruned_and_failed_trials() -> None:
    """Optuna stores a pruned trial's last intermediate value as its value: no finished run reached it."""
    t0 = pd.Timestamp("2026-01-01 10:00:00")
    trials = pd.DataFrame(
        {
            "number": [0, 1, 2],
            "state": ["COMPLETE", "PRUNED", "FAIL"],
            "value": [0.5, 0.95, None],
            "datetime_start": [t0] * 3,
            "datetime_complete": [t0 + pd.Timedelta(minutes=m) for m in (1, 2, 3)],
        }
    )
    pts = fg.wall_time_points(trials)
    assert list(pts["number"]) == [0] and list(pts["best_so_far"]) == [0.5]


def test_the_oscillation_axis_is_linear_when_a_trial_scores_zero() -> None:
    """The current measure is exactly 0 for a loss that only falls: a log axis would hide those trials."""
    points = pd.DataFrame({"number": [0, 1], "lr": [0.1, 1.0], "oscillation": [0.0, 0.3], "batchnorm": [False, True]})
    assert fg.draw_oscillation(points).layout.yaxis.type == "linear"
    points["oscillation"] = [0.01, 0.3]
    assert fg.draw_oscillation(points).layout.yaxis.type == "log"


def test_study_names_are_drawn_literally_and_cut_in_legends() -> None:
    """Plotly read names as rich text (`a<br>b` drawn as "ab", `R&amp;D` as "R&D") and a 400-character name
    squeezed the plot area to a sliver."""
    assert fg.label("a<br>b") == "a&lt;br&gt;b" and fg.label("R&amp;D") == "R&amp;amp;D"
    long = fg.label("x" * 400)
    assert len(long) == fg.LABEL_CHARS and long.endswith("…")
    frame = pd.DataFrame({"state": ["COMPLETE"], "value": [0.5]})
    fig = fg.draw_value_by_study({"<b>bold</b>": frame})
    assert fig.data[0].name == "&lt;b&gt;bold&lt;/b&gt; (n=1)"


def test_a_lone_group_still_names_itself_and_the_slice_has_a_colour_bar() -> None:
    points = pd.DataFrame(
        {"init_std": [0.1], "plateau_epochs": [300], "plateau_censored": [True], "fan_in_scaling": [True],
         "number": [0]}
    )  # fmt: skip
    fig = fg.draw_plateau(points, x="init_std")
    assert len(fig.data) == 1 and fig.data[0].showlegend is True and "never left" in fig.data[0].name
    slice_points = pd.DataFrame({"param": ["lr", "lr", "n_units_l1"], "x": [0.1, 1.0, 30], "value": [0.5, 0.6, 0.7],
                                 "number": [0, 5, 9]})  # fmt: skip
    fig = fg.draw_slice(slice_points, log={"lr"})
    bars = [t for t in fig.data if t.marker.showscale]
    assert len(bars) == 1 and bars[0].marker.colorbar.title.text == "trial"
    assert {(t.marker.cmin, t.marker.cmax) for t in fig.data} == {(0.0, 9.0)}  # one scale over all panels
