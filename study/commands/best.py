"""`mnist-study best`: the best trial of a stored study."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from study.commands.args import add_study_args

EXAMPLE = """example:
  mnist-study best --study-name article --json"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "best",
        help="show the best trial (by validation accuracy) of a study",
        description="Show the best complete trial of a study: params, validation and test accuracy.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_study_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from study.report_text import best_record, best_summary
    from study.storage import check_study_name, load_study, open_storage

    check_study_name(args.study_name)
    study = load_study(open_storage(args.storage, create=False), args.study_name)
    if args.json:
        print(json.dumps(json_safe(best_record(study)), allow_nan=False))
    else:
        best_record(study)  # raises a one-line error when there is no complete trial
        print(best_summary(study))
    return 0


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinity as null: JSON has no such numbers, and Python's `Infinity` /
    `NaN` tokens break the scripts that parse `--json` (jq, JavaScript, Go)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
