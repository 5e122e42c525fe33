"""Optimisers and per-step learning-rate schedules named in a TrainConfig."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from mnist_fc.config import TrainConfig

ONECYCLE_DEFAULT_RISE = 0.3  # fraction of the run spent raising the lr when warmup_epochs is 0


def build_optimizer(params: Iterable[torch.nn.Parameter], t: TrainConfig) -> torch.optim.Optimizer:
    """sgd (optional momentum: the article uses none), nesterov, adam (L2 decay) or adamw (decoupled decay)."""
    params = list(params)
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    if t.optimizer == "nesterov":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, nesterov=True, weight_decay=t.weight_decay)
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    raise ValueError(f"unknown optimizer {t.optimizer!r}")


def lr_factor(step: int, *, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the base lr at optimiser step `step` (0-based) of `total`.

    cosine: linear warm-up over `warmup` steps, then cosine decay to 0.
    onecycle: cosine rise from lr/25 to lr over `warmup` steps (30% if 0), then cosine decay
    to lr/1e4, as in Smith's one-cycle policy (torch's OneCycleLR defaults, without momentum cycling).
    """
    if schedule == "none":
        return 1.0
    if schedule == "cosine":
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if schedule == "onecycle":
        rise = warmup if warmup > 0 else max(1, round(ONECYCLE_DEFAULT_RISE * total))
        start, end = 1 / 25, 1 / 25 / 1e4
        if step < rise:
            p = step / rise
            return start + (1 - start) * 0.5 * (1 - math.cos(math.pi * p))
        p = min(1.0, (step - rise) / max(1, total - rise))
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * p))
    raise ValueError(f"unknown schedule {schedule!r}")


def build_scheduler(
    opt: torch.optim.Optimizer, t: TrainConfig, *, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler to step once per optimiser step."""
    total = t.epochs * steps_per_epoch
    # A warm-up asked for lasts at least one step: round() made a short one 0 steps, which cosine dropped and
    # onecycle read as "default: 30% of the run". Halves round up (round() gave 2.5 epochs 2 steps).
    warmup = max(1, math.floor(t.warmup_epochs * steps_per_epoch + 0.5)) if t.warmup_epochs > 0 else 0
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(step, total=total, warmup=warmup, schedule=t.schedule)
    )
