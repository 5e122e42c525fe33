"""Build the report of a stored study: figures, claims table, and an HTML page that opens offline.

Static PNG/SVG export goes through kaleido 1.x, which drives a Chromium; on Debian the system
`chromium` package (installed by `scripts/setup.sh --with-system-deps`) is found on PATH or via
BROWSER_PATH. The HTML page needs no browser: without one, `write_report(images=None)` skips the
images (and the command says so); when images are asked for, a failed export fails the report.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd
import plotly.graph_objects as go

from mnist_fc import measures as m
from mnist_fc.files import staged
from mnist_fc.trainer import Curves
from study.analysis import claims as cl
from study.analysis import figures as fg
from study.analysis.design_claims import recompute_curve_measures
from study.analysis.frames import attach_curves, complete, trials_frame
from study.curves import KEY as CURVES_KEY
from study.curves import missing_curves
from study.errors import UserError

MIN_COMPLETE = 2  # Optuna's plots and importances need at least this many COMPLETE trials
ARTICLE_PARAMS = ("n_units_l1", "init_mean", "init_std", "fan_in_scaling", "batchnorm", "normalization", "lr")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
IMAGE_SIZE = {"width": 1100, "height": 550}


TITLES = {  # file stem -> heading on the page
    "optuna_history": "Optimization history",
    "wall_time": "Validation accuracy against wall time",
    "importance_fanova": "Parameter importances: fANOVA",
    "importance_ped_anova": "Parameter importances: PED-ANOVA",
    "optuna_slice": "Slice: accuracy against each parameter",
    "optuna_contour_top2": "Contour of the two most important numeric parameters",
    "optuna_parallel": "Parallel coordinates",
    "optuna_intermediate": "Intermediate values",
    "curves_by_init_std": "Learning curves by initial weight std",
    "curves_by_n_units_l1": "Learning curves by first hidden layer width",
    "curves_by_normalization": "Learning curves by input normalisation",
    "curves_by_lr": "Learning curves by learning rate",
    "curves_by_batchnorm": "Learning curves with and without BatchNorm",
    "plateau_vs_init_std": "Initial plateau against initial weight std",
    "plateau_vs_hidden_size": "Initial plateau against hidden layer width",
    "oscillation_vs_lr": "Late oscillation against learning rate",
    "batchnorm_on_off": "BatchNorm on against off",
    "trial_curves": "Learning curves of chosen trials",
    "compare_wall_time": "Studies compared: accuracy against wall time",
    "compare_values": "Studies compared: accuracy of the complete trials",
}
OPTUNA_SECTION = "Optuna's figures"
ARTICLE_SECTION = "The article's figures"
TRIALS_SECTION = "Chosen trials"
COMPARE_SECTION = "Studies compared"


@dataclass
class Report:
    study_name: str
    trials: pd.DataFrame
    claims: pd.DataFrame
    figures: dict[str, go.Figure] = field(default_factory=dict)  # file stem -> figure, in page order
    sections: dict[str, str] = field(default_factory=dict)  # file stem -> section heading
    titles: dict[str, str] = field(default_factory=dict)  # file stem -> figure heading

    def add(self, name: str, fig: go.Figure, *, section: str, title: str | None = None) -> None:
        if name in self.figures:
            raise ValueError(f"two report figures named {name!r}")
        self.figures[name] = fig
        self.sections[name] = section
        self.titles[name] = title or TITLES.get(name, name.replace("_", " "))


# A hook adds its own section to every report: (section heading, function of (study, trials frame,
# curves) -> [(file stem, heading, figure), ...]). Per-claim figures plug in here, e.g.
#     EXTRA_SECTIONS.append(("Per-claim figures", claim_figures.figures))
FigureHook = Callable[[optuna.Study, pd.DataFrame, dict[int, Curves]], Iterable[tuple[str, str, go.Figure]]]
EXTRA_SECTIONS: list[tuple[str, FigureHook]] = []


def _optuna_figures(study: optuna.Study, trials: pd.DataFrame) -> dict[str, go.Figure]:
    figs: dict[str, go.Figure] = {}
    v = optuna.visualization
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fanova = fg.importances(study, optuna.importance.FanovaImportanceEvaluator(seed=0))
        ped = fg.importances(study, optuna.importance.PedAnovaImportanceEvaluator())
        figs["optuna_history"] = v.plot_optimization_history(study)
        figs["wall_time"] = fg.draw_wall_time({study.study_name: fg.wall_time_points(trials)})
        figs["importance_fanova"] = fg.draw_importances(fanova, evaluator="fANOVA")
        figs["importance_ped_anova"] = fg.draw_importances(ped, evaluator="PED-ANOVA")
        params = [str(p) for p in fanova["param"]]  # most important first
        params = params or sorted({name for t in study.get_trials(deepcopy=False) for name in t.params})
        figs["optuna_slice"] = fg.draw_slice(fg.slice_points(trials, params), log=fg.log_params(study))
        top2 = fg.top_numeric_params(fanova, fg.numeric_params(study), 2)
        if len(top2) == 2:  # a contour of a boolean or a category is stripes: numeric params only
            figs["optuna_contour_top2"] = v.plot_contour(study, params=top2)
            figs["optuna_contour_top2"].update_layout(
                title=f"Contour of the two most important numeric parameters by fANOVA: {', '.join(top2)}"
            )
        figs["optuna_parallel"] = v.plot_parallel_coordinate(study)
        figs["optuna_intermediate"] = fg.draw_intermediate(fg.intermediate_bands(study))
    return figs


def _article_figures(trials: pd.DataFrame, curves: dict[int, Curves]) -> dict[str, go.Figure]:
    done = complete(trials)
    have = attach_curves(done, curves)
    figs: dict[str, go.Figure] = {}
    for factor in fg.CURVE_FACTORS:
        loss = fg.curve_bands(done, have, factor=factor, metric="train_loss")
        acc = fg.curve_bands(done, have, factor=factor, metric="val_accuracy")
        figs[f"curves_by_{factor}"] = fg.draw_curve_bands(loss, acc, factor=factor)
    figs["plateau_vs_init_std"] = fg.draw_plateau(fg.plateau_points(done, x="init_std"), x="init_std")
    figs["plateau_vs_hidden_size"] = fg.draw_plateau(fg.plateau_points(done, x="n_units_l1"), x="n_units_l1")
    figs["oscillation_vs_lr"] = fg.draw_oscillation(fg.oscillation_points(done))
    figs["batchnorm_on_off"] = fg.draw_bn(fg.bn_comparison(done))
    return figs


def check_curves(study: optuna.Study, curves: dict[int, Curves]) -> None:
    """Refuse a study whose finished trials lost their curves (e.g. copied by a tool that drops trial
    system attributes): its curve figures would be silently empty."""
    trials = study.get_trials(deepcopy=False)
    missing = missing_curves(trials, curves)
    if not missing:
        return
    shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
    by_number = {t.number: t for t in trials}
    lost = [by_number[n] for n in missing]
    if any(k.startswith(CURVES_KEY) for t in lost for k in t.system_attrs):
        why = "their curve attributes are there but unreadable (damaged or edited by another tool)"
    elif lost and all(t.user_attrs.get("measures_version") is None for t in lost):
        why = (
            "these trials predate curves in system attributes: their curves are in the table mnist_study_curves of "
            "the file the study was made in, which optuna.copy_study does not copy; report that file, or copy "
            "that table into this one too"
        )
    else:
        why = "curves travel in trial system attributes, which this copy or tool dropped"
    raise UserError(
        f"study {study.study_name!r}: {len(missing)} finished trials have no stored learning curves "
        f"(trials {shown}); {why}"
    )


def measures_version(trials: pd.DataFrame) -> int:
    """1 for a study whose measures were all stored before version 2, else the current version."""
    if "measures_version" not in trials.columns or trials["measures_version"].isna().all():
        return 1
    return m.MEASURES_VERSION


def one_measures_version(trials: pd.DataFrame, curves: dict[int, Curves]) -> pd.DataFrame:
    """`trials` with every curve measure of one definition: a study stored before measures version 2
    (the shipped `reference`) and extended by a later `run` mixes two definitions of e.g. oscillation,
    which no claim may pool; its old trials' measures are then recomputed (version 2) from their curves.
    A study of one version is returned as it is (the reference study's documented table stays version 1)."""
    return recompute_curve_measures(trials, curves) if mixes_measure_versions(trials) else trials


def mixes_measure_versions(trials: pd.DataFrame) -> bool:
    """Whether the trials that have curve measures store two definitions (version 1 and a later one)."""
    if "measures_version" not in trials.columns or "plateau_epochs" not in trials.columns:
        return False
    version = trials.loc[trials["plateau_epochs"].notna(), "measures_version"]  # trials that have measures
    return bool(version.isna().any() and version.notna().any())


def build_report(
    study: optuna.Study,
    curves: dict[int, Curves],
    *,
    trial_numbers: list[int] | None = None,
    compare: dict[str, pd.DataFrame] | None = None,
) -> Report:
    """Every figure and the claims table of `study` (no file is written here).

    trial_numbers: trials whose own curves get a figure; compare: other studies' trial frames
    (study name -> trials_frame) drawn beside this one.
    """
    trials = trials_frame(study)
    n_complete = int((trials["state"] == "COMPLETE").sum()) if len(trials) else 0
    if n_complete < MIN_COMPLETE:
        raise UserError(f"study {study.study_name!r} has {n_complete} complete trials; a report needs {MIN_COMPLETE}")
    missing = [p for p in ARTICLE_PARAMS if p not in trials.columns]
    if missing:
        raise UserError(f"study {study.study_name!r} lacks the article space's params ({', '.join(missing)})")
    if trials["plateau_epochs"].isna().all():
        raise UserError(f"study {study.study_name!r} has no per-trial measures (made before they existed?)")
    check_curves(study, curves)
    trials = one_measures_version(trials, curves)
    if trial_numbers:
        unknown = [n for n in trial_numbers if n not in curves]
        if unknown:
            raise UserError(
                f"--trials: study {study.study_name!r} has no curves for trial(s) {', '.join(map(str, unknown))}"
            )
    report = Report(study.study_name, trials, cl.evaluate_claims(trials))
    for name, fig in _optuna_figures(study, trials).items():
        report.add(name, fig, section=OPTUNA_SECTION)
    for name, fig in _article_figures(trials, curves).items():
        report.add(name, fig, section=ARTICLE_SECTION)
    if trial_numbers:
        report.add("trial_curves", fg.draw_trial_curves(curves, trial_numbers), section=TRIALS_SECTION)
    if compare:
        frames = {study.study_name: trials, **compare}
        points = {name: fg.wall_time_points(f) for name, f in frames.items()}
        report.add("compare_wall_time", fg.draw_wall_time(points), section=COMPARE_SECTION)
        report.add("compare_values", fg.draw_value_by_study(frames), section=COMPARE_SECTION)
    for section, hook in EXTRA_SECTIONS:
        for name, title, fig in hook(study, trials, curves):
            report.add(name, fig, section=section, title=title)
    for fig in report.figures.values():
        # An explicit height: in an unsized <div> the page would otherwise draw each plot 0 px tall.
        # A width of None lets the page fit the plot to its column; PNGs get IMAGE_SIZE's width.
        height = fig.layout.height or IMAGE_SIZE["height"]
        fig.update_layout(template="plotly_white", height=height, width=None)
    return report


def _browser() -> str | None:
    """BROWSER_PATH when set (a user who set it wants images: a wrong one fails loudly), else the first
    Chromium on PATH; None when neither."""
    if os.environ.get("BROWSER_PATH"):
        return os.environ["BROWSER_PATH"]
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


EXPORT_TRIES = 3  # kaleido calls per figure before an empty file is an error


def export_images(figures: dict[str, go.Figure], out: Path, *, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Write every figure in every format with ONE kaleido session; raise UserError if any is missing."""
    import plotly.io as pio

    browser = _browser()
    if browser is None:
        raise UserError(
            "cannot export PNG/SVG: no Chromium found (bash scripts/setup.sh --with-system-deps installs it, "
            "or set BROWSER_PATH)"
        )
    if not (os.path.isfile(browser) and os.access(browser, os.X_OK)):
        raise UserError(f"cannot export PNG/SVG: BROWSER_PATH={browser} is not a program (unset it to skip images)")
    before = os.environ.get("BROWSER_PATH")
    os.environ["BROWSER_PATH"] = browser  # kaleido/choreographer read it; restored below
    figs = [fig for fig in figures.values() for _ in formats]
    heights = [fig.layout.height or IMAGE_SIZE["height"] for fig in figs]  # a wrapped slice plot is taller
    # Into a hidden folder, renamed in together: a failed export (seen on a loaded machine) deleted a
    # committed figure and rewrote its twin when it wrote straight into `out`.
    with staged(out) as stage:
        paths = [stage / f"{name}.{fmt}" for name in figures for fmt in formats]
        todo = list(range(len(paths)))
        try:
            # On a loaded machine kaleido now and then returns without writing a file: those are drawn again.
            for _ in range(EXPORT_TRIES):
                pio.write_images([figs[i] for i in todo], [paths[i] for i in todo], width=IMAGE_SIZE["width"],
                                 height=[heights[i] for i in todo])  # fmt: skip
                todo = [i for i in todo if not paths[i].is_file() or paths[i].stat().st_size == 0]
                if not todo:
                    break
        except Exception as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"cannot export PNG/SVG with kaleido and {browser}: {reason}") from None
        finally:
            if before is None:
                os.environ.pop("BROWSER_PATH", None)
        if todo:
            names = ", ".join(paths[i].name for i in todo)
            raise UserError(f"figure export wrote no data for {names} ({EXPORT_TRIES} tries)")
    return [out / p.name for p in paths]


def _oscillation_definition(version: int) -> str:
    """The oscillation this study stores: version 1 (the shipped `reference`) or the current one."""
    tail = f"{m.OSCILLATION_TAIL:.0%}"
    if version == 1:
        return (
            f"<li><b>oscillation</b> (measures version 1, as this study stored it): std of the training loss "
            f"around its least-squares line over the last {tail} of the epochs, divided by the mean loss there.</li>"
        )
    return (
        f"<li><b>oscillation</b> (measures version {m.MEASURES_VERSION}): over the last {tail} of the epochs, the "
        "rises of the training loss divided by its rises plus falls, U/(U+D): 0 = it only falls, 0.5 = it rises "
        "as much as it falls, 1 = it only rises.</li>"
    )


def _definitions(version: int = m.MEASURES_VERSION) -> str:
    return (
        "<ul>"
        f"<li><b>plateau length</b>: gradient steps until the training loss first falls below "
        f"min(initial loss, ln 10) − {m.PLATEAU_DELTA}; a run that never does is censored at the epochs run.</li>"
        f"<li><b>saturation at init</b>: fraction of (image, hidden unit) pairs with |pre-activation| > "
        f"{m.SATURATION_Z:g} on the first {m.SATURATION_BATCH} normalised training images, initial weights "
        f"(BatchNorm in training mode), weighted over both hidden layers; per layer as saturation_init_l1/_l2.</li>"
        f"{_oscillation_definition(version)}"
        "<li><b>epochs to 90% / 97% validation accuracy</b>: first evaluation epoch reaching it.</li>"
        "</ul>"
        f"<p>Verdicts: <b>supported</b> = p &lt; {cl.ALPHA} with the predicted sign; <b>contradicted</b> = "
        f"p &lt; {cl.ALPHA} with the opposite sign, or the 95% CI inside ±{cl.NEGLIGIBLE}; "
        f"<b>not enough data</b> = fewer than {cl.MIN_N} trials (per group) or an effect neither significant "
        "nor excluded. Only COMPLETE trials are used (diverged trials end PRUNED).</p>"
    )


def _claims_html(table: pd.DataFrame) -> str:
    shown = table.copy()
    for col in ("value", "ci_low", "ci_high"):
        shown[col] = shown[col].map(lambda x: "—" if pd.isna(x) else f"{x:+.3f}")
    shown["p_value"] = shown["p_value"].map(lambda x: "—" if pd.isna(x) else f"{x:.2g}")
    return shown.to_html(index=False, escape=True, classes="claims", border=0)


def render_html(report: Report) -> str:
    """One self-contained page: plotly.js inlined once, every figure interactive, works offline."""
    counts = report.trials["state"].value_counts().to_dict()
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>mnist-study report: {html.escape(report.study_name)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
        "table.claims{border-collapse:collapse;font-size:0.85em}"
        "table.claims td,table.claims th{border:1px solid #ccc;padding:4px;vertical-align:top}"
        "a.stem{font-size:0.6em;color:#888;font-weight:normal;margin-left:0.5em}</style>",
        "</head><body>",
        f"<h1>Study {html.escape(report.study_name)}</h1>",
        "<p>Trials by state: " + ", ".join(f"{html.escape(str(k))} {v}" for k, v in sorted(counts.items())) + "</p>",
        "<h2>The article's claims, tested</h2>",
        _claims_html(report.claims),
        "<h2>Measures and verdict rules</h2>",
        _definitions(measures_version(report.trials)),
    ]
    parts += figures_html(report)
    parts.append("</body></html>")
    return "\n".join(parts)


def figures_html(report: Report, *, notes: dict[str, str] | None = None) -> list[str]:
    """The figures as HTML, one <h2> per section, plotly.js inlined once (before the first plot).

    notes: file stem -> an HTML line shown under that figure's heading (e.g. its claim's verdict)."""
    parts = []
    current = None
    for i, (name, fig) in enumerate(report.figures.items()):
        if report.sections.get(name) != current:
            current = report.sections.get(name)
            parts.append(f"<h2>{html.escape(current or '')}</h2>")
        # The heading and the plot need distinct ids: plotly draws into the first element with its id.
        title = report.titles.get(name, name)
        parts.append(f"<h3 id='{name}'>{html.escape(title)} <a href='#{name}' class='stem'>{name}</a></h3>")
        if notes and name in notes:
            parts.append(f"<p class='note'>{notes[name]}</p>")
        parts.append(
            fig.to_html(
                full_html=False,
                include_plotlyjs=(i == 0),
                div_id=f"plot-{name}",
                default_height=f"{fig.layout.height or IMAGE_SIZE['height']}px",  # no window-high gap
            )
        )
    return parts


def images_possible() -> bool:
    """Whether a browser for PNG/SVG export is configured or on PATH."""
    return _browser() is not None


MANIFEST = ".report-files.json"  # in a report folder: the files the last report wrote there


def write_outputs(out: Path, fill: Callable[[Path], None]) -> list[Path]:
    """Make `out` hold one report: `fill(stage)` writes its files into a hidden folder, renamed in together
    (all or none; a link in `out` is replaced, never written through). Files an earlier report wrote there
    and this one did not (another study's figures, a run with images) are removed, by the earlier report's
    manifest only: figures that no longer match the page looked current. A report that fails leaves a
    folder it had to make removed again, not empty."""
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output folder {out}: {e.strerror or e}") from None
    try:
        earlier = _manifest(out)
        with staged(out) as stage:
            fill(stage)
            names = sorted(p.name for p in stage.iterdir())
            (stage / MANIFEST).write_text(json.dumps(names), encoding="utf-8")
    except BaseException:
        if made:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    for stale in sorted(set(earlier) - set(names)):
        with contextlib.suppress(OSError):
            (out / stale).unlink()
    return [out / n for n in names]


def _manifest(out: Path) -> list[str]:
    """Plain file names listed by the last report in `out` (nothing outside `out`, no hidden names)."""
    try:
        names = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str) and n == Path(n).name and not n.startswith(".")]


def write_report(report: Report, out: Path, *, images: bool | None = True) -> list[Path]:
    """index.html, claims.csv, claims.md and every figure as PNG and SVG.

    images: True = required (no browser is an error); None = when a browser is found; False = never.
    """

    def fill(stage: Path) -> None:
        if images or (images is None and images_possible()):
            export_images(report.figures, stage)
        report.claims.to_csv(stage / "claims.csv", index=False)
        (stage / "claims.md").write_text(cl.claims_markdown(report.claims), encoding="utf-8")
        (stage / "index.html").write_text(render_html(report), encoding="utf-8")

    return write_outputs(out, fill)
