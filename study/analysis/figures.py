"""The report's figures: each one's DATA is a plain function returning a DataFrame (testable without
rendering), and a separate `draw_*` function turns that frame into a plotly figure."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mnist_fc.trainer import Curves

# Buckets for grouping curves by a numeric factor: left-closed edges spanning the article space
# (the last bucket also holds its upper edge).
BUCKETS: dict[str, tuple[float, ...]] = {
    "init_std": (1e-3, 1e-2, 5e-2, 2e-1, 1.0),
    "n_units_l1": (16, 64, 256, 1024),
    "lr": (1e-3, 1e-2, 1e-1, 1.0, 10.0),
}
CURVE_FACTORS = ("init_std", "n_units_l1", "normalization", "lr", "batchnorm")
QUANTILES = (0.25, 0.5, 0.75)  # the band is the interquartile range around the median


def _edge(x: float) -> str:
    return f"{x:g}"


def bucket_labels(values: pd.Series, factor: str) -> pd.Series:
    """Bucket label of each value: numeric factors by BUCKETS edges, others by their own value."""
    if factor in BUCKETS:
        edges = BUCKETS[factor]
        labels = [f"{_edge(lo)}–{_edge(hi)}" for lo, hi in itertools.pairwise(edges)]
        bins = [*edges[:-1], edges[-1] * (1 + 1e-9)]
        return pd.cut(values.astype(float), bins=bins, right=False, labels=labels).astype(str)
    if factor == "batchnorm":
        return values.map({True: "BN on", False: "BN off"}).astype(str)
    return values.astype(str)


def _stack(series: list[list[float]]) -> np.ndarray:
    width = max((len(s) for s in series), default=0)
    out = np.full((len(series), width), np.nan)
    for i, s in enumerate(series):
        out[i, : len(s)] = s
    return out


def curve_bands(trials: pd.DataFrame, curves: dict[int, Curves], *, factor: str, metric: str) -> pd.DataFrame:
    """Median and interquartile band of a curve per bucket of `factor`, epoch by epoch.

    metric "train_loss" uses every epoch; "val_accuracy" uses the evaluation epochs.
    Columns: bucket, epoch, q25, median, q75, n (trials with a value at that epoch).
    """
    have = trials[trials["number"].isin(list(curves))]
    labels = bucket_labels(have[factor], factor)
    frames = []
    for label in sorted(labels.unique(), key=_bucket_order(factor)):
        numbers = have.loc[labels == label, "number"].astype(int)
        if metric == "train_loss":
            rows = [curves[n].train_loss for n in numbers]
            matrix = _stack(rows)
            epochs = np.arange(matrix.shape[1])
        else:
            rows = [curves[n].val_accuracy for n in numbers]
            matrix = _stack(rows)
            longest = max(numbers, key=lambda n: len(curves[n].eval_epochs))
            epochs = np.asarray(curves[longest].eval_epochs[: matrix.shape[1]])
        if matrix.size == 0:
            continue
        with warnings.catch_warnings():  # all-NaN columns (every trial stopped) are expected
            warnings.simplefilter("ignore", RuntimeWarning)
            q = np.nanquantile(matrix, QUANTILES, axis=0)
        frames.append(
            pd.DataFrame(
                {
                    "bucket": label,
                    "epoch": epochs,
                    "q25": q[0],
                    "median": q[1],
                    "q75": q[2],
                    "n": np.isfinite(matrix).sum(axis=0),
                }
            )
        )
    cols = ["bucket", "epoch", "q25", "median", "q75", "n"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def _bucket_order(factor: str):
    def key(label: str) -> tuple:
        if factor in BUCKETS:
            try:
                return (0, float(label.split("–")[0]))
            except ValueError:
                return (1, label)
        return (0, label)

    return key


def plateau_points(trials: pd.DataFrame, *, x: str) -> pd.DataFrame:
    """Plateau length vs `x` for trials without BatchNorm, with fan-in scaling and censoring marked."""
    d = trials[~trials["batchnorm"].astype(bool)]
    cols = ["number", x, "plateau_epochs", "plateau_censored", "fan_in_scaling"]
    out = d[cols].dropna(subset=[x, "plateau_epochs"]).reset_index(drop=True)
    out["fan_in_scaling"] = out["fan_in_scaling"].astype(bool)
    return out


def oscillation_points(trials: pd.DataFrame) -> pd.DataFrame:
    """Late-training oscillation vs learning rate (trials with a finite curve end)."""
    cols = ["number", "lr", "oscillation", "batchnorm"]
    out = trials[cols].dropna(subset=["lr", "oscillation"]).reset_index(drop=True)
    out["batchnorm"] = out["batchnorm"].astype(bool)
    return out


BN_MEASURES = {
    "value": "validation accuracy",
    "train_accuracy": "final training accuracy",
    "plateau_epochs": "plateau length (epochs)",
}


def bn_comparison(trials: pd.DataFrame) -> pd.DataFrame:
    """Long frame (batchnorm, measure, value) for BN on vs off."""
    d = trials.copy()
    d["batchnorm"] = d["batchnorm"].astype(bool).map({True: "BN on", False: "BN off"})
    long = d.melt(id_vars=["number", "batchnorm"], value_vars=list(BN_MEASURES), var_name="measure", value_name="v")
    long = long.rename(columns={"v": "value"})
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    return long.dropna(subset=["value"]).reset_index(drop=True)


def importances(study: optuna.Study, evaluator: optuna.importance.BaseImportanceEvaluator) -> pd.DataFrame:
    """Parameter importances (sum to 1) over COMPLETE trials, most important first."""
    imp = optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=True)
    return pd.DataFrame({"param": list(imp), "importance": [float(v) for v in imp.values()]})


# ---------------------------------------------------------------- drawing


_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def draw_curve_bands(loss: pd.DataFrame, acc: pd.DataFrame, *, factor: str) -> go.Figure:
    """Training loss (left) and validation accuracy (right): median line and IQR band per bucket."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "validation accuracy"))
    buckets = list(dict.fromkeys([*loss["bucket"], *acc["bucket"]]))
    for i, b in enumerate(buckets):
        color = _COLORS[i % len(_COLORS)]
        for col, frame in ((1, loss), (2, acc)):
            f = frame[frame["bucket"] == b]
            if f.empty:
                continue
            n = int(f["n"].max())
            fig.add_trace(
                go.Scatter(x=f["epoch"], y=f["q75"], line={"width": 0}, showlegend=False, hoverinfo="skip"),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=f["epoch"],
                    y=f["q25"],
                    fill="tonexty",
                    fillcolor=_rgba(color, 0.2),
                    line={"width": 0},
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=f["epoch"],
                    y=f["median"],
                    name=f"{b} (n={n})",
                    legendgroup=b,
                    showlegend=col == 1,
                    line={"color": color},
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(type="log", row=1, col=1)  # raw-pixel inputs start orders of magnitude above ln 10
    fig.update_layout(title=f"Learning curves by {factor}: median and interquartile band per bucket")
    return fig


def draw_plateau(points: pd.DataFrame, *, x: str) -> go.Figure:
    fig = go.Figure()
    for scaled, color in ((False, _COLORS[0]), (True, _COLORS[1])):
        for censored, symbol in ((False, "circle"), (True, "triangle-up-open")):
            f = points[(points["fan_in_scaling"] == scaled) & (points["plateau_censored"].astype(bool) == censored)]
            if f.empty:
                continue
            label = f"fan-in scaling {'on' if scaled else 'off'}" + (" (never left: ≥)" if censored else "")
            fig.add_trace(
                go.Scatter(
                    x=f[x],
                    y=f["plateau_epochs"],
                    mode="markers",
                    name=label,
                    marker={"color": color, "symbol": symbol, "size": 7},
                    text=[f"trial {n}" for n in f["number"]],
                )
            )
    fig.update_xaxes(type="log", title_text=x)
    fig.update_yaxes(title_text="plateau length (epochs)")
    fig.update_layout(title=f"Initial plateau vs {x} (no BatchNorm)")
    return fig


def draw_oscillation(points: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for bn, color in ((False, _COLORS[0]), (True, _COLORS[2])):
        f = points[points["batchnorm"] == bn]
        if f.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=f["lr"],
                y=f["oscillation"],
                mode="markers",
                name=f"BN {'on' if bn else 'off'}",
                marker={"color": color, "size": 7},
                text=[f"trial {n}" for n in f["number"]],
            )
        )
    fig.update_xaxes(type="log", title_text="learning rate")
    fig.update_yaxes(type="log", title_text="late-training oscillation (detrended relative std)")
    fig.update_layout(title="Oscillation of the training loss late in training vs learning rate")
    return fig


