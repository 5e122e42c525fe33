"""The report's figures: each one's DATA is a plain function returning a DataFrame (testable without
rendering), and a separate `draw_*` function turns that frame into a plotly figure."""

from __future__ import annotations

import html
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
BAND_ALPHA = 0.08  # fill opacity of a band: several overlapping bands stay readable
SLICE_COLS = 3  # the slice plot wraps its parameters into rows of this many panels
PANEL_HEIGHT = 320  # px per row of wrapped panels


OUTSIDE = "outside the space"  # bucket of a stored value beyond every edge (a study changed by hand)


def _edge(x: float) -> str:
    return f"{x:g}"


def bucket_labels(values: pd.Series, factor: str) -> pd.Series:
    """Bucket label of each value: numeric factors by BUCKETS edges, others by their own value."""
    if factor in BUCKETS:
        edges = BUCKETS[factor]
        labels = [f"{_edge(lo)}–{_edge(hi)}" for lo, hi in itertools.pairwise(edges)]
        bins = [*edges[:-1], edges[-1] * (1 + 1e-9)]
        cut = pd.cut(values.astype(float), bins=bins, right=False, labels=labels)
        return cut.astype(object).where(cut.notna(), OUTSIDE).astype(str)  # a value the space cannot give
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
    """Parameter importances (sum to 1) over COMPLETE trials, most important first; empty when every complete
    trial has the same value (nets stuck on the plateau all score one class's share): nothing to explain,
    and fANOVA stops with "zero total variance"."""
    values = {t.value for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
    if len(values) < 2:
        return pd.DataFrame({"param": pd.Series([], dtype=str), "importance": pd.Series([], dtype=float)})
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
            edge = {"width": 0.6, "color": _rgba(color, 0.5), "dash": "dot"}  # overlapping bands stay legible
            fig.add_trace(
                go.Scatter(
                    x=f["epoch"], y=f["q75"], mode="lines", line=edge, showlegend=False, hoverinfo="skip", legendgroup=b
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=f["epoch"],
                    y=f["q25"],
                    mode="lines",
                    fill="tonexty",
                    fillcolor=_rgba(color, BAND_ALPHA),
                    line=edge,
                    legendgroup=b,
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
                    showlegend=True,  # also when it is the only trace: which group is drawn is the point
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
                showlegend=True,
                marker={"color": color, "size": 7},
                text=[f"trial {n}" for n in f["number"]],
            )
        )
    fig.update_xaxes(type="log", title_text="learning rate")
    # A unitless ratio: powers of ten, not SI prefixes (µ, n, p). A log axis cannot draw 0, which the
    # current measure (U/(U+D), exactly 0 for a loss that only fell) gives most trials: linear then.
    log = bool((points["oscillation"] > 0).all()) if len(points) else True
    fig.update_yaxes(
        type="log" if log else "linear", title_text="late-training oscillation (unitless)", exponentformat="power"
    )
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
    if frame.empty:
        fig.add_annotation(
            text="no importances: fewer than two distinct values among the complete trials",
            showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
        )  # fmt: skip
    return fig


def top_params(frame: pd.DataFrame, k: int = 2) -> list[str]:
    return [str(p) for p in frame["param"].head(k)]


def numeric_params(study: optuna.Study) -> set[str]:
    """Params with a numeric (int/float) distribution in any trial: booleans and categoricals are left out."""
    out = set()
    for t in study.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            if isinstance(dist, (optuna.distributions.FloatDistribution, optuna.distributions.IntDistribution)):
                out.add(name)
    return out


def log_params(study: optuna.Study) -> set[str]:
    return {
        name
        for t in study.get_trials(deepcopy=False)
        for name, dist in t.distributions.items()
        if getattr(dist, "log", False)
    }


def top_numeric_params(frame: pd.DataFrame, numeric: set[str], k: int = 2) -> list[str]:
    """The k most important params that are numeric (a contour of a boolean is two stripes)."""
    return [str(p) for p in frame["param"] if p in numeric][:k]


def slice_points(trials: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """Long frame (param, x, value, number) of the COMPLETE trials, one row per trial and param."""
    done = trials[trials["state"] == "COMPLETE"]
    present = [p for p in params if p in done.columns]
    long = done.melt(id_vars=["number", "value"], value_vars=present, var_name="param", value_name="x")
    return long.dropna(subset=["x"]).reset_index(drop=True)[["param", "x", "value", "number"]]


def draw_slice(points: pd.DataFrame, *, log: set[str], cols: int = SLICE_COLS) -> go.Figure:
    """Optuna's slice plot, wrapped into rows of `cols` panels (one row of 9 panels is 2,700 px wide)."""
    params = list(dict.fromkeys(points["param"]))
    rows = max(1, -(-len(params) // cols))
    numbers = points["number"] if len(points) else pd.Series([0])
    shade = {
        "colorscale": "Viridis",
        "cmin": float(numbers.min()),
        "cmax": float(max(numbers.max(), numbers.min() + 1)),
    }
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=params, vertical_spacing=0.3 / rows, shared_yaxes=True)
    for i, p in enumerate(params):
        f = points[points["param"] == p]
        r, c = i // cols + 1, i % cols + 1
        x = f["x"].astype(str) if f["x"].map(lambda v: isinstance(v, (bool, str))).any() else f["x"]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=f["value"],
                mode="markers",
                # one colour scale over all panels, with its bar: the reader can tell early trials from late
                marker={
                    "color": f["number"],
                    **shade,
                    "size": 5,
                    "line": {"width": 0.3},
                    "showscale": i == 0,
                    "colorbar": {"title": {"text": "trial"}},
                },
                text=[f"trial {n}" for n in f["number"]],
                showlegend=False,
            ),
            row=r,
            col=c,
        )
        if p in log:
            fig.update_xaxes(type="log", row=r, col=c)
    fig.update_xaxes(tickfont={"size": 10}, nticks=6)
    fig.update_yaxes(title_text="validation accuracy", col=1)
    fig.update_layout(title="Slice: validation accuracy against each parameter (colour: trial number)")
    fig.update_layout(height=PANEL_HEIGHT * rows + 120)
    return fig


INTERMEDIATE_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def intermediate_bands(study: optuna.Study) -> pd.DataFrame:
    """Quantiles across trials of the reported intermediate value at each step (columns step, q10..q90, n)."""
    rows = [
        {"number": t.number, "step": step, "v": v}
        for t in study.get_trials(deepcopy=False)
        for step, v in t.intermediate_values.items()
    ]
    cols = ["step", *(f"q{round(q * 100)}" for q in INTERMEDIATE_QUANTILES), "n"]
    if not rows:
        return pd.DataFrame(columns=cols)
    long = pd.DataFrame(rows).dropna(subset=["v"])
    g = long.groupby("step")["v"]
    out = pd.DataFrame({f"q{round(q * 100)}": g.quantile(q) for q in INTERMEDIATE_QUANTILES})
    out["n"] = g.size()
    return out.reset_index()[cols]


def draw_intermediate(bands: pd.DataFrame) -> go.Figure:
    """Median and 10-90% / 25-75% bands of the intermediate values: 240 single lines are unreadable."""
    fig = go.Figure()
    color = _COLORS[0]
    for lo, hi, alpha, label in (("q10", "q90", 0.12, "10–90%"), ("q25", "q75", 0.25, "25–75%")):
        fig.add_trace(
            go.Scatter(
                x=bands["step"], y=bands[hi], mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"
            )
        )
        fig.add_trace(
            go.Scatter(
                x=bands["step"],
                y=bands[lo],
                fill="tonexty",
                fillcolor=_rgba(color, alpha),
                line={"width": 0},
                name=label,
            )
        )
    fig.add_trace(go.Scatter(x=bands["step"], y=bands["q50"], mode="lines", line={"color": color}, name="median"))
    fig.add_trace(
        go.Scatter(
            x=bands["step"],
            y=bands["n"],
            mode="lines",
            yaxis="y2",
            line={"color": "grey", "dash": "dot"},
            name="trials",
        )
    )
    fig.update_layout(
        title="Intermediate values (validation accuracy reported during training): quantiles over trials",
        xaxis_title="epoch",
        yaxis_title="validation accuracy",
        yaxis2={
            "title": "trials still running",
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "tickformat": "d",
            "showgrid": False,
        },
    )
    return fig


def wall_time_points(trials: pd.DataFrame) -> pd.DataFrame:
    """Complete trials in completion order: minutes since the study's first trial started, value,
    best value so far (a wall clock, so parallel workers count once)."""
    cols = ["number", "elapsed_min", "value", "best_so_far"]
    # COMPLETE only: Optuna stores a pruned trial's last intermediate value as its value, which no
    # finished run reached, and a failed trial has none (NaN would break the best-so-far line).
    d = trials[trials["state"] == "COMPLETE"].dropna(subset=["datetime_complete", "value"])
    if d.empty or trials["datetime_start"].dropna().empty:
        return pd.DataFrame(columns=cols)
    start = pd.to_datetime(trials["datetime_start"].dropna()).min()
    d = d.assign(done=pd.to_datetime(d["datetime_complete"])).sort_values("done")
    out = pd.DataFrame(
        {
            "number": d["number"].astype(int),
            "elapsed_min": (d["done"] - start).dt.total_seconds() / 60,
            "value": pd.to_numeric(d["value"], errors="coerce"),
        }
    )
    out["best_so_far"] = out["value"].cummax()
    return out.reset_index(drop=True)


LABEL_CHARS = 40  # a study name in a legend or an axis label: longer ones squeezed the plot to a sliver


def label(name: str, *, limit: int = LABEL_CHARS) -> str:
    """A study name as plotly draws it literally: cut to `limit` characters (…) and escaped, since plotly reads
    `<br>`, `<b>` and `&amp;` in names as rich text (a study named `a<br>b` was drawn as "ab")."""
    cut = name if len(name) <= limit else name[: limit - 1] + "…"
    return html.escape(cut, quote=False)


def draw_wall_time(points: dict[str, pd.DataFrame]) -> go.Figure:
    """Validation accuracy against wall time, one colour per study: each trial a dot, the best so far a step line."""
    fig = go.Figure()
    for i, (name, f) in enumerate(points.items()):
        color = _COLORS[i % len(_COLORS)]
        fig.add_trace(
            go.Scatter(
                x=f["elapsed_min"],
                y=f["value"],
                mode="markers",
                marker={"color": _rgba(color, 0.45), "size": 5},
                name=f"{label(name)}: trial",
                text=[f"trial {n}" for n in f["number"]],
            )
        )
        fig.add_trace(
            go.Scatter(
                x=f["elapsed_min"],
                y=f["best_so_far"],
                mode="lines",
                line={"color": color, "shape": "hv"},
                name=f"{label(name)}: best",
            )
        )
    fig.update_layout(
        title="Validation accuracy against wall time (minutes since the first trial started)",
        xaxis_title="wall time (min)",
        yaxis_title="validation accuracy",
    )
    return fig


def draw_value_by_study(frames: dict[str, pd.DataFrame]) -> go.Figure:
    """Distribution of validation accuracy of the COMPLETE trials of each study."""
    fig = go.Figure()
    for i, (name, f) in enumerate(frames.items()):
        v = pd.to_numeric(f.loc[f["state"] == "COMPLETE", "value"], errors="coerce").dropna()
        fig.add_trace(
            go.Box(y=v, name=f"{label(name)} (n={len(v)})", boxpoints="all", marker_color=_COLORS[i % len(_COLORS)])
        )
    fig.update_layout(title="Validation accuracy of the complete trials, by study", yaxis_title="validation accuracy")
    return fig


def draw_trial_curves(curves: dict[int, Curves], numbers: list[int]) -> go.Figure:
    """Training loss and validation accuracy of chosen trials, every epoch."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "validation accuracy"))
    for i, n in enumerate(numbers):
        c, color = curves[n], _COLORS[i % len(_COLORS)]
        fig.add_trace(
            go.Scatter(y=c.train_loss, name=f"trial {n}", legendgroup=str(n), line={"color": color}), row=1, col=1
        )
        fig.add_trace(
            go.Scatter(x=c.eval_epochs, y=c.val_accuracy, legendgroup=str(n), showlegend=False, line={"color": color}),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_layout(title="Learning curves of trials " + ", ".join(map(str, numbers)))
    return fig
