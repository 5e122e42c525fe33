"""bf16 vs fp32 on the article's *dynamics* (issue 11 item 2): does bf16 change any measure beyond seed noise?

    flock /tmp/mnist-heavy.lock nice -n 5 .venv/bin/python scripts/bf16_parity.py --out docs/bf16_parity.json

Cells: the article config (784-100-30-10 sigmoid, N(0.01, 0.1), (x - 127.5)/255, full-batch SGD),
lr in {0.1, 1, 10}, BatchNorm off/on, train_size 1000, seeds 0-2, both precisions (same seed =
same subsample and same initial weights, so the two precisions are *paired*). Per run:
  - plateau: steps until train loss < min(loss0, ln 10) - 0.1 (mnist_fc.measures.plateau_length)
  - jump: first-step loss change, loss[1] - loss[0] (the curves hold pre-step losses)
  - rises: fraction of epochs in the last 20% whose loss rose (a simple oscillation measure);
    rises_1pct: the same counting only rises by more than 1% of the loss (ignores rounding jitter)
  - osc: the project's detrended oscillation measure (mnist_fc.measures.oscillation)
  - final train loss and validation accuracy
Noise rule: a measure changes "beyond seed noise" in a cell when the mean paired difference
(bf16 - fp32) exceeds 2 standard errors of the seed-to-seed spread (pooled sd over both
precisions / sqrt(seeds)). Three seeds make this a coarse screen, stated as such.
Runs use 1 torch thread by default: on a shared 2-core machine, 2 threads made a 1000-image epoch
~10x slower (threads waiting for each other), and the numbers compared here do not depend on speed.
Then the article config at lr 0.1 on a bigger subset (default 10,000 images, 2000 epochs),
fp32 vs bf16: max abs loss difference along the curve, plateau exit epoch of each.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_fc.config import DataConfig, RunConfig, article_preset
from mnist_fc.data import Split, load_split
from mnist_fc.measures import OSCILLATION_TAIL, oscillation, plateau_length
from mnist_fc.trainer import train

MEASURES = ("plateau", "jump", "rises", "rises_1pct", "osc", "final_loss", "val_acc")


def cell_config(*, lr: float, bn: bool, precision: str, seed: int, epochs: int, train_size: int) -> RunConfig:
    cfg = article_preset(device="cpu", precision=precision, seed=seed, lr=lr, epochs=epochs, eval_every=epochs)
    return dataclasses.replace(
        cfg,
        model=dataclasses.replace(cfg.model, batchnorm=bn),
        data=dataclasses.replace(cfg.data, train_size=train_size),
    )


def rises(loss: list[float], tail: float = OSCILLATION_TAIL, *, rel: float = 0.0) -> float:
    """Fraction of tail epochs whose loss rose (by more than `rel` of its value)."""
    w = np.asarray(loss[-max(2, round(len(loss) * tail)) :], dtype=np.float64)
    return float(np.mean(np.diff(w) > rel * w[:-1])) if np.all(np.isfinite(w)) else float("nan")


def measure(loss: list[float], val_acc: float) -> dict[str, float]:
    p = plateau_length(loss)
    osc = oscillation(loss)
    return {
        "plateau": float(p.epochs),
        "plateau_censored": p.censored,
        "jump": loss[1] - loss[0] if len(loss) > 1 else float("nan"),
        "rises": rises(loss),
        "rises_1pct": rises(loss, rel=0.01),
        "osc": float("nan") if osc is None else osc,
        "final_loss": loss[-1],
        "val_acc": val_acc,
    }


def verdict(fp: list[float], bf: list[float]) -> dict[str, float | bool]:
    """Paired difference vs seed noise (see module docstring)."""
    d = [b - f for f, b in zip(fp, bf, strict=True)]
    if not all(math.isfinite(v) for v in d):
        return {"diff": float("nan"), "se": float("nan"), "beyond_noise": False}
    sds = [statistics.stdev(v) for v in (fp, bf) if len(v) > 1]
    pooled = math.sqrt(statistics.mean(s * s for s in sds)) if sds else 0.0
    se = pooled / math.sqrt(len(d))
    diff = statistics.mean(d)
    return {"diff": diff, "se": se, "beyond_noise": abs(diff) > 2 * se and abs(diff) > 1e-12}


def _permuted(split: Split, seed: int) -> Split:
    perm = np.random.default_rng(1000 + seed).permutation(len(split.x_train))
    return dataclasses.replace(split, x_train=split.x_train[perm], y_train=split.y_train[perm])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--lrs", default="0.1,1,10")
    ap.add_argument("--train-size", type=int, default=1000)
    ap.add_argument("--big-size", type=int, default=10_000, help="0 = skip the bigger-subset comparison")
    ap.add_argument("--big-epochs", type=int, default=2000)
    ap.add_argument("--bn", default="off,on", help="BatchNorm settings: off,on")
    ap.add_argument("--reference", action="store_true", help="also fp32 on row-permuted data (rounding reference)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: immune to a busy shared machine)")
    ap.add_argument("--out", type=Path, default=Path("bf16_parity.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    out: dict = {"args": {k: str(v) for k, v in vars(a).items()}, "cells": [], "big": None}
    splits = {s: load_split(DataConfig(train_size=a.train_size), seed=s) for s in range(a.seeds)}
    # The rounding reference: fp32 on the same images in another row order (the full-batch sums then add
    # in another order: a change of rounding only). bf16 vs fp32 is judged against fp32 vs this.
    permuted = {s: _permuted(sp, s) for s, sp in splits.items()}
    kinds = ["fp32", "bf16"] + (["fp32_perm"] if a.reference else [])
    for lr in (float(v) for v in a.lrs.split(",")):
        for bn in (b == "on" for b in a.bn.split(",")):
            runs: dict[str, list[dict]] = {p: [] for p in kinds}
            max_curve_diff = dict.fromkeys(kinds, 0.0)
            for seed in range(a.seeds):
                curves = {}
                for kind in kinds:
                    precision = kind.split("_")[0]
                    cfg = cell_config(
                        lr=lr, bn=bn, precision=precision, seed=seed, epochs=a.epochs, train_size=a.train_size
                    )
                    r = train(cfg, split=permuted[seed] if kind == "fp32_perm" else splits[seed])
                    curves[kind] = np.asarray(r.curves.train_loss)
                    runs[kind].append(measure(r.curves.train_loss, r.val_accuracy))
                for other in kinds[1:]:
                    n = min(len(curves["fp32"]), len(curves[other]))
                    gap = np.abs(curves["fp32"][:n] - curves[other][:n])
                    max_curve_diff[other] = max(max_curve_diff[other], float(np.nanmax(gap)) if n else float("nan"))
            cell = {"lr": lr, "batchnorm": bn, "runs": runs, "max_abs_loss_diff": max_curve_diff["bf16"]}
            if a.reference:
                cell["max_abs_loss_diff_fp32_perm"] = max_curve_diff["fp32_perm"]
                cell["verdict_fp32_perm"] = {
                    m: verdict([r[m] for r in runs["fp32"]], [r[m] for r in runs["fp32_perm"]]) for m in MEASURES
                }
            cell["verdict"] = {m: verdict([r[m] for r in runs["fp32"]], [r[m] for r in runs["bf16"]]) for m in MEASURES}
            out["cells"].append(cell)
            flags = [m for m, v in cell["verdict"].items() if v["beyond_noise"]]
            print(
                f"lr {lr:g} bn {bn}: plateau fp32 {[r['plateau'] for r in runs['fp32']]} "
                f"bf16 {[r['plateau'] for r in runs['bf16']]}; beyond noise: {flags or 'none'} "
                + (f"fp32 row-permuted {[r['plateau'] for r in runs['fp32_perm']]} " if a.reference else "")
                + f"max |loss diff| {max_curve_diff} "
                f"({time.perf_counter() - t_start:.0f} s)",
                flush=True,
            )
            a.out.write_text(json.dumps(out, indent=1))
    if a.big_size:
        big_split = load_split(DataConfig(train_size=a.big_size), seed=0)
        curves, big = {}, {}
        for precision in ("fp32", "bf16"):
            cfg = cell_config(lr=0.1, bn=False, precision=precision, seed=0, epochs=a.big_epochs, train_size=a.big_size)
            r = train(cfg, split=big_split)
            curves[precision] = np.asarray(r.curves.train_loss)
            big[precision] = {**measure(r.curves.train_loss, r.val_accuracy), "seconds": r.seconds}
        n = min(len(c) for c in curves.values())
        gap = np.abs(curves["fp32"][:n] - curves["bf16"][:n])
        big["max_abs_loss_diff"] = float(np.nanmax(gap))
        big["epoch_of_max_diff"] = int(np.nanargmax(gap))
        big["every_100"] = {p: c[::100].tolist() for p, c in curves.items()}
        out["big"] = big
        print(
            f"big ({a.big_size} images, {a.big_epochs} epochs, lr 0.1): plateau fp32 {big['fp32']['plateau']:.0f} "
            f"bf16 {big['bf16']['plateau']:.0f}; max |loss diff| {big['max_abs_loss_diff']:.4f} "
            f"at epoch {big['epoch_of_max_diff']}"
            f"; s fp32 {big['fp32']['seconds']:.0f} bf16 {big['bf16']['seconds']:.0f}",
            flush=True,
        )
    out["seconds"] = time.perf_counter() - t_start
    a.out.write_text(json.dumps(out, indent=1))
    print(f"done in {out['seconds']:.0f} s -> {a.out}")


if __name__ == "__main__":
    main()
