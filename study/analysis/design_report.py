"""The report of designed studies: the claims table over every design in a storage, and per-claim figures.

A design study (made by `mnist-study design`) carries the user attributes `design` (its name) and
`design_spec` (the whole declaration, as committed when its data were run). The report judges each
study by its STORED declaration, so a storage reports the same whatever this checkout's
study/designs.py says; where the two differ the page and the command say so (a post-hoc change).

The Holm family is never narrowed by what one chooses to look at: the table always covers every
design study found (with the prefix), and, when any of them is one of the pre-registered designs,
every pre-registered design (one not in the storage gets "no data" rows, still counted). `designs`
only chooses which designs' figures are drawn.
"""

from __future__ import annotations

import dataclasses
import html
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from optuna.storages import RDBStorage

from mnist_fc.trainer import Curves
from study.analysis import design_claims as dc
from study.analysis import stats as st
from study.analysis.claim_figures import claim_figure
from study.analysis.frames import trials_frame
from study.analysis.report import (
    IMAGE_SIZE,
    Report,
    check_curves,
    export_images,
    figures_html,
    images_possible,
    write_outputs,
)
from study.design_spec import Design, Prediction
from study.designs import DESIGNS, DESIGNS_BY_NAME, expand, spec_json
from study.errors import UserError
from study.storage import curve_store, load_study

TABLE_SECTION = "The article's claims, tested by designed experiments"
METHOD_DOC = "docs/claims_method.md"


def design_from_spec(text: str) -> Design:
    """The Design stored with a study (spec_json's JSON) as a Design again: lists back to tuples."""
    raw = json.loads(text)
    preds = tuple(
        Prediction(**{**p, "compare": tuple(p.get("compare", ())), "where": dict(p.get("where", {}))})
        for p in raw.pop("predictions")
    )
    raw["factors"] = {k: tuple(v) for k, v in raw["factors"].items()}
    raw["seeds"] = tuple(raw["seeds"])
    known = {f.name for f in dataclasses.fields(Design)}
    return Design(**{k: v for k, v in raw.items() if k in known}, predictions=preds)


@dataclass
class DesignStudy:
    """One design study as the report reads it."""

    study_name: str
    design: Design
    trials: pd.DataFrame  # trials_frame, curve measures recomputed (version 2) where stored older
    curves: dict[int, Curves]
    post_hoc: bool  # the stored declaration differs from this checkout's study/designs.py

    @property
    def states(self) -> dict[str, int]:
        return dict(Counter(self.trials["state"])) if len(self.trials) else {}

    @property
    def finished(self) -> int:
        return int(self.trials["state"].isin(dc.USED_STATES).sum()) if len(self.trials) else 0

    @property
    def planned(self) -> int:
        return len(expand(self.design))


def design_study_names(storage: RDBStorage, *, prefix: str) -> list[str]:
    """Names of the studies in `storage` made by `mnist-study design` as exactly PREFIX + their design's name
    (their stored attributes say which design; `claims_w` is not the prefix of `claims_width_lr`)."""
    return [
        s.study_name
        for s in storage.get_all_studies()
        if "design_spec" in s.user_attrs and s.study_name == f"{prefix}{s.user_attrs.get('design')}"
    ]


def load_design_study(storage: RDBStorage, study_name: str) -> DesignStudy:
    study = load_study(storage, study_name)
    spec = study.user_attrs.get("design_spec")
    if not isinstance(spec, str):
        raise UserError(f"study {study_name!r} is not a design study (no stored design_spec)")
    try:
        design = design_from_spec(spec)
    except (ValueError, TypeError, KeyError) as e:
        raise UserError(f"study {study_name!r}: its stored design declaration cannot be read ({e})") from None
    curves = curve_store(storage).load(study_name)
    check_curves(study, curves)
    code = DESIGNS_BY_NAME.get(design.name)
    post_hoc = code is not None and spec_json(code) != spec
    frame = trials_frame(study)
    if len(frame):
        frame = dc.recompute_curve_measures(frame, curves)
    return DesignStudy(study_name, design, frame, curves, post_hoc)


def load_design_studies(storage: RDBStorage, *, prefix: str) -> list[DesignStudy]:
    """Every design study with the prefix; refuse two studies of the same design (which would be judged?)."""
    studies = [load_design_study(storage, n) for n in design_study_names(storage, prefix=prefix)]
    seen: dict[str, str] = {}
    for s in studies:
        if s.design.name in seen:
            raise UserError(
                f"studies {seen[s.design.name]!r} and {s.study_name!r} both hold design {s.design.name!r}; "
                "choose one with --study-prefix"
            )
        seen[s.design.name] = s.study_name
    order = {d.name: i for i, d in enumerate(DESIGNS)}
    return sorted(studies, key=lambda s: order.get(s.design.name, len(order)))  # stable: others in storage order


