"""Draw the curves of a long run written by scripts/article_run.py: DIR/curves.png and DIR/curves.svg.

    python scripts/run_figure.py runs/article --title "The article's run" --held-out "held-in check"

Reads DIR/curves.json and DIR/result.json; marks the epoch at which training accuracy first passed
--mark (default 0.99, the article's "99%+"). Needs a Chromium for kaleido, as `mnist-study report` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from study.analysis.report import export_images
from study.analysis.run_figure import draw_run_curves, first_epoch_above, run_curve_points
from study.errors import UserError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="folder with curves.json and result.json")
    p.add_argument("--title", default=None, help="figure title (default: the folder's name)")
    p.add_argument("--held-out", default="validation", help="name of the every-K-epochs curve")
    p.add_argument("--mark", type=float, default=0.99, help="training accuracy to mark (default 0.99)")
    args = p.parse_args(argv)
    try:
        curves = json.loads((args.run_dir / "curves.json").read_text())
        result = json.loads((args.run_dir / "result.json").read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the run in {args.run_dir}: {exc}", file=sys.stderr)
        return 2
    passed = first_epoch_above(curves["train_accuracy"], args.mark)
    title = args.title or args.run_dir.name
    title += f" ({result['epochs']:,} epochs, {result['precision']}, {result['seconds'] / 60:.0f} min)"
    fig = draw_run_curves(
        run_curve_points(curves, held_out=args.held_out), title=title, mark=args.mark, mark_epoch=passed
    )
    try:
        written = export_images({"curves": fig}, args.run_dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        "wrote " + ", ".join(str(w) for w in written) + f"; training accuracy first > {args.mark:g} at epoch {passed}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
