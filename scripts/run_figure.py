"""Draw the curves of a long run written by scripts/article_run.py: DIR/curves.png and DIR/curves.svg.

    python scripts/run_figure.py runs/article --title "The article's run" --held-out "held-in check"
    python scripts/run_figure.py runs/article --checkpoint runs/article/article.ckpt   # a run still going

Reads DIR/curves.json and DIR/result.json (or, with --checkpoint, the curves of a run still going: the
figure is then DIR/progress.png/svg); marks the epoch at which training accuracy first passed
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


def checkpoint_curves(path: Path) -> tuple[dict[str, list], dict[str, object]]:
    """Curves and a result-like header of the run so far, from a full-batch checkpoint (read-only)."""
    from mnist_fc.checkpoint import read
    from mnist_fc.config import RunConfig
    from mnist_fc.data import load_split

    state = read(path)  # CheckpointError (a ValueError, one line) when unreadable
    cfg = RunConfig.from_dict(state["config"])
    n = len(load_split(cfg.data, seed=cfg.train.seed).x_train)
    curves = dict(state["curves"])
    curves["train_loss"] = state["losses"].double().tolist()
    curves["train_accuracy"] = (state["correct"].double() / n).tolist()
    return curves, {"epochs": int(state["epoch"]), "precision": cfg.train.precision, "seconds": state["seconds"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="folder with curves.json and result.json")
    p.add_argument("--title", default=None, help="figure title (default: the folder's name)")
    p.add_argument("--held-out", default="validation", help="name of the every-K-epochs curve")
    p.add_argument("--mark", type=float, default=0.99, help="training accuracy to mark (default 0.99)")
    p.add_argument("--checkpoint", type=Path, help="draw the run so far from this checkpoint (DIR/progress.*)")
    args = p.parse_args(argv)
    try:
        if args.checkpoint is not None:
            curves, result = checkpoint_curves(args.checkpoint)
        else:
            curves = json.loads((args.run_dir / "curves.json").read_text())
            result = json.loads((args.run_dir / "result.json").read_text())
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        print(f"error: cannot read the run in {args.run_dir}: {exc}", file=sys.stderr)
        return 2
    passed = first_epoch_above(curves["train_accuracy"], args.mark)
    title = args.title or args.run_dir.name
    title += " so far" if args.checkpoint is not None else ""
    title += f" ({result['epochs']:,} epochs, {result['precision']}, {result['seconds'] / 60:.0f} min)"
    fig = draw_run_curves(
        run_curve_points(curves, held_out=args.held_out), title=title, mark=args.mark, mark_epoch=passed
    )
    try:
        written = export_images({"progress" if args.checkpoint else "curves": fig}, args.run_dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        "wrote " + ", ".join(str(w) for w in written) + f"; training accuracy first > {args.mark:g} at epoch {passed}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
