"""`mnist-study design`: run the pre-registered designs (study.designs) as ordinary Optuna studies.

Each design becomes the study f"{prefix}{name}": its cells x seeds are enqueued (idempotently, so a
rerun resumes and never duplicates), then trained by the same objective as `run`, one at a time or
`--batch-trials` at once (cells that share data, epochs and seed train as one batched model), in
`--jobs` worker processes. A trial whose worker died goes stale (heartbeat) and is re-queued.
"""

from __future__ import annotations

import argparse
import os

from mnist_fc.config import DEVICES, PRECISIONS
from study.commands.args import positive_int
from study.defaults import STORAGE_ENV

DESIGN_STORAGE = "sqlite:///claims.db"  # the designs' own file unless $OPTUNA_STORAGE names a shared one

EXAMPLE = """examples:
  mnist-study design --list
  mnist-study design all --storage sqlite:///claims.db --device cpu --batch-trials 4
  mnist-study design width_lr lr_plateau --storage sqlite:///claims.db --jobs 2
  (rerunning the same line resumes: finished cells are kept, missing ones run)"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "design",
        help="run the pre-registered claim designs (cells x seeds around the article's setup) as studies",
        description="Enqueue and run the designed experiments declared in study/designs.py, one Optuna study "
        "per design (named PREFIX + design name). Idempotent and resumable.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="designs to run, or 'all' (default: all)")
    p.add_argument(
        "--storage",
        default=os.environ.get(STORAGE_ENV) or DESIGN_STORAGE,
        metavar="URL",
        help=f"any Optuna storage URL (default: ${STORAGE_ENV} if set, else {DESIGN_STORAGE})",
    )
    p.add_argument("--study-prefix", default="claims_", help="study name = PREFIX + design name (default claims_)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto = cuda if available (default)")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="fp32 (default: the precision the designs were registered with, 'CPU fp32'); auto = measured per "
        "study (fp32 for designs that measure oscillation). A study keeps the precision of its first run",
    )
    p.add_argument("--batch-trials", type=positive_int, default=1, help="train up to K cells at once (default 1)")
    p.add_argument("--jobs", type=positive_int, default=1, help="worker processes (default 1)")
    p.add_argument("--list", action="store_true", help="print the designs and their predictions, run nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from study.designs import describe
    from study.runner.designs import run_designs, selected

    designs = selected(args.names)
    if args.list:
        print("\n\n".join(describe(d) for d in designs))
        return 0
    seconds = run_designs(
        designs,
        storage=args.storage,
        prefix=args.study_prefix,
        device=args.device,
        precision=args.precision,
        batch_trials=args.batch_trials,
        jobs=args.jobs,
    )
    print(f"done in {seconds:.0f} s")
    return 0