def family(studies: list[DesignStudy]) -> list[Design]:
    """The designs of the Holm family: the studies' own, plus every pre-registered design missing from
    the storage when any study is a pre-registered one (see the module docstring)."""
    found = {s.design.name for s in studies}
    designs = [s.design for s in studies]
    if found & set(DESIGNS_BY_NAME):
        designs += [d for d in DESIGNS if d.name not in found]
        order = {d.name: i for i, d in enumerate(DESIGNS)}
        designs.sort(key=lambda d: order.get(d.name, len(order)))
    return designs


def storage_claims(studies: list[DesignStudy]) -> pd.DataFrame:
    """The claims table (design_claims.claims_table) of these studies, Holm across the whole family.

    Rows of a study whose stored declaration differs from study/designs.py are marked post hoc in their
    note, so that the Markdown and CSV tables (what the docs paste) say it, not only the page."""
    table = dc.claims_table(family(studies), {s.design.name: s.trials for s in studies})
    changed = {s.design.name for s in studies if s.post_hoc}
    if changed and len(table):
        mark = "post hoc: the stored declaration differs from study/designs.py (judged as stored)"
        rows = table["design"].isin(changed)
        notes = table.loc[rows, "note"].fillna("").astype(str)
        table.loc[rows, "note"] = [f"{mark}; {n}" if n else mark for n in notes]
    return table


@dataclass
class DesignReport:
    title: str
    studies: list[DesignStudy]
    claims: pd.DataFrame
    figures: Report  # the figures, their sections and headings (report.Report's bookkeeping)
    notes: dict[str, str] = field(default_factory=dict)  # figure stem -> its claim's verdict line (HTML)

    @property
    def warnings(self) -> list[str]:
        out = []
        for s in self.studies:
            if s.finished < s.planned:
                out.append(f"{s.study_name}: {s.finished} of {s.planned} trials finished (its rows use those)")
            if s.post_hoc:
                out.append(f"{s.study_name}: stored declaration differs from study/designs.py (judged as stored)")
        missing = [d.name for d in family(self.studies) if d.name not in {s.design.name for s in self.studies}]
        if missing:
            out.append(f"designs not in the storage (rows 'no data', still in the Holm family): {', '.join(missing)}")
        return out


def _stem(p: Prediction, design: Design, taken: set[str]) -> str:
    stem = f"claim_{p.claim}"
    return stem if stem not in taken else f"claim_{design.name}_{p.claim}"


def _verdict_line(row: Any) -> str:
    ci = f" [{row.ci_low:+.2f}, {row.ci_high:+.2f}]" if pd.notna(row.ci_low) else ""
    effect = "—" if pd.isna(row.effect) else f"{row.effect:+.2f}"
    p = "—" if pd.isna(row.p_holm) else f"{row.p_holm:.3g}"
    return (
        f"<b>{html.escape(str(row.verdict))}</b>: {html.escape(str(row.effect_name))} {effect}{ci}, "
        f"p Holm {p}, n {row.n} ({html.escape(str(row.test))} of {html.escape(str(row.measure))})"
    )


def build_design_report(
    storage: RDBStorage, *, prefix: str = "claims_", designs: list[str] | None = None, title: str = ""
) -> DesignReport:
    """The claims table over every design study in `storage`, and the per-claim figures of `designs`
    (design names; None = all found). Nothing is written here."""
    studies = load_design_studies(storage, prefix=prefix)
    if not studies:
        raise UserError(
            f"no design studies (made by `mnist-study design`) named {prefix} + a design name in this storage"
        )
    by_name = {s.design.name: s for s in studies}
    if designs is not None:
        unknown = [d for d in designs if d not in by_name]
        if unknown:
            raise UserError(f"no design study for {', '.join(unknown)} in this storage (found: {', '.join(by_name)})")
    claims = storage_claims(studies)
    figures = Report("designs", pd.DataFrame(), claims)
    notes: dict[str, str] = {}
    rows = {(r.design, r.claim): r for r in claims.itertuples(index=False)}
    for s in studies:
        if (designs is not None and s.design.name not in designs) or not s.finished:
            continue  # a design with no finished run has nothing to draw (the warnings say so)
        section = f"Design {s.design.name} ({s.study_name}): {s.design.question}"
        for p in s.design.predictions:
            stem = _stem(p, s.design, set(figures.figures))
            fig = claim_figure(s.design, s.trials, s.curves, p)
            figures.add(stem, fig, section=section, title=f"Claim {p.claim}: {p.statement}")
            notes[stem] = _verdict_line(rows[(s.design.name, p.claim)])
    for fig in figures.figures.values():
        fig.update_layout(template="plotly_white", height=fig.layout.height or IMAGE_SIZE["height"], width=None)
    return DesignReport(title or "designed studies", studies, claims, figures, notes)


