"""How much an ensemble of finished pilots gains on validation: the ceiling of what distilling it into one
network could transfer (issue 14, target 1: one network only, so an ensemble is evidence, never the result).

    python scripts/pilot_ensemble.py runs/accuracy_eleven/pilots/aff15e200_s0 runs/accuracy_eleven/pilots/aff15e200_s1

Reads each pilot's final checkpoint (`pilot.ckpt`, the averaged weights when the pilot used EMA), scores the
10,000 validation images in fp32 (inputs and weights: a bf16 pilot's own scoring rounded its inputs to bf16),
and prints each member's accuracy, the ensemble's (mean of the members' softmax), and how often the members
disagree. The test images are never scored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from mnist_fc.checkpoint import CheckpointError, read
from mnist_fc.config import DataConfig, RunConfig
from mnist_fc.data import load_split
from mnist_fc.model import FCNet
from mnist_fc.normalize import normalizer_for


def member(folder: Path) -> tuple[RunConfig, FCNet]:
    """The pilot's config and its final (averaged, if any) weights, from `folder/pilot.ckpt`."""
    state = read(folder / "pilot.ckpt")
    cfg = RunConfig.from_dict(state["config"])
    if state["epoch"] != cfg.train.epochs:
        raise CheckpointError(f"{folder}: the pilot stopped at epoch {state['epoch']} of {cfg.train.epochs}")
    model = FCNet(cfg.model)
    ema = (state.get("loop") or {}).get("ema")
    model.load_state_dict(ema["model"] if ema else state["model"])
    return cfg, model.eval()


def validation_inputs(data: DataConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of the validation images as the pilot saw them (its normaliser, fitted on its training part), fp32."""
    split = load_split(data, seed=seed)
    x = normalizer_for(data, split.x_train)(split.x_val)
    return torch.from_numpy(x).float(), torch.from_numpy(split.y_val.astype("int64"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pilots", nargs="+", type=Path, help="pilot folders holding pilot.ckpt (two or more)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = p.parse_args(argv)
    if len(args.pilots) < 2:
        p.error("give two or more pilot folders")
    torch.set_num_threads(args.threads)
    try:
        members = [member(f) for f in args.pilots]
    except (OSError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    probs, preds = [], []
    y = None
    inputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # one preparation per distinct data config
    for folder, (cfg, model) in zip(args.pilots, members, strict=True):
        key = repr((cfg.data, cfg.train.seed))
        if key not in inputs:
            inputs[key] = validation_inputs(cfg.data, cfg.train.seed)
        x, y = inputs[key]
        with torch.no_grad():
            z = model(x)
        probs.append(z.softmax(1))
        preds.append(z.argmax(1))
        print(f"{folder}: val acc {(preds[-1] == y).float().mean().item():.4f}")
    assert y is not None
    mean_single = sum((q == y).float().mean().item() for q in preds) / len(preds)
    ens = (torch.stack(probs).mean(0).argmax(1) == y).float().mean().item()
    disagree = int((torch.stack(preds) != preds[0]).any(0).sum())
    all_wrong = int((torch.stack(preds) != y).all(0).sum())
    print(f"mean of members: {mean_single:.4f}")
    print(f"ensemble ({len(preds)} members, mean softmax): {ens:.4f} ({(ens - mean_single) * 1e4:+.0f} images)")
    print(f"images the members disagree on: {disagree}; wrong in every member: {all_wrong}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
