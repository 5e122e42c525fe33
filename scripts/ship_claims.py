"""Copy the designed studies (every claims_* study) from the experiment's storage into the shipped one.

Usage: python scripts/ship_claims.py SRC_URL DST_URL [--prefix claims_] [--replace] [--allow-unfinished]
e.g.   python scripts/ship_claims.py sqlite:///out/claims.db sqlite:///studies.db

optuna.copy_study copies each study's user attributes (design, design_spec, ...) and every trial
with its system attributes, where the learning curves live (study.curves). Every check runs before
anything is written: a study of the same name in DST is refused unless --replace, and a study with
trials still WAITING or RUNNING unless --allow-unfinished. After the copy, the trial count and the
curves of every copy are checked; a copy that failed half-way is deleted again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from study.curves import missing_curves
from study.errors import UserError
from study.storage import curve_store, open_storage, redact


def ship(
    src_url: str, dst_url: str, *, prefix: str = "claims_", replace: bool = False, unfinished: bool = False
) -> list[str]:
    """Copy every `prefix`* study of SRC into DST; return the names copied."""
    src = open_storage(src_url, create=False)
    names = [s.study_name for s in src.get_all_studies() if s.study_name.startswith(prefix)]  # storage order kept
    if not names:
        raise UserError(f"no {prefix}* study in {redact(src_url)}")
    if not unfinished:
        for name in names:
            busy = optuna.load_study(study_name=name, storage=src).get_trials(
                deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)
            )
            if busy:
                raise UserError(
                    f"{name}: {len(busy)} trials still waiting or running (--allow-unfinished copies anyway)"
                )
    dst = open_storage(dst_url)
    existing = {s.study_name for s in dst.get_all_studies()} & set(names)
    if existing and not replace:
        raise UserError(f"{redact(dst_url)} already has {', '.join(sorted(existing))} (--replace overwrites them)")
    for name in names:
        if name in existing:
            optuna.delete_study(study_name=name, storage=dst)
        try:
            optuna.copy_study(from_study_name=name, from_storage=src, to_storage=dst, to_study_name=name)
            _check_copy(src, dst, name)
        except BaseException:
            if name in {s.study_name for s in dst.get_all_studies()}:
                optuna.delete_study(study_name=name, storage=dst)  # no half copy left behind
            raise
    return names


def _check_copy(src: RDBStorage, dst: RDBStorage, name: str) -> None:
    a = optuna.load_study(study_name=name, storage=src).get_trials(deepcopy=False)
    b = optuna.load_study(study_name=name, storage=dst).get_trials(deepcopy=False)
    if [(t.number, t.state, t.params) for t in a] != [(t.number, t.state, t.params) for t in b]:
        raise UserError(f"{name}: the copy's trials differ from the source's")
    lost = missing_curves(b, curve_store(dst).load(name))
    if lost:
        raise UserError(f"{name}: {len(lost)} copied trials lost their learning curves")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", metavar="SRC_URL")
    p.add_argument("dst", metavar="DST_URL")
    p.add_argument("--prefix", default="claims_", help="copy the studies whose name starts with this (default claims_)")
    p.add_argument("--replace", action="store_true", help="overwrite studies of the same name in DST")
    p.add_argument("--allow-unfinished", action="store_true", help="copy studies with waiting or running trials")
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        names = ship(args.src, args.dst, prefix=args.prefix, replace=args.replace, unfinished=args.allow_unfinished)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"copied {len(names)} studies into {redact(args.dst)}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
