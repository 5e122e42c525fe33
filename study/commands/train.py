"""`mnist-study train`: one training run, no Optuna."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from mnist_fc.config import RunConfig, article_preset
from study.commands.args import (
    add_data_args,
    add_model_args,
    add_train_args,
    fraction_float,
    nonneg_int,
    run_config_from_flags,
)
from study.defaults import ARTICLE_LOG_EVERY, default_epochs

EXAMPLE = """example:
  mnist-study train --preset article --epochs 30 --device cpu
  mnist-study train --batchnorm --lr 1 --epochs 200 --train-size 10000 --json
  mnist-study train --activation relu --n-units-l1 1024 --n-units-l2 1024 --init-mean 0 --init-std 1.414 \\
      --init-scaling sqrt_fan_in --normalization global --optimizer adamw --lr 0.002 --batch-size 256 \\
      --schedule onecycle --label-smoothing 0.1 --aug-shift 2 --aug-rotate 10 --aug-scale 0.1 --aug-shear 10 \\
      --epochs 20 --device cpu"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one model (no Optuna), print progress and results",
        description="Train one fully connected network: full-batch gradient descent as in the article, "
        "or minibatches, other optimisers, schedules and augmentation when their flags are given.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--preset",
        choices=["article"],
        help="the article's setup (784-100-30-10 sigmoid, N(0.01,0.1), SGD lr 0.1, 50,000 epochs), on the 50,000 "
        "training images left after the validation hold-out (the article used all 60,000: scripts/article_run.py)",
    )
    add_model_args(p)
    add_data_args(p)
    add_train_args(
        p,
        epochs_help="epochs (default: 50,000 with --preset article; else 300 on CPU, 3000 on CUDA)",
        seed_help="seed for the data subsample, weight init and minibatch order",
    )
    p.add_argument(
        "--ema-decay",
        type=fraction_float,
        help="exponential moving average of the weights, decay per step in [0, 1) (default 0 = off; e.g. 0.999): "
        "validation, test and the result are the average's",
    )
    p.add_argument(
        "--log-every",
        type=nonneg_int,
        help="print 'Epoch, Loss, Acc' every N epochs, 0 = never "
        f"(default: {ARTICLE_LOG_EVERY} with --preset article, else every epochs/10)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with the results at the end")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mnist_fc.data import load_split
    from mnist_fc.trainer import train
    from study.runner import check_config

    base = article_preset() if args.preset == "article" else RunConfig()
    epochs = args.epochs or (base.train.epochs if args.preset else default_epochs(args.device))
    cfg = run_config_from_flags(args, base, epochs=epochs)
    if args.ema_decay is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, ema_decay=args.ema_decay))
    check_config(cfg)  # one line for a value that cannot be trained, or --device cuda without a GPU
    log_every = (
        args.log_every if args.log_every is not None else (ARTICLE_LOG_EVERY if args.preset else max(1, epochs // 10))
    )
    out = sys.stderr if args.json else sys.stdout
    split = load_split(cfg.data, seed=cfg.train.seed)
    if cfg.train.precision == "auto":  # what the probe measured and chose, before a long run starts (and in --json)
        from mnist_fc.device import resolve_device
        from mnist_fc.precision import PrecisionChoice
        from mnist_fc.runtime import decide_precision, probe_rows

        device = resolve_device(cfg.train.device)
        _, probe = decide_precision(cfg, device, rows=probe_rows(cfg, len(split.x_train)))  # cached: train reuses it
        if probe:
            print(PrecisionChoice.from_summary(probe).header(), file=out, flush=True)
    result = train(cfg, split=split, log=lambda line: print(line, file=out, flush=True), log_every=log_every)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        status = "DIVERGED" if result.diverged else "done"
        print(
            f"{status}: {result.epochs} epochs in {result.seconds:.1f} s on {result.device} ({result.precision}); "
            f"train loss {result.train_loss:.4f}, train acc {result.train_accuracy:.4f}, "
            f"val acc {result.val_accuracy:.4f}, test acc {result.test_accuracy:.4f}"
        )
    return 0
