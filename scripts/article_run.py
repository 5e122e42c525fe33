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

The same long, resumable run also serves the article-*space* accuracy runs (docs/accuracy.md): the
model and learning-rate flags override the article's values one by one (sigmoid and plain full-batch
gradient descent stay), `--hold-out-validation` trains on the 50,000 training images only so that
choices are made on the 10,000 validation images, and `--no-test` leaves every test figure out of the
output (selection runs must not see it).

    python scripts/article_run.py --batchnorm --lr 10 --hold-out-validation --no-test --out runs/x
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
from pathlib import Path

import torch

from mnist_fc.config import (
    ARTICLE_EPOCHS,
    INIT_SCALINGS,
    NORMALIZATIONS,
    PRECISIONS,
    DataConfig,
    RunConfig,
    article_preset,
)
from mnist_fc.precision import cpu_flags, device_name
from mnist_fc.trainer import fit

MODEL_FLAGS = {  # flag -> (type, help)
    "n-units-l1": (int, "first hidden layer width (article: 100)"),
    "n-units-l2": (int, "second hidden layer width (article: 30)"),
    "init-mean": (float, "weight init mean (article: 0.01)"),
    "init-std": (float, "weight init std (article: 0.1)"),
}
ARTICLE_LOG_EVERY = 300  # the article printed every 300 epochs
TRAIN_ACCURACY_MARK = 0.99


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=ARTICLE_EPOCHS, help=f"default {ARTICLE_EPOCHS} (the article's)")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto = the faster of fp32 and bf16 as measured on this machine (cached probe)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--checkpoint", type=Path, help="checkpoint file: written every --checkpoint-every epochs, resumed")
    p.add_argument("--checkpoint-every", type=int, default=500, help="epochs between checkpoints (default 500)")
    p.add_argument("--eval-every", type=int, default=100, help="epochs between validation/test checks (default 100)")
    p.add_argument("--log-every", type=int, default=ARTICLE_LOG_EVERY, help="epochs between log lines (default 300)")
    p.add_argument("--train-size", type=int, help="a stratified subsample instead of all 60,000 (quick checks)")
    p.add_argument("--out", type=Path, required=True, help="folder for curves.json and result.json")
    g = p.add_argument_group("article-space overrides (default: the article's value)")
    for flag, (kind, text) in MODEL_FLAGS.items():
        g.add_argument(f"--{flag}", type=kind, help=text)
    g.add_argument("--init-scaling", choices=INIT_SCALINGS)
    g.add_argument("--init-distribution", choices=("normal", "uniform"))
    g.add_argument("--batchnorm", action="store_true", help="BatchNorm1d after each hidden Linear")
    g.add_argument("--normalization", choices=NORMALIZATIONS)
    g.add_argument("--lr", type=float, help="learning rate (article: 0.1)")
    p.add_argument("--hold-out-validation", action="store_true", help="train on the 50,000 training images only")
    p.add_argument("--no-test", action="store_true", help="leave test metrics out of the output (selection runs)")
    args = p.parse_args(argv)
    for name in ("epochs", "checkpoint_every", "eval_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def config(args: argparse.Namespace) -> RunConfig:
    """The article's preset with the given overrides; untouched flags keep the article's values."""
    cfg = article_preset(epochs=args.epochs, precision=args.precision, device=args.device, eval_every=args.eval_every)
    model_overrides = {
        name.replace("-", "_"): getattr(args, name.replace("-", "_"))
        for name in [*MODEL_FLAGS, "init-scaling", "init-distribution"]
    }
    model = dataclasses.replace(cfg.model, **{k: v for k, v in model_overrides.items() if v is not None})
    model = dataclasses.replace(model, batchnorm=args.batchnorm or model.batchnorm)
    data = DataConfig(include_validation=not args.hold_out_validation, train_size=args.train_size)
    if args.normalization is not None:
        data = dataclasses.replace(data, normalization=args.normalization)
    train = cfg.train if args.lr is None else dataclasses.replace(cfg.train, lr=args.lr)
    return dataclasses.replace(cfg, model=model, data=data, train=train)


def _finished(checkpoint: Path | None, cfg: RunConfig) -> bool:
    """Whether `checkpoint` already holds this whole run (a rerun then trains nothing)."""
    if checkpoint is None or not checkpoint.exists():
        return False
    from mnist_fc.checkpoint import CheckpointError, read

    try:
        return int(read(checkpoint)["epoch"]) >= cfg.train.epochs
    except (CheckpointError, KeyError, TypeError, ValueError):
        return False  # fit() names what is wrong with it


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    cfg = config(args)
    finished_before = _finished(args.checkpoint, cfg)
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
    shown = {k: v for k, v in r.summary().items() if not (args.no_test and k.startswith("test"))}
    summary = {
        **shown,
        "first_epoch_train_accuracy_above_99": passed,
        "machine": {
            "device": device_name(torch.device(r.device)),
            "amx": "amx_bf16" in cpu_flags(),
            "avx512_bf16": "avx512_bf16" in cpu_flags(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "command": "python scripts/article_run.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if finished_before and (args.out / "result.json").exists():
        # Nothing was trained now: the record keeps the machine, command and seconds of the run that trained it.
        print(f"{args.checkpoint} was already finished: {args.out / 'result.json'} kept as the training run wrote it")
    else:
        (args.out / "result.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    held_out = f"test acc {r.test_accuracy:.4f}" if not args.no_test else f"val acc {r.val_accuracy:.4f}"
    print(
        f"done: {r.epochs} epochs, {r.seconds:.0f} s on {r.device} ({r.precision}); train acc {r.train_accuracy:.4f}, "
        f"{held_out}; training accuracy first > 99% at epoch {passed}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
