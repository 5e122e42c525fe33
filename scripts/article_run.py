"""The article's own run: its exact network and training on all 60,000 official training images.

784-100-30-10 sigmoid, N(0.01, 0.1) init, (x - 127.5) / 255, full-batch plain gradient descent at
lr 0.1 for 50,000 epochs (mnist_fc.config.article_preset), printing "Epoch, Loss, Acc" as the article
did. The run checkpoints every --checkpoint-every epochs; rerunning the same command after an
interruption resumes from the checkpoint with bit-identical results (on the CPU). Writes
DIR/curves.json (per-epoch training loss/accuracy, every --eval-every epochs the held-in "validation"
metrics) and DIR/result.json (final metrics, test accuracy, epoch at which training accuracy first
passed 99%, machine).

    python scripts/article_run.py --epochs 50000 --precision bf16 --checkpoint runs/article.ckpt --out runs/article

Validation images are part of the training set here (the article trained on all 60,000), so the
"val" numbers are not held out; the test set (10,000 images) is.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
from pathlib import Path

import torch

from mnist_fc.config import ARTICLE_EPOCHS, PRECISIONS, DataConfig, article_preset
from mnist_fc.trainer import fit

ARTICLE_LOG_EVERY = 300  # the article printed every 300 epochs
TRAIN_ACCURACY_MARK = 0.99


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=ARTICLE_EPOCHS, help=f"default {ARTICLE_EPOCHS} (the article's)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto = bf16 on CUDA, fp32 on CPU")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--checkpoint", type=Path, help="checkpoint file: written every --checkpoint-every epochs, resumed")
    p.add_argument("--checkpoint-every", type=int, default=500, help="epochs between checkpoints (default 500)")
    p.add_argument("--eval-every", type=int, default=100, help="epochs between validation/test checks (default 100)")
    p.add_argument("--log-every", type=int, default=ARTICLE_LOG_EVERY, help="epochs between log lines (default 300)")
    p.add_argument("--train-size", type=int, help="a stratified subsample instead of all 60,000 (quick checks)")
    p.add_argument("--out", type=Path, required=True, help="folder for curves.json and result.json")
    args = p.parse_args(argv)
    for name in ("epochs", "checkpoint_every", "eval_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    cfg = article_preset(epochs=args.epochs, precision=args.precision, device=args.device, eval_every=args.eval_every)
    cfg = dataclasses.replace(cfg, data=DataConfig(include_validation=True, train_size=args.train_size))
    try:
        fitted = fit(
            cfg,
            log=lambda line: print(line, flush=True),
            log_every=args.log_every,
            checkpoint=args.checkpoint,
            checkpoint_every=args.checkpoint_every,
        )
    except ValueError as exc:  # bad config or a checkpoint of another run: one line, exit 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    r = fitted.result
    passed = next((i + 1 for i, a in enumerate(r.curves.train_accuracy) if a > TRAIN_ACCURACY_MARK), None)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curves.json").write_text(json.dumps(r.curves.to_dict()))
    summary = {
        **r.summary(),
        "first_epoch_train_accuracy_above_99": passed,
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__},
    }
    (args.out / "result.json").write_text(json.dumps(summary, indent=1))
    print(
        f"done: {r.epochs} epochs, {r.seconds:.0f} s on {r.device} ({r.precision}); train acc {r.train_accuracy:.4f}, "
        f"test acc {r.test_accuracy:.4f}; training accuracy first > 99% at epoch {passed}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
