"""The figure of one long run (the article's 50,000-epoch run, the article-space accuracy run): loss and
accuracy against epochs, training per epoch and the held-out (or held-in) check every K epochs, in the
article's two panels, with the epoch at which training accuracy first passed a mark.

As elsewhere in `study.analysis`, the figure's DATA (`run_curve_points`, a plain DataFrame) is computed
apart from its drawing (`draw_run_curves`), so the numbers are tested without rendering. Epochs are
drawn on a log axis: a 50,000-epoch run spends its first hundreds on the plateau and its last tens of
thousands creeping up, and a linear axis hides one or the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

MAX_POINTS = 800  # training epochs drawn (log-spaced, always the first and the last)
POINT_COLUMNS = ("series", "metric", "epoch", "value")


def first_epoch_above(values: list[float], mark: float) -> int | None:
    """1-based epoch at which `values` (one per epoch) first exceeds `mark`; None if never."""
    return next((i + 1 for i, v in enumerate(values) if v > mark), None)


def _drawn(length: int) -> np.ndarray:
    if length <= MAX_POINTS:
        return np.arange(length)
    return np.unique(np.r_[0, np.geomspace(1, length, MAX_POINTS).round().astype(int) - 1, length - 1])


def run_curve_points(curves: Mapping[str, list[Any]], *, held_out: str) -> pd.DataFrame:
    """Long table (series, metric, epoch, value): "train" per epoch (thinned to MAX_POINTS on a log
    grid), `held_out` (e.g. "validation") at every checked epoch. Non-finite values are dropped."""
    frames = []
    n = len(curves["train_loss"])
    idx = _drawn(n)
    for metric in ("loss", "accuracy"):
        train = np.asarray(curves[f"train_{metric}"], dtype=float)[idx]
        frames.append(pd.DataFrame({"series": "train", "metric": metric, "epoch": idx + 1, "value": train}))
        checked = np.asarray(curves.get(f"val_{metric}", []), dtype=float)
        epochs = np.asarray(curves.get("eval_epochs", []), dtype=int)[: len(checked)]
        frames.append(pd.DataFrame({"series": held_out, "metric": metric, "epoch": epochs, "value": checked}))
    points = pd.concat(frames, ignore_index=True)
    return points[np.isfinite(points["value"])].reset_index(drop=True)[list(POINT_COLUMNS)]


def draw_run_curves(
    points: pd.DataFrame, *, title: str, mark: float | None = None, mark_epoch: int | None = None
) -> go.Figure:
    """Two panels (log loss, accuracy) against epochs on a log axis; a dotted line at `mark_epoch`."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.09)
    colors = {"train": "#1f77b4"}
    for col, metric in enumerate(("loss", "accuracy"), start=1):
        for series, part in points[points["metric"] == metric].groupby("series", sort=False):
            color = colors.get(str(series), "#d62728")
            fig.add_trace(
                go.Scatter(
                    x=part["epoch"],
                    y=part["value"],
                    mode="lines",
                    name=str(series),
                    legendgroup=str(series),
                    showlegend=col == 1,
                    line={"color": color, "width": 2 if series == "train" else 1.5},
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(type="log", title_text="epoch", row=1, col=col)
    # log loss: a large-lr run's first steps reach ~100 nats, its last ~0.001; both stay readable
    fig.update_yaxes(title_text="cross-entropy (log)", type="log", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", tickformat=".0%", row=1, col=2)
    if mark is not None:
        fig.add_hline(y=mark, line={"dash": "dot", "color": "#7f7f7f", "width": 1}, row=1, col=2)
    if mark_epoch is not None:
        for col in (1, 2):
            fig.add_vline(x=mark_epoch, line={"dash": "dot", "color": "#2ca02c", "width": 1}, row=1, col=col)
    fig.update_layout(title=title, template="plotly_white", height=420, legend={"orientation": "h", "y": -0.2})
    return fig
