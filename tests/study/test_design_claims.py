"""The design claims table on synthetic design studies whose effects are planted (or absent) by construction."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from mnist_fc.trainer import Curves
from study.analysis import design_claims as dc
from study.analysis import stats as st
from study.analysis.frames import trials_frame
from study.design_spec import Design, Prediction

LRS = (0.03, 0.1, 1.0, 3.0, 10.0, 30.0)
EPOCHS = 400


def _lr_design(**kw) -> Design:
    preds = (
        Prediction(
            "5a", "too large an lr: the loss does not move at first", "plateau_epochs", "u_shape", "lr", +1, 0.3
        ),
        Prediction("5a-jump", "too large an lr: the first step jumps up", "first_step_jump", "trend", "lr", +1, 0.3),
        Prediction("5b", "too large an lr oscillates late", "oscillation", "mannwhitney", "lr", +1, 0.3, (3.0, 1.0)),
        Prediction(
            "5c", "lr 1 leaves the plateau sooner than lr 0.1", "plateau_epochs", "logrank", "lr", -1, 0.5, (1.0, 0.1)
        ),
    )
    return Design(
        name="lr",
        question="learning rate",
        factors={"lr": LRS},
        predictions=preds,
        seeds=(0, 1, 2, 3, 4),
        epochs=EPOCHS,
        **kw,
    )


def _row(number: int, lr: float, seed: int, plateau: float, censored: bool, **measures) -> dict:
    return {
        "number": number,
        "state": "COMPLETE",
        "value": 0.9,
        "lr": lr,
        "seed": seed,
        "plateau_epochs": plateau,
        "plateau_censored": censored,
        "diverged": False,
        "epochs_run": EPOCHS,
        "measures_version": 2,
        **measures,
    }


def lr_frame(*, planted: bool, seeds: int = 5) -> pd.DataFrame:
    """The issue's lr sweep (planted): plateau 400+ at 0.03, ~395 at 0.1, ~42 at 1, ~17 at 3, 400+ at 10 and 30;
    first-step jump rising with lr; oscillation high at lr 3. Unplanted: the same noise, no dependence on lr."""
    rng = np.random.default_rng(1)
    typical = {0.03: None, 0.1: 395.0, 1.0: 42.0, 3.0: 17.0, 10.0: None, 30.0: None}
    rows = []
    for i, lr in enumerate(LRS):
        for s in range(seeds):
            level = typical[lr] if planted else 60.0
            censored = level is None
            plateau = EPOCHS if censored else float(np.clip(level + rng.normal(0, 3), 1, EPOCHS - 1))
            jump = (0.3 * i if planted else 0.0) + rng.normal(0, 0.1)
            osc = (0.45 if planted and lr == 3.0 else 0.05) + abs(rng.normal(0, 0.02))
            rows.append(_row(len(rows), lr, s, plateau, censored, first_step_jump=jump, oscillation=osc))
    return pd.DataFrame(rows)


def test_planted_lr_effects_are_supported() -> None:
    table = dc.evaluate_design(_lr_design(), lr_frame(planted=True))
    assert list(table.columns) == list(dc.COLUMNS)
    verdicts = dict(zip(table["claim"], table["verdict"], strict=True))
    assert verdicts == {"5a": st.SUPPORTED, "5a-jump": st.SUPPORTED, "5b": st.SUPPORTED, "5c": st.SUPPORTED}
    u = table.set_index("claim").loc["5a"]
    assert u["n"] == 30 and u["effect"] == 1.0 and u["test"] == "U-shape"
    c = table.set_index("claim").loc["5c"]
    assert c["effect"] == pytest.approx(math.log(42 / 395), abs=0.2) and c["test"] == "log-rank"


def test_absent_effects_are_never_supported() -> None:
    table = dc.evaluate_design(_lr_design(), lr_frame(planted=False))
    assert not (table["verdict"] == st.SUPPORTED).any(), table[["claim", "effect", "p_holm", "verdict"]]


def test_holm_spans_the_primary_predictions_of_all_designs_and_skips_secondary() -> None:
    other = Design(
        name="other",
        question="q",
        factors={"lr": LRS},
        predictions=(
            Prediction("x", "secondary", "oscillation", "trend", "lr", +1, 0.1, primary=False),
            Prediction("y", "primary", "first_step_jump", "trend", "lr", +1, 0.1),
        ),
    )
    frame = lr_frame(planted=True)
    table = dc.claims_table([_lr_design(), other], {"lr": frame, "other": frame})
    primary = table[table["primary"]]
    assert len(primary) == 5
    assert primary["p_holm"].to_numpy() == pytest.approx(st.holm(primary["p_value"].to_numpy()), nan_ok=True)
    sec = table.set_index("claim").loc["x"]
    assert sec["p_holm"] == sec["p_value"]
    assert (table["p_holm"] >= table["p_value"]).all()


def test_a_design_that_was_not_run_has_no_data_rows_in_the_holm_family() -> None:
    table = dc.claims_table([_lr_design()], {})
    assert (table["verdict"] == st.NO_DATA).all() and (table["n"] == 0).all()
    assert table["note"].str.contains("not run").all()


def test_diverged_runs_are_censored_at_the_design_epochs_and_failed_trials_are_left_out() -> None:
    frame = lr_frame(planted=True)
    frame.loc[0, ["diverged", "plateau_epochs", "state", "value"]] = [True, 37, "PRUNED", None]
    frame.loc[1, "state"] = "FAIL"
    frame.loc[2, "seed"] = None  # not one of the design's enqueued cells
    design = _lr_design()
    trials = dc.design_trials(design, frame)
    assert len(trials) == len(frame) - 2 and 0 in set(trials["number"])
    sample = dc.measure_sample(design, trials[trials["number"] == 0], "plateau_epochs")
    assert sample.value.tolist() == [EPOCHS] and sample.event.tolist() == [False]


def test_epochs_to_target_never_reached_is_censored_at_epochs_run() -> None:
    frame = pd.DataFrame(
        [_row(0, 1.0, 0, 10, False, epochs_to_val90=120), _row(1, 1.0, 1, 10, False, epochs_to_val90=None)]
    )
    s = dc.measure_sample(_lr_design(), frame, "epochs_to_val90")
    assert s.value.tolist() == [120, EPOCHS] and s.event.tolist() == [True, False]


def test_where_restricts_and_interaction_compares_trends() -> None:
    widths, lrs = (16, 64, 256, 1024), (0.01, 1.0)
    rng = np.random.default_rng(2)
    rows = []
    for w_i, w in enumerate(widths):
        for lr in lrs:
            for s in range(4):
                plateau = (50 + 80 * w_i if lr == 0.01 else 20) + rng.normal(0, 5)
                rows.append(_row(len(rows), lr, s, plateau, False, n_units_l1=w, batchnorm=False))
    design = Design(
        name="width",
        question="q",
        factors={"n_units_l1": widths, "lr": lrs},
        predictions=(
            Prediction(
                "1",
                "more units, longer plateau when lr is small",
                "plateau_epochs",
                "interaction",
                "n_units_l1",
                +1,
                0.3,
                by="lr",
            ),
            Prediction("1-small", "at small lr", "plateau_epochs", "trend", "n_units_l1", +1, 0.3, where={"lr": 0.01}),
            Prediction("1-large", "at large lr", "plateau_epochs", "trend", "n_units_l1", +1, 0.3, where={"lr": 1.0}),
        ),
    )
    table = dc.evaluate_design(design, pd.DataFrame(rows)).set_index("claim")
    assert table.loc["1", "verdict"] == st.SUPPORTED and table.loc["1", "n"] == 32
    assert table.loc["1-small", "verdict"] == st.SUPPORTED and table.loc["1-small", "n"] == 16
    assert table.loc["1-large", "verdict"] != st.SUPPORTED
    assert "pooled" not in table.loc["1-small", "note"]


@pytest.mark.parametrize(
    ("prediction", "message"),
    [
        (Prediction("e", "s", "plateau_epochs", "anova", "lr", 1, 0.1), "unknown test"),
        (Prediction("e", "s", "made_up", "trend", "lr", 1, 0.1), "unknown measure"),
        (Prediction("e", "s", "plateau_epochs", "trend", "width", 1, 0.1), "not one of the design's factors"),
        (Prediction("e", "s", "plateau_epochs", "logrank", "lr", 1, 0.1, (1.0, 99.0)), "two levels"),
        (Prediction("e", "s", "oscillation", "logrank", "lr", 1, 0.1, (1.0, 0.1)), "duration"),
        (Prediction("e", "s", "plateau_epochs", "interaction", "lr", 1, 0.1), "needs `by`"),
        (Prediction("e", "s", "plateau_epochs", "u_shape", "lr", 1, 0.1, (0.03,)), "interior"),
        (Prediction("e", "s", "plateau_epochs", "trend", "lr", 0, 0.1), "direction"),
        (Prediction("e", "s", "plateau_epochs", "trend", "lr", 1, 0.1, where={"batchnorm": False}), "where"),
    ],
)
def test_check_prediction_rejects_what_cannot_be_evaluated(prediction: Prediction, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dc.check_prediction(_lr_design(), prediction)


def test_early_stopped_designs_only_allow_measures_a_stop_cannot_change() -> None:
    design = _lr_design(stop_margin=50)
    dc.check_prediction(design, design.predictions[0])  # plateau: fine
    with pytest.raises(ValueError, match="stop early"):
        dc.check_prediction(design, design.predictions[2])  # oscillation over the tail: biased


def test_markdown_and_csv_render_every_row() -> None:
    table = dc.evaluate_design(_lr_design(), lr_frame(planted=True))
    md = dc.claims_markdown(table)
    assert md.count("\n") == 2 + len(table)
    for claim, verdict in zip(table["claim"], table["verdict"], strict=True):
        assert f"| {claim} |" in md and f"**{verdict}**" in md
    back = pd.read_csv(__import__("io").StringIO(dc.claims_csv(table)))
    assert back["verdict"].tolist() == table["verdict"].tolist()


def test_reads_a_real_optuna_study_through_trials_frame(tmp_path: Path) -> None:
    """Enqueued-style trials (params = level + seed, measures as user attributes) in a real SQLite study."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="design-lr", direction="maximize")
    dists = {
        "lr": optuna.distributions.CategoricalDistribution(LRS),
        "seed": optuna.distributions.IntDistribution(0, 4),
    }
    for r in lr_frame(planted=True).to_dict("records"):
        attrs = {
            k: r[k]
            for k in ("plateau_epochs", "plateau_censored", "first_step_jump", "oscillation", "diverged", "epochs_run")
        }
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in attrs.items()}
        study.add_trial(
            optuna.trial.create_trial(
                params={"lr": r["lr"], "seed": r["seed"]}, distributions=dists, value=0.9, user_attrs=attrs
            )
        )
    frame = trials_frame(study)
    table = dc.evaluate_design(_lr_design(), frame)
    assert (table["verdict"] == st.SUPPORTED).all() and (table["n"] > 0).all()