def draw_bn(long: pd.DataFrame) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(BN_MEASURES), subplot_titles=list(BN_MEASURES.values()))
    for col, measure in enumerate(BN_MEASURES, start=1):
        for bn, color in (("BN off", _COLORS[0]), ("BN on", _COLORS[2])):
            f = long[(long["measure"] == measure) & (long["batchnorm"] == bn)]
            fig.add_trace(
                go.Box(y=f["value"], name=f"{bn} (n={len(f)})", marker_color=color, boxpoints="all", showlegend=False),
                row=1,
                col=col,
            )
    fig.update_layout(title="BatchNorm on vs off (COMPLETE trials)")
    return fig


EVALUATOR_NOTES = {
    "fANOVA": "fANOVA: share of the variance of validation accuracy over the WHOLE space explained by each "
    "parameter (random-forest functional ANOVA)",
    "PED-ANOVA": "PED-ANOVA: how differently each parameter is distributed among the top 10% of trials "
    "than among all trials (what it takes to be among the best)",
}


def draw_importances(frame: pd.DataFrame, *, evaluator: str) -> go.Figure:
    f = frame.iloc[::-1]
    fig = go.Figure(go.Bar(x=f["importance"], y=f["param"], orientation="h", marker_color=_COLORS[0]))
    fig.update_xaxes(title_text="importance (normalised to sum 1)")
    fig.update_layout(title=f"Parameter importances — {evaluator}<br><sup>{EVALUATOR_NOTES[evaluator]}</sup>")
    return fig


def top_params(frame: pd.DataFrame, k: int = 2) -> list[str]:
    return [str(p) for p in frame["param"].head(k)]
