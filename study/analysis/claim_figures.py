"""Per-claim figures in the article's style: training loss and accuracy against epochs, one line per
level of the compared factor, the median over seeds with an interquartile band.

As in Optuna's visualization module, the DATA of a figure (`claim_curve_bands`, a plain DataFrame)
is computed apart from its drawing (`draw_claim_curves`), so the numbers are tested without
rendering. The trials are the ones the claim's test uses (design_claims.design_trials and the
prediction's `where`), so a figure shows exactly the runs behind its row of the claims table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mnist_fc.trainer import Curves
from study.analysis.design_claims import design_trials, level_mask
from study.design_spec import Design, Prediction

METRICS = ("train_loss", "train_accuracy")  # the article's two panels; per epoch, so every step is seen
MAX_POINTS = 600  # epochs drawn per line (evenly spaced, always including the first two and the last)
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
DASHES = ("solid", "dash", "dot", "dashdot")
BAND_COLUMNS = ("level", "by_level", "epoch", "q25", "median", "q75", "n")


def _label(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _epochs_drawn(length: int) -> np.ndarray:
    if length <= MAX_POINTS:
        return np.arange(length)
    return np.unique(np.r_[0, 1, np.linspace(0, length - 1, MAX_POINTS).round().astype(int)])


def claim_curve_bands(
    design: Design,
    trials_frame: pd.DataFrame,
    curves: Mapping[int, Curves],
    *,
    factor: str,
    by: str | None = None,
    where: Mapping[str, Any] | None = None,
    metric: str = "train_loss",
) -> pd.DataFrame:
    """Median and quartiles over seeds of `metric`, per level of `factor` (and of `by`), per epoch.

    Epoch e is the value after e gradient steps (the trainer's pre-step values); a run that ended
    earlier (or diverged: NaN) no longer counts from there, and `n` says how many runs each point has.
    Columns: BAND_COLUMNS (by_level is "" without `by`). Levels keep the design's declared order."""
    trials = design_trials(design, trials_frame)
    for key, value in (where or {}).items():
        trials = trials[level_mask(trials, key, value)]
    by_levels: Sequence[Any] = design.factors[by] if by is not None else ("",)
    parts = []
    for level in design.factors[factor]:
        for by_level in by_levels:
            cell = trials[level_mask(trials, factor, level)]
            if by is not None:
                cell = cell[level_mask(cell, by, by_level)]
            series = [getattr(curves[int(n)], metric) for n in cell["number"] if int(n) in curves]
            series = [s for s in series if len(s)]
            if not series:
                continue
            width = max(len(s) for s in series)
            stack = np.full((len(series), width), np.nan)
            for i, s in enumerate(series):
                stack[i, : len(s)] = s
            idx = _epochs_drawn(width)
            cols = stack[:, idx]
            finite = np.isfinite(cols)
            q = np.full((3, idx.size), np.nan)
            ok = finite.any(axis=0)
            if ok.any():
                q[:, ok] = np.nanquantile(cols[:, ok], [0.25, 0.5, 0.75], axis=0)
            parts.append(
                pd.DataFrame(
                    {
                        "level": _label(level),
                        "by_level": _label(by_level),
                        "epoch": idx,
                        "q25": q[0],
                        "median": q[1],
                        "q75": q[2],
                        "n": finite.sum(axis=0),
                    }
                )
            )
    if not parts:
        return pd.DataFrame(columns=list(BAND_COLUMNS))
    return pd.concat(parts, ignore_index=True)


def draw_claim_curves(
    bands: Mapping[str, pd.DataFrame], *, title: str, factor: str, by: str | None = None
) -> go.Figure:
    """Two panels (one per metric in `bands`), a coloured median line and a shaded quartile band per level."""
    metrics = list(bands)
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[m.replace("_", " ") for m in metrics])
    for col, metric in enumerate(metrics, start=1):
        frame = bands[metric]
        levels = list(dict.fromkeys(frame["level"]))
        by_levels = list(dict.fromkeys(frame["by_level"]))
        for i, level in enumerate(levels):
            color = COLORS[i % len(COLORS)]
            for j, by_level in enumerate(by_levels):
                f = frame[(frame["level"] == level) & (frame["by_level"] == by_level)]
                if f.empty:
                    continue
                name = f"{factor}={level}" + (f", {by}={by_level}" if by is not None else "")
                band_x = np.r_[f["epoch"].to_numpy(), f["epoch"].to_numpy()[::-1]]
                band_y = np.r_[f["q75"].to_numpy(), f["q25"].to_numpy()[::-1]]
                fig.add_trace(
                    go.Scatter(
                        x=band_x,
                        y=band_y,
                        fill="toself",
                        fillcolor=color,
                        opacity=0.18,
                        line={"width": 0},
                        hoverinfo="skip",
                        legendgroup=name,
                        showlegend=False,
                        name=f"{name} IQR",
                    ),
                    row=1,
                    col=col,
                )
                fig.add_trace(
                    go.Scatter(
                        x=f["epoch"],
                        y=f["median"],
                        mode="lines",
                        line={"color": color, "dash": DASHES[j % len(DASHES)]},
                        legendgroup=name,
                        showlegend=col == 1,
                        name=name,
                        customdata=f["n"],
                        hovertemplate="epoch %{x}<br>median %{y:.4g}<br>runs %{customdata}<extra>" + name + "</extra>",
                    ),
                    row=1,
                    col=col,
                )
        fig.update_xaxes(title_text="epoch (full-batch gradient steps)", row=1, col=col)
    fig.update_layout(title=title, template="plotly_white", height=420, width=1000)
    return fig


def claim_figure(design: Design, trials_frame: pd.DataFrame, curves: Mapping[int, Curves], p: Prediction) -> go.Figure:
    """The figure of one prediction: its factor's levels (and `by`'s), restricted by its `where`."""
    bands = {
        m: claim_curve_bands(design, trials_frame, curves, factor=p.factor, by=p.by, where=p.where, metric=m)
        for m in METRICS
    }
    where = ", ".join(f"{k}={_label(v)}" for k, v in p.where.items())
    title = f"claim {p.claim}: {p.statement}" + (f" ({where})" if where else "") + " — median and IQR over seeds"
    return draw_claim_curves(bands, title=title, factor=p.factor, by=p.by)


def claim_figures(design: Design, trials_frame: pd.DataFrame, curves: Mapping[int, Curves]) -> dict[str, go.Figure]:
    """{f"claim_{claim}": figure} for every prediction of `design` (see `claim_figure`)."""
    return {f"claim_{p.claim}": claim_figure(design, trials_frame, curves, p) for p in design.predictions}
