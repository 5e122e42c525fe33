"""`mnist-study report`: the article's analysis of a stored study, as an offline HTML page + figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from study.commands.args import add_study_args

EXAMPLE = """example:
  mnist-study report --study-name reference --storage sqlite:///studies.db --out /tmp/report
  # writes /tmp/report/index.html (opens offline), every figure as .png and .svg, claims.csv, claims.md"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="HTML report, PNG/SVG figures and the claims table of a stored study",
        description="Reproduce the article's analysis from a stored study: Optuna's figures, the article's "
        "figures, and each claim tested with a statistic and a computed verdict.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_study_args(p)
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from study.analysis.report import build_report, write_report
    from study.storage import curve_store, load_study, open_storage

    storage = open_storage(args.storage, create=False)
    study = load_study(storage, args.study_name)
    report = build_report(study, curve_store(storage).load(args.study_name))
    paths = write_report(report, args.out)
    verdicts = report.claims["verdict"].value_counts().to_dict()
    print(
        f"report of {args.study_name!r}: {len(paths)} files in {args.out} "
        f"(index.html, {len(report.figures)} figures as PNG+SVG, claims.csv); claims: "
        + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
    )
    return 0
