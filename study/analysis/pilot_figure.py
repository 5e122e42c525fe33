"""The figure that compares long validation-only runs (the accuracy pilots and their ablations): validation
accuracy against epochs, one line per run, with each run's final value in the legend.

The data (`pilot_curve_points`, a plain DataFrame) is computed apart from the drawing (`draw_pilot_curves`)
so the numbers are tested without rendering. The accuracy axis starts at `floor` (the first checks sit far
below the last ones and would flatten the differences that matter, a few hundredths of a percent).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

POINT_COLUMNS = ("run", "epoch", "val_accuracy")


def pilot_curve_points(curves_by_run: Mapping[str, Mapping[str, list[Any]]]) -> pd.DataFrame:
    """Long table (run, epoch, val_accuracy) of every run's validation checks, runs in the given order;
    non-finite checks (a diverged run) are dropped."""
    frames = []
    for run, curves in curves_by_run.items():
        acc = np.asarray(curves.get("val_accuracy", []), dtype=float)
        epochs = np.asarray(curves.get("eval_epochs", []), dtype=int)[: len(acc)]
        frames.append(pd.DataFrame({"run": run, "epoch": epochs, "val_accuracy": acc[: len(epochs)]}))
    if not frames:
        return pd.DataFrame(columns=list(POINT_COLUMNS))
    points = pd.concat(frames, ignore_index=True)
    return points[np.isfinite(points["val_accuracy"])].reset_index(drop=True)[list(POINT_COLUMNS)]


def final_values(points: pd.DataFrame) -> dict[str, float]:
    """Each run's last validation accuracy (its result), in the runs' order."""
    last = points.groupby("run", sort=False).tail(1)
    return dict(zip(last["run"], last["val_accuracy"].astype(float), strict=True))


def draw_pilot_curves(points: pd.DataFrame, *, title: str, floor: float = 0.99) -> go.Figure:
    """Validation accuracy (%) against epochs, one line per run, legend "run: final%"."""
    fig = go.Figure()
    finals = final_values(points)
    for run, part in points.groupby("run", sort=False):
        fig.add_trace(
            go.Scatter(
                x=part["epoch"],
                y=100 * part["val_accuracy"],
                mode="lines+markers",
                marker={"size": 4},
                name=f"{run}: {100 * finals[str(run)]:.2f}%",
            )
        )
    top = 100 * float(points["val_accuracy"].max()) if len(points) else 100.0
    fig.update_layout(
        title=title,
        xaxis_title="epoch",
        yaxis_title="validation accuracy (%)",
        yaxis_range=[100 * floor, min(100.0, top + 0.05)],
        template="plotly_white",
        legend={"x": 0.99, "y": 0.02, "xanchor": "right", "yanchor": "bottom"},
    )
    return fig