def test_recompute_curve_measures_replaces_version_1_oscillation() -> None:
    bent = list(0.05 + 2.25 * np.exp(-np.arange(100) / 20.0))
    frame = pd.DataFrame({"number": [0, 1], "oscillation": [0.3, 0.4], "measures_version": [None, 2]})
    out = dc.recompute_curve_measures(frame, {0: Curves(train_loss=bent), 1: Curves(train_loss=bent)})
    assert out.loc[0, "oscillation"] == 0.0 and out.loc[0, "measures_version"] == 2
    assert out.loc[1, "oscillation"] == 0.4  # already version 2: kept
    assert frame.loc[0, "oscillation"] == 0.3  # the input is not modified


def test_levels_match_floats_with_tolerance_and_bools_strictly() -> None:
    frame = pd.DataFrame({"lr": [0.1, 0.1 + 1e-12, 0.2, None], "bn": [True, False, np.bool_(True), None]})
    assert dc.level_mask(frame, "lr", 0.1).tolist() == [True, True, False, False]
    assert dc.level_mask(frame, "bn", True).tolist() == [True, False, True, False]
    assert dc.level_mask(frame, "bn", "True").tolist() == [False] * 4
    assert not dc.level_mask(frame, "absent", 1).any()


def test_two_level_bool_factor_with_censored_plateaus() -> None:
    rows = [_row(i, 0.1, i, 400, True, batchnorm=False) for i in range(5)]
    rows += [_row(5 + i, 0.1, i, 10 + i, False, batchnorm=True) for i in range(5)]
    design = Design(
        name="bn",
        question="q",
        factors={"batchnorm": (True, False)},
        predictions=(
            Prediction("6a", "BN: faster", "plateau_epochs", "mannwhitney", "batchnorm", -1, 0.3, (True, False)),
        ),
    )
    row = dc.evaluate_design(design, pd.DataFrame(rows)).iloc[0]
    assert row["test"] == "Gehan" and row["effect"] == -1.0 and row["verdict"] == st.SUPPORTED


