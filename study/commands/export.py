"""`mnist-study export`: one row per trial (params, value, state, attributes, measures) as CSV or Parquet."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from study.commands.args import add_study_args
from study.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

EXAMPLE = """examples:
  mnist-study export --study-name reference --storage sqlite:///studies.db --out trials.csv
  mnist-study export --study-name reference --out trials.parquet"""

FORMATS = (".csv", ".parquet")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a study's trials (params, values, attributes, measures) to .csv or .parquet",
        description="Export one row per trial: number, state, value, timings, every param, every user "
        "attribute (results and the per-trial measures) and the stored RunConfig as JSON.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_study_args(p)
    p.add_argument("--out", required=True, type=Path, help="FILE.csv or FILE.parquet")
    p.set_defaults(func=run)


def check_out_file(out: Path) -> None:
    """The --out mistakes that need no storage: a wrong suffix, a missing folder, a folder as the file."""
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name ending in {' or '.join(FORMATS)}")
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"--out must end in {' or '.join(FORMATS)}, not {out.suffix or 'nothing'!r}")
    if not out.parent.resolve().is_dir():
        raise UserError(f"folder {out.parent} does not exist")


def parquet_ready(df: pd.DataFrame) -> pd.DataFrame:
    """Columns of mixed Python types (a categorical param with choices None, 128 and "full") as text:
    Parquet columns have one type, and pyarrow refuses such a column; a CSV writes them as text anyway."""
    out = df.copy()
    for col in out.select_dtypes(include="object").columns:
        kinds = {type(v) for v in out[col] if v is not None and v == v}  # v == v: not NaN
        if len(kinds) > 1:
            out[col] = [None if v is None or v != v else str(v) for v in out[col]]
    return out


def write_frame(df: pd.DataFrame, out: Path) -> None:
    """Write to a fresh temporary name and rename, so a failed export leaves no partial file, and a link
    at `out` is replaced rather than written through (`out` has passed check_out_file)."""
    from mnist_fc.files import replacing

    try:
        with replacing(out) as tmp:  # a fresh name: never an existing file (the storage) under a fixed one
            if out.suffix.lower() == ".csv":
                df.to_csv(tmp, index=False)
            else:
                parquet_ready(df).to_parquet(tmp, index=False)
    except OSError as e:  # a read-only or virtual folder: the user's to fix, and nothing is left behind
        raise UserError(f"cannot write {out}: {e.strerror or e} (nothing was written)") from None


def run(args: argparse.Namespace) -> int:
    from study.analysis.frames import trials_frame
    from study.analysis.report import mixes_measure_versions
    from study.safety import check_outputs
    from study.storage import load_study, open_storage

    check_out_file(args.out)  # before touching the storage
    check_outputs([args.out], storage=args.storage)  # never the database itself, however spelled
    storage = open_storage(args.storage, create=False)
    study = load_study(storage, args.study_name)
    df = trials_frame(study)
    note = ""
    if mixes_measure_versions(df):  # the same frame `report` reads: one measure definition throughout
        from study.analysis.report import one_measures_version
        from study.storage import curve_store

        df = one_measures_version(df, curve_store(storage).load(args.study_name))
        note = "; trials stored with measures version 1 recomputed to the current version from their curves, as report"
    write_frame(df, args.out)
    print(f"{len(df)} trials of {args.study_name!r} -> {args.out} ({len(df.columns)} columns{note})")
    return 0
