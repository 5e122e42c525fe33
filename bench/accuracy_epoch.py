"""Seconds per training epoch of the shipped accuracy model's config: fp32 vs bf16, side by side.

Usage: .venv/bin/python bench/accuracy_epoch.py [--model models/accuracy.json] [--epochs 1] [--threads N]
           [--n-units-l1 W1 --n-units-l2 W2] [--elastic-alpha A] [--batch-size B]

Trains the saved config on all 60,000 images for a few epochs in each precision (same seed) and
prints s/epoch and the bf16/fp32 ratio, with the CPU or GPU it ran on. Each precision first runs one
untimed epoch (thread pools, kernel selection), then the timed runs alternate fp32, bf16, fp32, bf16
(`--rounds`), and each precision's best round counts: a noisy machine slows one round, not one side.
Run it under `flock /tmp/mnist-heavy.lock` on a shared machine.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from mnist_fc.config import RunConfig
from mnist_fc.data import load_split
from mnist_fc.device import resolve_device
from mnist_fc.export import load_meta
from mnist_fc.minibatch import fit
from mnist_fc.precision import device_name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/accuracy.json")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--n-units-l1", type=int, help="override the first hidden width")
    p.add_argument("--n-units-l2", type=int, help="override the second hidden width")
    p.add_argument("--elastic-alpha", type=float, help="override the elastic distortion strength (pixels)")
    p.add_argument("--batch-size", type=int, help="override the minibatch size")
    p.add_argument("--rounds", type=int, default=2, help="timed runs per precision, alternating (default 2)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = RunConfig.from_dict(load_meta(args.model)["config"])
    model = {k: v for k, v in (("n_units_l1", args.n_units_l1), ("n_units_l2", args.n_units_l2)) if v}
    train = {k: v for k, v in (("aug_elastic_alpha", args.elastic_alpha), ("batch_size", args.batch_size)) if v}
    cfg = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, **model), train=dataclasses.replace(cfg.train, **train)
    )
    m, t = cfg.model, cfg.train
    print(f"{m.n_units_l1}-{m.n_units_l2} {m.activation}, batch {t.batch_size}, elastic alpha {t.aug_elastic_alpha}")
    split = load_split(cfg.data, seed=0)
    device = resolve_device(cfg.train.device)
    n, threads = len(split.x_train), torch.get_num_threads()
    print(f"on {device_name(device)} ({device.type}), torch {torch.__version__}, {threads} threads, {n} images")

    def seconds_per_epoch(precision: str, epochs: int) -> float:
        c = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train.for_epochs(epochs), precision=precision))
        r = fit(c, split=split).result
        return r.seconds / r.epochs

    for precision in ("fp32", "bf16"):
        seconds_per_epoch(precision, 1)  # warm-up, untimed: neither side pays the first call's costs
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(max(1, args.rounds)):
        for precision in ("fp32", "bf16"):
            times[precision].append(seconds_per_epoch(precision, args.epochs))
            print(f"{precision}: {times[precision][-1]:.2f} s/epoch", flush=True)
    best = {k: min(v) for k, v in times.items()}
    print(f"best of {len(times['fp32'])}: fp32 {best['fp32']:.2f} s/epoch, bf16 {best['bf16']:.2f} s/epoch")
    print(f"bf16 / fp32 time ratio: {best['bf16'] / best['fp32']:.2f} (on {device_name(device)})")


if __name__ == "__main__":
    main()
