"""Pilot for the claims designs: does the plateau length (in gradient steps) depend on the training subset size?

Full-batch GD on n images follows the mean gradient over those n images; if the plateau is a property
of the init and the step size (not of which images), its length in steps should barely change between
1,000, 10,000 and 50,000 images, and the designs may use a small subset. Also measures seconds per
epoch by (train size, width), the basis of the experiment's time budget (docs/claims.md).

    flock /tmp/mnist-heavy.lock nice -n 5 .venv/bin/python scripts/claims_pilot.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from mnist_fc.batched import train_batched
from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mnist_fc.data import load_split
from mnist_fc.measures import CHANCE_LOSS, PLATEAU_DELTA, plateau_length
from mnist_fc.trainer import train

LRS = (0.1, 0.3, 1.0, 3.0)
CAP = {1000: 1500, 10000: 1500, None: 600}  # epochs at most; runs stop 5 epochs after leaving the plateau
SEEDS = (0, 1)


def stop_after_plateau(margin: int = 5):
    """Stop a member once the loss is below the plateau threshold (checked every eval_every epochs)."""

    def cb(epoch: int, metrics: dict[str, float]) -> bool:
        return metrics["train_loss"] < CHANCE_LOSS - PLATEAU_DELTA - 0.05 and epoch > margin

    return cb


def pilot_plateaus() -> list[dict]:
    rows = []
    for size in CAP:
        data = DataConfig(train_size=size, validation_size=10_000)
        split = load_split(data, seed=0)
        for seed in SEEDS:
            if size is None and seed:
                continue  # one seed at 50,000 images (that run alone took 211 s here)
            train_cfg = TrainConfig(epochs=CAP[size], eval_every=5, seed=seed, device="cpu")
            cfgs = [
                RunConfig(model=ModelConfig(), data=data, train=dataclasses.replace(train_cfg, lr=lr)) for lr in LRS
            ]
            t0 = time.perf_counter()
            results = train_batched(cfgs, split=split, on_eval=[stop_after_plateau() for _ in cfgs])
            wall = time.perf_counter() - t0
            for lr, r in zip(LRS, results, strict=True):
                p = plateau_length(r.curves.train_loss)
                rows.append(
                    {"train_size": size or 50_000, "seed": seed, "lr": lr, "plateau": p.epochs, "censored": p.censored}
                )
                print(json.dumps(rows[-1]), flush=True)
            print(f"  size {size or 50_000} seed {seed}: {wall:.1f} s", flush=True)
    return rows


def epoch_seconds() -> list[dict]:
    """Seconds per full-batch epoch, one net alone, by train size and first-layer width."""
    rows = []
    for size in (1000, 2000, 5000):
        split = load_split(DataConfig(train_size=size), seed=0)
        for width in (30, 100, 400, 1000):
            cfg = RunConfig(
                model=ModelConfig(n_units_l1=width),
                data=DataConfig(train_size=size),
                train=TrainConfig(epochs=40, eval_every=40, device="cpu"),
            )
            r = train(cfg, split=split)
            rows.append({"train_size": size, "width": width, "s_per_epoch": r.seconds / r.epochs})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "out",
        nargs="?",
        default="/tmp/claims_pilot.json",
        help="where to write the JSON (default /tmp/claims_pilot.json)",
    )
    args = p.parse_args(argv)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    t0 = time.perf_counter()
    timing = epoch_seconds()
    plateaus = pilot_plateaus()
    out = {"plateaus": plateaus, "epoch_seconds": timing, "wall_s": time.perf_counter() - t0}
    Path(args.out).write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(f"pilot done in {out['wall_s']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
