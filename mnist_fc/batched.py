"""Several full-batch trainings at once on one device, each with results equal to training it alone.

Why it can pay: the first layer (784 -> h1) is almost all of an epoch's work, and every trial
that shares the data streams the same 784-wide input through it, twice per epoch (forward and
weight gradient). Concatenating the k first-layer weight matrices turns 2k GEMMs over the input
into 2 wider ones: the input is read once per pass instead of k times, and narrow layers (h1 = 16)
get a GEMM wide enough to use the machine. Everything after the first layer stays per trial (its
own modules, optimiser, learning rate, BatchNorm, activation), so no padding or masking is needed
and the trials' gradients never mix: the summed loss has disjoint parameter sets.

What must match for trials to share a batch (see `batch_key`): the data (source, size,
normalisation — the input tensor itself), epochs, eval-every, device, precision and determinism.
Dropout draws from the global RNG in an order that depends on the batch, so such trials train alone,
as do configs that need the minibatch loop (mnist_fc/minibatch.py).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence

import torch
import torch.nn.functional as F

from mnist_fc.config import RunConfig, validate
from mnist_fc.data import Split
from mnist_fc.results import EvalCallback, TrainResult
from mnist_fc.runstate import RunState
from mnist_fc.runtime import DeviceData, autocast, enable_tf32, prepare, run_settings, sync


def batch_key(cfg: RunConfig) -> Hashable | None:
    """Trials with equal keys can train in one batch; None = this trial must train alone."""
    if cfg.model.dropout > 0 or cfg.train.uses_minibatch_loop():
        return None
    t = cfg.train
    return (cfg.data, t.epochs, t.eval_every, t.device, t.precision, t.deterministic, t.seed)


def group_by_key(cfgs: Sequence[RunConfig]) -> list[list[int]]:
    """Indices of `cfgs` grouped into trainable batches, in first-seen order; unbatchable ones alone."""
    groups: dict[Hashable, list[int]] = {}
    alone: list[list[int]] = []
    for i, cfg in enumerate(cfgs):
        key = batch_key(cfg)
        if key is None:
            alone.append([i])
        else:
            groups.setdefault(key, []).append(i)
    return list(groups.values()) + alone


def train_batched(
    cfgs: Sequence[RunConfig],
    *,
    split: Split | None = None,
    on_eval: Sequence[EvalCallback | None] | None = None,
) -> list[TrainResult]:
    """Train every config in `cfgs` in one loop; the i-th result equals `train(cfgs[i], ...)` alone.

    All configs must share one `batch_key` (ValueError otherwise). A member that diverges or is
    stopped by its callback leaves the batch at that check; the others go on. `seconds` of each
    result is the wall time of the whole batch up to the member's last epoch (the cost is shared).
    """
    if not cfgs:
        return []
    keys = {batch_key(c) for c in cfgs}
    if None in keys or len(keys) != 1:
        raise ValueError("train_batched needs configs with one common batch key (see mnist_fc.batched.batch_key)")
    callbacks: list[EvalCallback | None] = list(on_eval) if on_eval is not None else [None] * len(cfgs)
    if len(callbacks) != len(cfgs):
        raise ValueError("on_eval needs one callback (or None) per config")
    p = prepare(cfgs[0], split)
    for cfg in cfgs[1:]:
        validate(cfg)  # the members' own model and training values (the shared ones are checked by prepare)
    torch.manual_seed(cfgs[0].train.seed)
    with run_settings(deterministic=cfgs[0].train.deterministic):
        return _fit_batched(cfgs, callbacks, p.data, p.device, p.precision)


def _fit_batched(
    cfgs: Sequence[RunConfig],
    callbacks: list[EvalCallback | None],
    data: DeviceData,
    device: torch.device,
    precision: str,
) -> list[TrainResult]:
    enable_tf32(device)
    runs = [RunState(cfg, device, cb) for cfg, cb in zip(cfgs, callbacks, strict=True)]
    firsts = [run.model.linears()[0] for run in runs]
    rests = [run.model.net[1:] for run in runs]  # everything after the first Linear, per trial
    x, y = data.x_train, data.y_train
    seconds = [0.0] * len(runs)
    sync(device)
    start = time.perf_counter()
    for epoch in range(1, cfgs[0].train.epochs + 1):
        active = [i for i, run in enumerate(runs) if not run.done]
        if not active:
            break
        weight = torch.cat([firsts[i].weight for i in active])
        bias = torch.cat([firsts[i].bias for i in active])
        with autocast(device, precision):
            hidden = F.linear(x, weight, bias).split([firsts[i].out_features for i in active], dim=1)
            logits = [rests[i](h) for i, h in zip(active, hidden, strict=True)]
        losses = [F.cross_entropy(out.float(), y) for out in logits]
        for i in active:
            runs[i].opt.zero_grad(set_to_none=True)
        torch.stack(losses).sum().backward()  # parameter sets are disjoint: each gets its own gradient
        for i, loss, out in zip(active, losses, logits, strict=True):
            runs[i].opt.step()
            runs[i].record(epoch, loss, out, y)
        for i in active:
            runs[i].check(epoch, data, precision)
            if runs[i].done:
                sync(device)
                seconds[i] = time.perf_counter() - start
    sync(device)
    return [run.result(data, device, precision, s) for run, s in zip(runs, seconds, strict=True)]
