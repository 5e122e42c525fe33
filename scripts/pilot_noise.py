"""How noisy the accuracy pilots' validation accuracy is from seed to seed, and what a lead then needs.

    python scripts/pilot_noise.py                      # every runs/accuracy_*/pilots/* run
    python scripts/pilot_noise.py "runs/accuracy_six/pilots/*" --lead 0.0002 --lead 0.0005

Pairs the pilots whose stored configs differ only in seed (0 and 1), estimates one seed's standard
deviation from their differences (study/analysis/pilot_noise.py), and prints how large two arms' mean
difference is by chance with 2, 4 or 8 seeds each, and how many seeds per arm resolve a given lead at 2 SD.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

from study.analysis.pilot_noise import difference_sd, per_seed_sd, seed_pairs, seeds_to_resolve

DEFAULT_RUNS = "runs/accuracy_*/pilots/*"
DEFAULT_LEADS = (0.0002, 0.0003, 0.0005)  # 2, 3 and 5 validation images in 10,000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", default=[DEFAULT_RUNS], help=f"run folders or globs (default {DEFAULT_RUNS})")
    p.add_argument("--lead", type=float, action="append", help="validation leads to resolve (fractions; repeatable)")
    args = p.parse_args(argv)
    folders = sorted({Path(f) for spec in args.runs for f in (glob.glob(spec) or [spec])})
    runs = {}
    for folder in folders:
        try:
            runs[str(folder)] = json.loads((folder / "result.json").read_text())
        except (OSError, ValueError) as exc:
            print(f"error: cannot read the run in {folder}: {exc}", file=sys.stderr)
            return 2
    pairs = seed_pairs(runs)
    try:
        sd = per_seed_sd(pairs)
    except ValueError as exc:
        print(f"error: {exc} (in {len(runs)} runs)", file=sys.stderr)
        return 2
    print(f"{len(pairs)} configurations run with seeds 0 and 1 (of {len(runs)} runs):")
    for pair in pairs:
        print(f"  {pair.name:55s} {pair.seed0:.2%} {pair.seed1:.2%}  seed 0 - seed 1 = {pair.difference:+.2%}")
    print(f"one seed's standard deviation: {sd:.3%} (sqrt(mean(d^2) / 2))")
    for n in (2, 4, 8):
        print(f"two arms, {n} seeds each: their mean difference has SD {difference_sd(sd, n):.3%}")
    for lead in args.lead or DEFAULT_LEADS:
        print(f"to resolve a true lead of {lead:.2%} at 2 SD: {seeds_to_resolve(sd, lead)} seeds per arm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
