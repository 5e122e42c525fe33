"""Trials/hour of a designed sweep of article-size nets, batched vs one at a time, side by side.

The sweep is a design's cells through the real machinery: `study.designs.design_config` builds each
trial's config (by default the lr_oscillation design: 5 learning rates x seeds, 1,000 images), its
precision is "auto" as a design study would run it (that design forbids bf16, so fp32), and the cells
of one seed train either one by one (`mnist_fc.trainer.train`) or as one batched model
(`mnist_fc.batched.train_batched`, what `--batch-trials 5` does). Seed by seed the two methods
alternate (which one goes first alternates too), so load from other processes hits both alike.
Prints the machine, trials/hour of each, their ratio (issue 11's target: >= 2x) and the largest
|difference| between a trial's batched and alone training-loss curves (equal within float rounding).

    flock /tmp/mnist-heavy.lock .venv/bin/python bench/batched_sweep.py [--seeds 3] [--epochs 300]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mnist_fc.batched import group_by_key, train_batched  # noqa: E402
from mnist_fc.config import DataConfig  # noqa: E402
from mnist_fc.data import load_split  # noqa: E402
from mnist_fc.precision import cpu_flags, device_name  # noqa: E402
from mnist_fc.trainer import train  # noqa: E402
from study.designs import DESIGNS_BY_NAME, design_config, expand  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--design", default="lr_oscillation", choices=sorted(DESIGNS_BY_NAME))
    p.add_argument("--seeds", type=int, default=3, help="replicate seeds to time (the design's first N)")
    p.add_argument("--epochs", type=int, default=300, help="epochs per trial (the design's own count is larger)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    design = DESIGNS_BY_NAME[a.design]
    flags = cpu_flags()
    print(
        f"machine: {device_name(torch.device('cpu'))} (AMX: {'amx_bf16' in flags}, avx512_bf16: "
        f"{'avx512_bf16' in flags}), torch {torch.__version__}, {torch.get_num_threads()} threads",
        flush=True,
    )
    cells = [c for c in expand(design) if c["seed"] in design.seeds[: a.seeds]]
    cfgs = [design_config(design, c) for c in cells]
    cfgs = [dataclasses.replace(c, train=dataclasses.replace(c.train, epochs=a.epochs)) for c in cfgs]
    split = load_split(dataclasses.replace(DataConfig(), train_size=design.train_size), seed=design.data_seed)
    groups = group_by_key(cfgs)
    print(
        f"{design.name}: {len(cfgs)} trials ({len(groups)} batches of {[len(g) for g in groups]}), "
        f"{a.epochs} epochs, {len(split.x_train)} images",
        flush=True,
    )
    train(dataclasses.replace(cfgs[0], train=dataclasses.replace(cfgs[0].train, epochs=2)), split=split)  # warm-up
    wall = {"one at a time": 0.0, "batched": 0.0}
    per_group: dict[str, list[float]] = {k: [] for k in wall}
    max_diff: dict[float, float] = {}  # by learning rate: large rates amplify rounding (docs/speed.md section 3)
    precisions = set()
    for n, group in enumerate(groups):
        members = [cfgs[i] for i in group]
        order = ["one at a time", "batched"] if n % 2 == 0 else ["batched", "one at a time"]
        results = {}
        for method in order:
            t0 = time.perf_counter()
            if method == "batched":
                results[method] = train_batched(members, split=split)
            else:
                results[method] = [train(c, split=split) for c in members]
            spent = time.perf_counter() - t0
            wall[method] += spent
            per_group[method].append(spent)
        for cfg, alone, bat in zip(members, results["one at a time"], results["batched"], strict=True):
            precisions |= {alone.precision, bat.precision}
            diffs = [abs(x - y) for x, y in zip(alone.curves.train_loss, bat.curves.train_loss, strict=True)]
            max_diff[cfg.train.lr] = max(max_diff.get(cfg.train.lr, 0.0), *diffs)
        print(f"  batch {n}: " + ", ".join(f"{m} {per_group[m][-1]:.1f} s" for m in order), flush=True)
    print("\n| method | seconds (wall, all trials) | median s per batch | trials/hour |")
    print("|---|---|---|---|")
    for method, s in wall.items():
        print(f"| {method} | {s:.1f} | {statistics.median(per_group[method]):.2f} | {3600 * len(cfgs) / s:.0f} |")
    print(f"\nbatched / one at a time, trials/hour: {wall['one at a time'] / wall['batched']:.2f}x")
    print(f"precision: {', '.join(sorted(precisions))}; max |train-loss difference| batched vs alone, by lr:")
    print("  " + ", ".join(f"lr {lr:g}: {d:.1e}" for lr, d in sorted(max_diff.items())))


if __name__ == "__main__":
    main()
