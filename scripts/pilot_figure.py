"""Draw the validation curves of several runs written by scripts/accuracy_pilot.py into one figure.

    python scripts/pilot_figure.py runs/accuracy_long/pilots/affine runs/accuracy_long/pilots/elastic \
        --out docs/accuracy_pilots --title "Pilots: validation accuracy (50,000 training images)"

Reads DIR/curves.json of each run (named by its folder, or NAME=DIR) and writes OUT.png and OUT.svg.
Needs a Chromium for kaleido, as `mnist-study report` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from study.analysis.pilot_figure import draw_pilot_curves, final_values, pilot_curve_points
from study.analysis.report import export_images
from study.errors import UserError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run folders with curves.json, optionally NAME=DIR")
    p.add_argument("--out", type=Path, required=True, help="output path without extension (.png and .svg)")
    p.add_argument("--title", default="Validation accuracy", help="figure title")
    p.add_argument("--floor", type=float, default=0.99, help="lowest validation accuracy drawn (default 0.99)")
    args = p.parse_args(argv)
    curves = {}
    for spec in args.runs:
        name, _, folder = spec.rpartition("=") if "=" in spec else (Path(spec).name, "", spec)
        try:
            curves[name] = json.loads((Path(folder) / "curves.json").read_text())
        except (OSError, ValueError) as exc:
            print(f"error: cannot read the run in {folder}: {exc}", file=sys.stderr)
            return 2
    points = pilot_curve_points(curves)
    fig = draw_pilot_curves(points, title=args.title, floor=args.floor)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        written = export_images({args.out.name: fig}, args.out.parent)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finals = ", ".join(f"{run} {100 * v:.2f}%" for run, v in final_values(points).items())
    print("wrote " + ", ".join(str(w) for w in written) + f"; final validation accuracy: {finals}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