def _table_html(table: pd.DataFrame) -> str:
    shown = pd.DataFrame(
        {
            "#": table["claim"],
            "design": table["design"],
            "the article says": table["statement"],
            "measure · test · levels": table["measure"] + " · " + table["test"] + " · " + table["levels"],
            "where": table["where"],
            "predicted": [
                f"{n} {'>' if d > 0 else '<'}= {'+' if d > 0 else '-'}{m:.2f}"
                for n, d, m in zip(table["effect_name"], table["direction"], table["min_effect"], strict=True)
            ],
            "effect [95% CI]": [
                "—" if pd.isna(e) else f"{e:+.2f}" + ("" if pd.isna(lo) else f" [{lo:+.2f}, {hi:+.2f}]")
                for e, lo, hi in zip(table["effect"], table["ci_low"], table["ci_high"], strict=True)
            ],
            "p": table["p_value"].map(lambda x: "—" if pd.isna(x) else f"{x:.3g}"),
            "p Holm": [
                ("—" if pd.isna(x) else f"{x:.3g}") + ("" if prim else " (secondary)")
                for x, prim in zip(table["p_holm"], table["primary"], strict=True)
            ],
            "n": table["n"],
            "verdict": table["verdict"],
            "note": table["note"],
        }
    )
    return shown.to_html(index=False, escape=True, classes="claims", border=0)


def _rules_html() -> str:
    return (
        f"<p>Verdicts (study.analysis.stats.verdict; details in {METHOD_DOC}): <b>supported</b> = Holm-adjusted "
        f"p &lt; {st.ALPHA}, the predicted sign and |effect| ≥ the prediction's min effect; <b>contradicted</b> = "
        f"Holm-adjusted p &lt; {st.ALPHA} with the opposite sign; <b>contradicted (no effect)</b> = the whole 95% "
        "CI inside ±min effect; <b>inconclusive</b> = anything else; <b>no data</b> = not computable. Holm runs "
        "over every primary prediction of every design (secondary rows keep their raw p). Each figure shows the "
        "runs behind its row: the training loss and accuracy per epoch, median over seeds with the quartile band.</p>"
    )


def render_design_html(report: DesignReport) -> str:
    """One self-contained page (plotly.js inlined once, works offline)."""
    studies = "".join(
        f"<li>{html.escape(s.study_name)} (design {html.escape(s.design.name)}): {s.finished} of {s.planned} "
        "trials finished; "
        + ", ".join(f"{k} {v}" for k, v in sorted(s.states.items()))
        + ("; <b>declaration differs from study/designs.py</b>" if s.post_hoc else "")
        + "</li>"
        for s in report.studies
    )
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in report.warnings)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>mnist-study report: {html.escape(report.title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
        "table.claims{border-collapse:collapse;font-size:0.8em}"
        "table.claims td,table.claims th{border:1px solid #ccc;padding:4px;vertical-align:top}"
        "p.note{margin:0 0 0.5em 0}"
        "a.stem{font-size:0.6em;color:#888;font-weight:normal;margin-left:0.5em}</style>",
        "</head><body>",
        f"<h1>Designed studies: {html.escape(report.title)}</h1>",
        f"<ul class='studies'>{studies}</ul>",
        f"<ul class='warnings'>{warnings}</ul>" if warnings else "",
        f"<h2>{TABLE_SECTION}</h2>",
        _table_html(report.claims),
        _rules_html(),
        *figures_html(report.figures, notes=report.notes),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def write_design_report(report: DesignReport, out: Path, *, images: bool | None = True) -> list[Path]:
    """index.html, claims.csv, claims.md and (images) every figure as PNG and SVG; images first, so a
    failed export leaves no half-written report."""

    def fill(stage: Path) -> None:
        if images or (images is None and images_possible()):
            export_images(report.figures.figures, stage)
        (stage / "claims.csv").write_text(dc.claims_csv(report.claims), encoding="utf-8")
        (stage / "claims.md").write_text(dc.claims_markdown(report.claims), encoding="utf-8")
        (stage / "index.html").write_text(render_design_html(report), encoding="utf-8")

    return write_outputs(out, fill)
