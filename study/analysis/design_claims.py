"""The claims table of designed studies: each pre-registered Prediction judged on its design's trials.

A design's study holds enqueued cells: every trial's params are the design's factor levels plus
`seed`; its measures are user attributes (mnist_fc.measures, version 2). For each Prediction this
module picks the trials (its `where` applied), groups them by the levels it compares, runs its test
(study.analysis.stats), and applies the one verdict rule after a Holm correction across all
primary predictions of all designs. Nothing here is written by hand: the docs' table is
`claims_markdown(claims_table(...))`.

Which trials count: COMPLETE ones and PRUNED ones that carry measures (a diverged run ends PRUNED;
dropping it would hide exactly the large-learning-rate cells the article talks about). Each measure
uses the trials where it is defined. Durations are censored, never dropped: a plateau that was never
left is censored at the epochs run, and a DIVERGED run that never left it is censored at the
design's full `epochs` (a NaN network does not recover); likewise for the epochs to 90/97%.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mnist_fc.measures import MEASURE_NAMES, curve_measures
from mnist_fc.trainer import Curves
from study.analysis import stats as st
from study.analysis.claims import fmt_p, fmt_signed
from study.analysis.stats import Sample, StatResult
from study.design_spec import TESTS, Design, Prediction

# measure -> (column of the duration, column flagging censoring or None: censored when the value is missing)
DURATIONS: dict[str, str | None] = {
    "plateau_epochs": "plateau_censored",
    "epochs_to_val90": None,
    "epochs_to_val97": None,
}
RESULT_MEASURES = ("value", "val_accuracy", "test_accuracy", "train_accuracy", "train_loss", "val_loss")
KNOWN_MEASURES = frozenset((*MEASURE_NAMES, *RESULT_MEASURES))
# Measures that a run stopped `stop_margin` epochs after leaving the plateau still gets right.
EARLY_STOP_SAFE = frozenset(
    ("plateau_epochs", "first_step_jump", "saturation_init", "saturation_init_l1", "saturation_init_l2")
)
USED_STATES = ("COMPLETE", "PRUNED")

COLUMNS = (
    "design",
    "claim",
    "statement",
    "measure",
    "test",
    "factor",
    "levels",
    "where",
    "direction",
    "min_effect",
    "primary",
    "n",
    "effect_name",
    "effect",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "verdict",
    "note",
)


def check_prediction(design: Design, p: Prediction) -> None:
    """Raise ValueError if `p` cannot be evaluated on `design` (for the designs' own tests)."""
    where = f"design {design.name!r}, claim {p.claim!r}"
    if p.test not in TESTS:
        raise ValueError(f"{where}: unknown test {p.test!r} (one of {TESTS})")
    if p.measure not in KNOWN_MEASURES:
        raise ValueError(f"{where}: unknown measure {p.measure!r}")
    if p.factor not in design.factors:
        raise ValueError(f"{where}: factor {p.factor!r} is not one of the design's factors")
    levels = design.factors[p.factor]
    if p.direction not in (-1, 1) or not p.min_effect >= 0:
        raise ValueError(f"{where}: direction must be +1 or -1 and min_effect >= 0")
    if p.test in ("logrank", "mannwhitney"):
        if len(p.compare) != 2 or not all(_in(c, levels) for c in p.compare):
            raise ValueError(f"{where}: {p.test} needs compare=(a, b), two levels of {p.factor!r}")
        if p.test == "logrank" and p.measure not in DURATIONS:
            raise ValueError(f"{where}: logrank needs a duration measure ({sorted(DURATIONS)})")
    if p.test in ("trend", "u_shape") and len(levels) < (3 if p.test == "u_shape" else 2):
        raise ValueError(f"{where}: {p.test} needs more levels of {p.factor!r}")
    if p.test == "u_shape" and p.compare and (len(p.compare) != 1 or not _in(p.compare[0], levels[1:-1])):
        raise ValueError(f"{where}: u_shape compare may only name one interior level")
    if p.test == "interaction":
        if p.by is None or p.by not in design.factors or p.by == p.factor:
            raise ValueError(f"{where}: interaction needs `by`, another factor of the design")
        by_levels = p.compare or design.factors[p.by][:2]
        if len(by_levels) != 2 or not all(_in(c, design.factors[p.by]) for c in by_levels):
            raise ValueError(f"{where}: interaction compares two levels of {p.by!r} (compare=(a, b))")
    for key, value in p.where.items():
        if key in (p.factor, p.by):
            raise ValueError(f"{where}: `where` fixes the compared factor {key!r}")
        if key not in design.factors or not _in(value, design.factors[key]):
            raise ValueError(f"{where}: `where` must name a level of one of the design's factors ({key!r})")
    if design.stop_margin is not None and p.measure not in EARLY_STOP_SAFE:
        raise ValueError(f"{where}: runs stop early in this design, so {p.measure!r} would be biased")


def _same(value: Any, level: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if isinstance(level, bool | np.bool_) or isinstance(value, bool | np.bool_):
        both = isinstance(level, bool | np.bool_ | int | np.integer) and isinstance(
            value, bool | np.bool_ | int | np.integer
        )
        return both and bool(value) == bool(level)
    if isinstance(level, int | float) and isinstance(value, int | float | np.integer | np.floating):
        return math.isclose(float(value), float(level), rel_tol=1e-9, abs_tol=1e-12)
    return value == level


def _in(value: Any, levels: Sequence[Any]) -> bool:
    return any(_same(value, lv) for lv in levels)


def level_mask(frame: pd.DataFrame, column: str, level: Any) -> pd.Series:
    """Rows whose `column` equals `level` (floats compared with a relative tolerance of 1e-9)."""
    if column not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame[column].map(lambda v: _same(v, level)).astype(bool)


def design_trials(design: Design, frame: pd.DataFrame) -> pd.DataFrame:
    """The trials of a design's study that count (see the module docstring)."""
    needed = [*design.factors, "seed"]
    if frame.empty or any(c not in frame.columns for c in needed):
        return frame.iloc[0:0]
    used = frame["state"].isin(USED_STATES) & frame[needed].notna().all(axis=1)
    if "plateau_epochs" in frame.columns:
        used &= frame["plateau_epochs"].notna()  # a trial without measures (failed before they were stored)
    return frame[used].reset_index(drop=True)


def measure_sample(design: Design, trials: pd.DataFrame, measure: str) -> Sample:
    """The measure of `trials` as a Sample, censored where it is a duration that did not end."""
    if measure not in trials.columns:
        return Sample.of([])
    if measure not in DURATIONS:
        return Sample.of(pd.to_numeric(trials[measure], errors="coerce").astype(float))
    flag = DURATIONS[measure]
    value = pd.to_numeric(trials[measure], errors="coerce").astype(float)
    if flag is None:  # epochs to a target: missing = never reached, censored at the epochs run
        event = value.notna()
        run_col = "epochs_run" if "epochs_run" in trials.columns else "epochs"
        run = pd.to_numeric(trials[run_col], errors="coerce").astype(float)
        value = value.where(event, run)
    else:
        event = ~trials[flag].astype(bool)
    diverged = trials["diverged"].fillna(False).astype(bool) if "diverged" in trials.columns else False
    value = value.where(~(diverged & ~event), float(design.epochs))
    return Sample.of(value.to_numpy(), event.to_numpy())


def _groups(design: Design, trials: pd.DataFrame, p: Prediction, factor: str, levels: Sequence[Any]) -> list[Sample]:
    return [measure_sample(design, trials[level_mask(trials, factor, lv)], p.measure) for lv in levels]


def run_test(design: Design, trials: pd.DataFrame, p: Prediction) -> tuple[StatResult, str]:
    """(the test's result, the levels compared in words) for one prediction on a design's trials."""
    for key, value in p.where.items():
        trials = trials[level_mask(trials, key, value)]
    levels = design.factors[p.factor]
    if p.test in ("logrank", "mannwhitney"):
        a, b = _groups(design, trials, p, p.factor, p.compare)
        result = st.logrank_test(a, b) if p.test == "logrank" else st.cliffs_delta_test(a, b)
        return result, f"{p.factor}: {p.compare[0]!r} vs {p.compare[1]!r}"
    if p.test == "trend":
        return st.trend_test(_groups(design, trials, p, p.factor, levels)), f"{p.factor}: {_fmt_levels(levels)}"
    if p.test == "u_shape":
        interior = next(i for i, lv in enumerate(levels) if _same(p.compare[0], lv)) if p.compare else None
        groups = _groups(design, trials, p, p.factor, levels)
        labels = [f"{p.factor}={lv!r}" for lv in levels]  # the level's value: "#2" read as the second level listed
        result = st.u_shape_test(groups, shape=p.direction, interior=interior, labels=labels)
        return result, f"{p.factor}: {_fmt_levels(levels)}"
    if p.test == "interaction":
        assert p.by is not None
        by_a, by_b = p.compare or design.factors[p.by][:2]
        first = _groups(design, trials[level_mask(trials, p.by, by_a)], p, p.factor, levels)
        second = _groups(design, trials[level_mask(trials, p.by, by_b)], p, p.factor, levels)
        words = f"{p.factor}: {_fmt_levels(levels)}; trend at {p.by}={by_a!r} minus at {p.by}={by_b!r}"
        return st.interaction_test(first, second), words
    raise ValueError(f"unknown test {p.test!r}")


def runs_per_level(design: Design, p: Prediction) -> int:
    """Runs behind one level of the compared factor: seeds x the cells of the factors it pools over."""
    pooled = [f for f in design.factors if f not in (p.factor, p.by, *p.where)]
    return len(design.seeds) * math.prod(len(design.factors[f]) for f in pooled)


def min_attainable_p(design: Design, p: Prediction) -> float:
    """The smallest p the prediction's test can give with the design's runs (before Holm): exact
    two-group tests cannot go below 2 / C(2n, n) with n runs per level (3 seeds: 0.1, never
    significant; 5: 0.0079; 6: 0.0022), and the U-shape multiplies that by its interior candidates.
    Trend and interaction tests (asymptotic, many runs) have no practical floor: 0.0."""
    n = runs_per_level(design, p)
    floor = 2.0 / math.comb(2 * n, n)
    if p.test in ("logrank", "mannwhitney"):
        return min(1.0, floor)
    if p.test == "u_shape":
        candidates = 1 if p.compare else len(design.factors[p.factor]) - 2
        return min(1.0, floor * candidates)
    return 0.0


def attainable_p_table(designs: Sequence[Design]) -> pd.DataFrame:
    """Per prediction, its runs per level and smallest attainable p, beside the Holm bound that the
    smallest p of the family must beat (ALPHA / number of primary predictions): sizing the seeds."""
    primary = sum(p.primary for d in designs for p in d.predictions)
    rows = [
        {
            "design": d.name,
            "claim": p.claim,
            "test": p.test,
            "runs_per_level": runs_per_level(d, p),
            "min_p": min_attainable_p(d, p),
            "holm_first_bound": st.ALPHA / max(primary, 1),
        }
        for d in designs
        for p in d.predictions
    ]
    return pd.DataFrame(rows)


def _fmt_levels(levels: Sequence[Any]) -> str:
    return ", ".join(f"{lv:g}" if isinstance(lv, float) else str(lv) for lv in levels)


def _row(design: Design, p: Prediction, result: StatResult, levels: str) -> dict[str, Any]:
    pooled = [f for f in design.factors if f not in (p.factor, p.by, *p.where)]
    note = "; ".join(x for x in (result.note, f"pooled over {', '.join(pooled)}" if pooled else "") if x)
    return {
        "design": design.name,
        "claim": p.claim,
        "statement": p.statement,
        "measure": p.measure,
        "test": result.test,
        "factor": p.factor,
        "levels": levels,
        "where": ", ".join(f"{k}={v!r}" for k, v in p.where.items()),
        "direction": p.direction,
        "min_effect": p.min_effect,
        "primary": p.primary,
        "n": result.n,
        "effect_name": result.effect_name,
        "effect": result.effect,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "p_value": result.p_value,
        "p_holm": float("nan"),
        "verdict": "",
        "note": note,
    }


def _judge(rows: pd.DataFrame) -> pd.DataFrame:
    """Holm across the primary rows (secondary rows keep their raw p), then the verdict of each row."""
    rows = rows.copy()
    primary = rows["primary"].astype(bool)
    rows["p_holm"] = rows["p_value"].astype(float)
    if primary.any():
        rows.loc[primary, "p_holm"] = st.holm(rows.loc[primary, "p_value"].astype(float).to_numpy())
    rows["verdict"] = [
        st.verdict(
            StatResult(r.test, r.effect_name, r.effect, r.ci_low, r.ci_high, r.p_value, r.n),
            p_adjusted=r.p_holm,
            direction=r.direction,
            min_effect=r.min_effect,
        )
        for r in rows.itertuples(index=False)
    ]
    return rows


def _rows(design: Design, trials_frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    trials = design_trials(design, trials_frame if trials_frame is not None else pd.DataFrame())
    rows = []
    for p in design.predictions:
        check_prediction(design, p)
        result, levels = run_test(design, trials, p)
        if trials_frame is None:
            nan = float("nan")
            result = StatResult(result.test, result.effect_name, nan, nan, nan, nan, 0, "design not run")
        rows.append(_row(design, p, result, levels))
    return rows


def evaluate_design(design: Design, trials_frame: pd.DataFrame) -> pd.DataFrame:
    """One row per Prediction of `design` (columns: COLUMNS), Holm within this design only; use
    `claims_table` for the shipped table (Holm across every design)."""
    return _judge(pd.DataFrame(_rows(design, trials_frame), columns=list(COLUMNS)))


def claims_table(designs: Sequence[Design], frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every prediction of every design; `frames` maps design name -> its study's trials_frame.
    A design with no frame gets rows with verdict "no data" (still in the Holm family)."""
    rows = [r for d in designs for r in _rows(d, frames.get(d.name))]
    return _judge(pd.DataFrame(rows, columns=list(COLUMNS)))


def claims_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown (the docs paste it; a test can check it is what the report computes)."""
    lines = [
        "| # | the article says | measure · test · levels | predicted | effect [95% CI] | p | p Holm | n | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples(index=False):
        ci = f" [{fmt_signed(r.ci_low)}, {fmt_signed(r.ci_high)}]" if math.isfinite(r.ci_low) else ""
        sign = ">" if r.direction > 0 else "<"
        bound = f"{'+' if r.direction > 0 else '-'}{r.min_effect:g}"
        predicted = f"{r.effect_name} {sign}= {bound}"
        where = f" ({r.where})" if r.where else ""
        primary = "" if r.primary else " (secondary: p not adjusted)"
        note = f"<br>{r.note}" if r.note else ""
        lines.append(
            f"| {r.claim} | {r.statement} | {r.measure} · {r.test} · {r.levels}{where}{primary} | {predicted} | "
            f"{fmt_signed(r.effect)}{ci} | {fmt_p(r.p_value)} | {fmt_p(r.p_holm)} | {r.n} | **{r.verdict}**{note} |"
        )
    return "\n".join(lines) + "\n"


def claims_csv(table: pd.DataFrame) -> str:
    return table.to_csv(index=False)


def recompute_curve_measures(frame: pd.DataFrame, curves: Mapping[int, Curves]) -> pd.DataFrame:
    """A copy of `frame` whose curve measures are recomputed (version 2) from the stored curves for
    the trials stored before version 2 (e.g. the shipped `reference` study; saturation is kept)."""
    out = frame.copy()
    old = out["measures_version"].isna() if "measures_version" in out.columns else pd.Series(True, index=out.index)
    for i in out.index[old]:
        c = curves.get(int(out.at[i, "number"]))
        if c is None:
            continue
        for key, value in curve_measures(
            train_loss=c.train_loss, eval_epochs=c.eval_epochs, val_accuracy=c.val_accuracy
        ).items():
            if key not in out.columns:
                out[key] = None
            out.at[i, key] = value
    return out
