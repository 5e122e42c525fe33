"""A study as a table: one row per trial with params, value, state, user attributes and measures.

Everything downstream (claims, figures, `mnist-study export`) reads this one frame, so the report
and an exported file can never disagree about a trial.
"""

from __future__ import annotations

import json

import optuna
import pandas as pd

from mnist_fc.measures import MEASURE_NAMES
from mnist_fc.trainer import Curves

BASE_COLUMNS = ("number", "state", "value", "datetime_start", "datetime_complete", "duration_s")
RESERVED = frozenset({*BASE_COLUMNS, "config_json"})  # our columns: a param or attribute of that name is prefixed
NUMERIC_COLUMNS = ("value", "duration_s", *(m for m in MEASURE_NAMES if m != "plateau_censored"))


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial. Params keep their Optuna names (one named like a column of ours, e.g. `value`,
    gets a `param_` prefix); user attributes keep theirs (one that clashes with a param or such a column
    gets an `attr_` prefix); the stored RunConfig becomes `config_json`."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        duration = t.duration.total_seconds() if t.duration is not None else None
        row: dict = {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "datetime_start": t.datetime_start,
            "datetime_complete": t.datetime_complete,
            "duration_s": duration,
        }
        for key, value in t.params.items():  # a param named like a column of ours must not overwrite it
            row[f"param_{key}" if key in RESERVED else key] = value
        attrs = dict(t.user_attrs)
        config = attrs.pop("config", None)
        for key, value in attrs.items():
            row[f"attr_{key}" if key in row or key in RESERVED else key] = value
        row["config_json"] = json.dumps(config, sort_keys=True) if config is not None else None
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in (*BASE_COLUMNS, *MEASURE_NAMES):  # an empty or measure-less study still has the columns
        if col not in df.columns:
            df[col] = None
    for col in NUMERIC_COLUMNS:  # an all-missing measure (no trial reached 90%) is a float column, not
        df[col] = pd.to_numeric(df[col], errors="coerce")  # Parquet's type `null`
    return df.sort_values("number", ignore_index=True)


def complete(df: pd.DataFrame) -> pd.DataFrame:
    """The COMPLETE trials: the ones with a validation accuracy (diverged trials end PRUNED)."""
    return df[df["state"] == "COMPLETE"].reset_index(drop=True)


def attach_curves(df: pd.DataFrame, curves: dict[int, Curves]) -> dict[int, Curves]:
    """The stored curves of the trials in `df` (trials without curves are left out)."""
    return {int(n): curves[int(n)] for n in df["number"] if int(n) in curves}