def test_min_attainable_p_says_when_seeds_are_too_few() -> None:
    design = _lr_design()  # 5 seeds, one factor with 6 levels
    u, _, _, lr = design.predictions
    assert dc.min_attainable_p(design, lr) == pytest.approx(2 / 252)
    assert dc.min_attainable_p(design, u) == pytest.approx(4 * 2 / 252)  # 4 interior candidates
    three = Design(name="t", question="q", factors={"lr": LRS}, predictions=design.predictions, seeds=(0, 1, 2))
    assert dc.min_attainable_p(three, lr) == pytest.approx(0.1)  # 3 vs 3: never significant
    table = dc.attainable_p_table([design])
    assert table["holm_first_bound"].iloc[0] == pytest.approx(0.05 / 4)
    assert table.set_index("claim").loc["5c", "runs_per_level"] == 5


def test_reference_study_recomputed_oscillation_is_zero_exactly_where_the_loss_never_rises(tmp_path: Path) -> None:
    """The review's complaint on real data: version 1 ranked never-rising tails by lr; version 2 gives them 0."""
    import shutil

    import sqlalchemy as sa

    from study.analysis.frames import complete
    from study.curves import CurveStore
    from study.storage import load_study, open_storage

    copy = tmp_path / "studies.db"
    shutil.copyfile(Path(__file__).resolve().parents[2] / "studies.db", copy)
    url = f"sqlite:///{copy}"
    frame = complete(trials_frame(load_study(open_storage(url, create=False), "reference")))
    assert frame["measures_version"].isna().all()  # stored before version 2
    new = dc.recompute_curve_measures(frame, CurveStore(sa.create_engine(url)).load("reference"))
    assert (new["measures_version"] == 2).all()
    never_up = new["loss_up_fraction"].astype(float) == 0
    assert never_up.sum() > 100
    assert (new.loc[never_up, "oscillation"] == 0).all()
    assert (frame.loc[never_up, "oscillation"].astype(float) > 0).all()  # version 1 did not see it
    assert new["oscillation"].astype(float).between(0, 1).all()
