"""`mnist-study report`: the article's analysis of a stored study, as an offline HTML page + figures."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from study.commands.args import add_study_args
from study.defaults import DEFAULT_STUDY_NAME
from study.errors import UserError

if TYPE_CHECKING:
    import optuna
    from optuna.storages import RDBStorage

EXAMPLE = """examples:
  mnist-study report --study-name reference --storage sqlite:///studies.db --out /tmp/report
  # writes /tmp/report/index.html (opens offline), every figure as .png and .svg, claims.csv, claims.md
  mnist-study report --study-name reference --compare other --trials 3,17 --out /tmp/report
  mnist-study report --designs all --storage sqlite:///claims.db --out /tmp/claims-report
  # the designed studies (mnist-study design): claims table (Holm over every design) + per-claim figures
  mnist-study report --study-name claims_width_lr --storage sqlite:///claims.db --out /tmp/one-design
  # one design's figures; its claims table is still the whole family's (Holm is over every design)"""
NO_IMAGES = (
    "PNG/SVG images skipped: no Chromium found (install it with bash scripts/setup.sh --with-system-deps "
    "or set BROWSER_PATH; --images makes this an error)"
)


def trial_list(text: str) -> list[int]:
    try:
        numbers = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of trial numbers") from None
    if not numbers or min(numbers) < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of trial numbers")
    return list(dict.fromkeys(numbers))


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
    p.set_defaults(study_name=None)  # None: the default study, unless --designs is given
    p.add_argument(
        "--designs",
        type=design_list,
        metavar="all|NAME,...",
        help="report the design studies in the storage: the claims table over all of them, figures of these",
    )
    p.add_argument("--study-prefix", default="claims_", help="design studies are PREFIX + design (default claims_)")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    p.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="STUDY",
        help="another study in the same storage to draw beside this one (repeatable)",
    )
    p.add_argument("--trials", type=trial_list, metavar="N,M,...", help="also draw these trials' own learning curves")
    img = p.add_mutually_exclusive_group()
    img.add_argument(
        "--images",
        action="store_true",
        default=None,
        help="PNG/SVG images are required: fail if they cannot be made (default: made when Chromium is found)",
    )
    img.add_argument("--no-images", dest="images", action="store_false", help="write the HTML page and tables only")
    p.set_defaults(func=run)


def design_list(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names:
        raise argparse.ArgumentTypeError("--designs needs 'all' or design names separated by commas")
    return names


def run(args: argparse.Namespace) -> int:
    from study.analysis.frames import trials_frame
    from study.analysis.report import build_report, images_possible, write_report
    from study.safety import REPORT_FILES, check_output_dir
    from study.storage import curve_store, load_study, open_storage

    check_output_dir(args.out, REPORT_FILES, suffixes=(".png", ".svg"), storage=args.storage)
    if args.designs is not None and args.study_name is not None:
        raise UserError("--study-name and --designs exclude each other")
    storage = open_storage(args.storage, create=False)
    study = None
    if args.designs is None:
        study = load_study(storage, args.study_name or DEFAULT_STUDY_NAME)
        args.study_name = study.study_name
    if study is None or "design_spec" in study.user_attrs:
        return run_designs(args, storage, study)
    compare = {}
    for name in args.compare:
        if name == args.study_name or name in compare:
            raise UserError(f"--compare {name!r} is already in the report")
        compare[name] = trials_frame(load_study(storage, name))
    report = build_report(study, curve_store(storage).load(args.study_name), trial_numbers=args.trials, compare=compare)
    images = args.images if args.images is not None else (True if images_possible() else False)
    paths = write_report(report, args.out, images=images)
    verdicts = report.claims["verdict"].value_counts().to_dict()
    made = f"{len(report.figures)} figures as PNG+SVG" if images else f"{len(report.figures)} figures in the page"
    counts = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
    print(
        f"report of {args.study_name!r}: {len(paths)} files in {args.out} "
        f"(index.html, {made}, claims.csv, claims.md); claims: {counts}"
    )
    if not images and args.images is None:
        print(NO_IMAGES)
    return 0


def run_designs(args: argparse.Namespace, storage: RDBStorage, study: optuna.Study | None) -> int:
    from study.analysis.design_report import build_design_report, write_design_report
    from study.analysis.report import images_possible
    from study.commands.design import DESIGN_STORAGE
    from study.storage import redact

    """The report of design studies; `study`: the one named by --study-name (its design's figures only)."""
    if args.compare or args.trials:
        raise UserError("--compare and --trials are for ordinary studies, not design studies")
    designs, prefix = (None if args.designs == ["all"] else args.designs), args.study_prefix
    if study is not None:
        designs = [study.user_attrs["design"]]
        name = study.study_name
        if not name.endswith(designs[0]):  # the claims family (Holm) is found by name: PREFIX + design
            raise UserError(
                f"design study {name!r} is not named PREFIX + its design {designs[0]!r}, so its claims family "
                f"cannot be found; copy it under a name like 'claims_{designs[0]}'"
            )
        prefix = name[: -len(designs[0])]
    report = build_design_report(storage, prefix=prefix, designs=designs, title=redact(args.storage))
    images = args.images if args.images is not None else images_possible()
    paths = write_design_report(report, args.out, images=images)
    verdicts = report.claims["verdict"].value_counts().to_dict()
    n_fig = len(report.figures.figures)
    made = f"{n_fig} per-claim figures as PNG+SVG" if images else f"{n_fig} per-claim figures in the page"
    print(
        f"report of {len(report.studies)} design studies in {redact(args.storage)}: {len(paths)} files in {args.out} "
        f"(index.html, {made}, claims.csv, claims.md); claims: "
        + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
    )
    for line in report.warnings:
        print(f"note: {line}")
    if args.storage != DESIGN_STORAGE and Path("claims.db").is_file():  # `design` writes there by default
        print(
            f"note: this is {redact(args.storage)}; `design` wrote ./claims.db by default: --storage {DESIGN_STORAGE}"
        )
    if not images and args.images is None:
        print(NO_IMAGES)
    return 0
