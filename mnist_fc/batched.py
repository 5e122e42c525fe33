"""Several full-batch trainings at once on one device, each with results equal to training it alone.

Why it can pay: the first layer (784 -> h1) is almost all of an epoch's work, and every trial
that shares the data streams the same 784-wide input through it, twice per epoch (forward and
weight gradient). Concatenating the k first-layer weight matrices turns 2k GEMMs over the input
into 2 wider ones: the input is read once per pass instead of k times, and narrow layers (h1 = 16)
get a GEMM wide enough to use the machine. Everything after the first layer stays per trial (its
own modules, optimiser, learning rate, BatchNorm, activation), so no padding or masking is needed
and the trials' gradients never mix: the summed loss has disjoint parameter sets. Validation runs
for all members in one pass too (one concatenated first-layer GEMM per chunk, one host sync).
What it cannot do is remove FLOPs: where one trial's GEMMs already run at the machine's rate (fp32
article-size nets on a CPU), GEMMs are ~80% of a trial-epoch and the gain stays near 1.3x
(docs/speed.md section 1, "Batched designed sweep").

What must match for trials to share a batch (see `batch_key`): the data (source, size; in bf16
and "auto" also the normalisation), epochs, eval-every, device, precision and determinism.
Precision "auto" is decided once per batch, by a probe of the concatenated first layer (the GEMM
that runs), so a member's result equals training it alone with `precision` set to the batch's choice. In fp32, members
with different input normalisations share one tensor of raw pixels: each folds its (x - s) / c into
its first layer's weight and bias, equal to training alone within float rounding.
Dropout draws from the global RNG in an order that depends on the batch, so such trials train alone,
as do configs that need the minibatch loop (mnist_fc/minibatch.py).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from mnist_fc.config import N_PIXELS, DataConfig, RunConfig, TrainConfig, validate
from mnist_fc.data import Split
from mnist_fc.device import resolve_device, resolve_precision
from mnist_fc.errors import ConfigError
from mnist_fc.loss import full_batch_ce_members
from mnist_fc.normalize import normalizer_for
from mnist_fc.results import EvalCallback, TrainResult
from mnist_fc.runstate import RunState
from mnist_fc.runtime import EVAL_CHUNK, DeviceData, autocast, prepare, run_settings, sync


def batch_key(cfg: RunConfig) -> Hashable | None:
    """Trials with equal keys can train in one batch; None = this trial must train alone."""
    if cfg.model.dropout > 0 or cfg.train.uses_minibatch_loop():
        return None
    t = cfg.train
    # In fp32 the input normalisation is folded into each member's first layer (see _folded_first_layer),
    # so members with different normalisations share one input tensor; bf16 keeps it in the key, because
    # the fold's cancellation (x W/c - (s/c) W) would cost bf16 digits that training alone keeps.
    data = _with_input_affine(cfg.data, "*") if _resolves_to_fp32(t) else cfg.data
    # "auto" is decided once per batch (one probe over all members' widths: their first layers are one
    # GEMM), so only members that may decide alike (same allow_bf16_auto) share a batch.
    auto = t.allow_bf16_auto if t.precision == "auto" else None
    return (data, t.epochs, t.eval_every, t.device, t.precision, auto, t.deterministic, t.seed)


def _with_input_affine(data: DataConfig, normalization: str) -> DataConfig:
    """`data` with the fields that only change the input's affine transform (foldable into the first
    layer) replaced: `normalization` and the identity shift/scale."""
    return dataclasses.replace(data, normalization=normalization, input_shift=0.0, input_scale=1.0)


def _input_affine(cfg: RunConfig) -> tuple[str, float, float]:
    return (cfg.data.normalization, cfg.data.input_shift, cfg.data.input_scale)


def _resolves_to_fp32(t: TrainConfig) -> bool:
    """True only when fp32 is certain before training: "auto" may measure bf16 faster (or not, e.g.
    under load), so it keeps the strict key, and a group's one probe can never split it."""
    try:
        return resolve_precision(t.precision, resolve_device(t.device)) == "fp32"
    except ValueError:  # e.g. cuda asked for but absent: train_batched reports it; keep the strict key here
        return False


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


# What batch_key's tuple holds, for saying which one two configs differ in.
_KEY_FIELDS = ("data", "epochs", "eval_every", "device", "precision", "allow_bf16_auto", "deterministic", "seed")


def _check_one_batch(cfgs: Sequence[RunConfig]) -> None:
    """ConfigError naming the config, and the field, that keeps `cfgs` from training as one batch."""
    first = batch_key(cfgs[0])
    for i, cfg in enumerate(cfgs):
        key = batch_key(cfg)
        if key is None:
            raise ConfigError(
                f"config {i} cannot train in a batch (dropout or minibatch training): train it alone with fit()"
            )
        if key != first:
            assert isinstance(key, tuple) and isinstance(first, tuple)
            field = next(n for n, a, b in zip(_KEY_FIELDS, first, key, strict=True) if a != b)
            raise ConfigError(f"configs 0 and {i} differ in {field}, which a batch shares: train them apart")


def train_batched(
    cfgs: Sequence[RunConfig],
    *,
    split: Split | None = None,
    on_eval: Sequence[EvalCallback | None] | None = None,
) -> list[TrainResult]:
    """Train every config in `cfgs` in one loop; the i-th result equals `train(cfgs[i], ...)` alone
    (with precision "auto": alone at the batch's measured choice, `result.precision`).

    All configs must share one `batch_key` (ConfigError otherwise, naming what differs). A member that diverges or is
    stopped by its callback leaves the batch at that check; the others go on. `seconds` of each
    result is the wall time of the whole batch up to the member's last epoch (the cost is shared).
    """
    if not cfgs:
        return []
    for cfg in cfgs:
        validate(cfg)  # before batch_key reads them
    _check_one_batch(cfgs)
    callbacks: list[EvalCallback | None] = list(on_eval) if on_eval is not None else [None] * len(cfgs)
    if len(callbacks) != len(cfgs):
        raise ConfigError(f"on_eval needs one callback (or None) per config: {len(callbacks)} for {len(cfgs)}")
    fold = len({_input_affine(c) for c in cfgs}) > 1
    widths = [c.model.n_units_l1 for c in cfgs]  # "auto" probes the concatenated first layer, once
    if fold:  # one tensor of raw pixels for all; each member normalises inside its first layer
        raw = _with_input_affine(cfgs[0].data, "raw")
        p = prepare(dataclasses.replace(cfgs[0], data=raw), split, widths=widths)
    else:
        p = prepare(cfgs[0], split, widths=widths)
    torch.manual_seed(cfgs[0].train.seed)
    with run_settings(deterministic=cfgs[0].train.deterministic, device=p.device):
        runs = [RunState(cfg, p.device, cb) for cfg, cb in zip(cfgs, callbacks, strict=True)]
        if fold:
            for run in runs:
                nz = normalizer_for(run.cfg.data, p.split.x_train)
                shift = torch.as_tensor(nz.shift, device=p.device).expand(N_PIXELS)
                scale = torch.as_tensor(nz.scale, device=p.device).expand(N_PIXELS)
                run.input_affine = (shift, scale)
        return _fit_batched(runs, p.data, p.device, p.precision, p.probe)


def _folded_first_layer(run: RunState, lin: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """The first layer's (weight, bias) acting on raw inputs: with x' = (x - s) / c,
    x' W^T + b = x (W / c)^T + (b - W (s / c)); gradients flow back to W and b through autograd."""
    if run.input_affine is None:
        return lin.weight, lin.bias
    shift, scale = run.input_affine
    weight = lin.weight / scale
    return weight, lin.bias - weight @ shift


def _first_layers(
    runs: list[RunState], firsts: list[torch.nn.Linear], x: torch.Tensor, members: list[int]
) -> tuple[torch.Tensor, ...]:
    """The members' first-layer outputs on `x` from one GEMM, one (n, h_i) tensor per member.

    Computed as W x^T, shape (sum of widths, n), and returned transposed: each member's block is then
    dense in memory (a column slice of x W^T would be a strided view, slower in every elementwise op
    after it and copied by the next GEMM; measured ~5% of a batched epoch of 1,000 images)."""
    folded = [_folded_first_layer(runs[i], firsts[i]) for i in members]
    weight = torch.cat([w for w, _ in folded])
    bias = torch.cat([b for _, b in folded])
    return torch.addmm(bias[:, None], weight, x.t()).t().split([firsts[i].out_features for i in members], dim=1)


@torch.no_grad()
def _evaluate_members(
    runs: list[RunState],
    firsts: list[torch.nn.Linear],
    rests: list[torch.nn.Module],
    members: list[int],
    x: torch.Tensor,
    y: torch.Tensor,
    precision: str,
    chunk: int = EVAL_CHUNK,
) -> dict[int, tuple[float, float]]:
    """(mean cross-entropy, accuracy) of each member on (x, y), in eval mode, as `runtime.evaluate`
    computes them alone, but with all members' first layers in one GEMM per chunk and one host sync
    for all: validation is a fifth of a trial-epoch at 1,000 training images and eval-every 20."""
    modes = [runs[i].model.training for i in members]
    for i in members:
        runs[i].model.eval()
    loss_sum = torch.zeros((len(members),), device=x.device, dtype=torch.float64)
    correct = torch.zeros((len(members),), device=x.device, dtype=torch.int64)
    with autocast(x.device, precision):
        for start in range(0, len(x), chunk):
            xb, yb = x[start : start + chunk], y[start : start + chunk]
            hidden = _first_layers(runs, firsts, xb, members)
            for j, (i, h) in enumerate(zip(members, hidden, strict=True)):
                logits = rests[i](h).float()
                loss_sum[j] += F.cross_entropy(logits, yb, reduction="sum").double()  # as evaluate: val_loss
                correct[j] += (logits.argmax(1) == yb).sum()
    for i, mode in zip(members, modes, strict=True):
        runs[i].model.train(mode)
    n = max(len(x), 1)
    return {i: (s / n, c / n) for i, s, c in zip(members, loss_sum.tolist(), correct.tolist(), strict=True)}


def _fit_batched(
    runs: list[RunState], data: DeviceData, device: torch.device, precision: str, probe: dict[str, Any] | None
) -> list[TrainResult]:
    firsts = [run.model.linears()[0] for run in runs]
    rests = [run.model.net[1:] for run in runs]  # everything after the first Linear, per trial
    x, y = data.x_train, data.y_train
    seconds = [0.0] * len(runs)
    sync(device)
    start = time.perf_counter()
    for epoch in range(1, runs[0].cfg.train.epochs + 1):
        active = [i for i, run in enumerate(runs) if not run.done]
        if not active:
            break
        with autocast(device, precision):
            hidden = _first_layers(runs, firsts, x, active)
            logits = [rests[i](h) for i, h in zip(active, hidden, strict=True)]
        losses = full_batch_ce_members(logits, y)  # each = full_batch_ce(out, y), the loss training alone uses
        for i in active:
            runs[i].opt.zero_grad(set_to_none=True)
        torch.stack(losses).sum().backward()  # parameter sets are disjoint: each gets its own gradient
        for i, loss, out in zip(active, losses, logits, strict=True):
            runs[i].opt.step()
            runs[i].record(epoch, loss, out, y)
        # Validation of every due member whose loss is finite (check marks the others diverged): one pass.
        due = [i for i in active if runs[i].due(epoch)]
        finite = torch.stack([runs[i].losses[epoch - 1] for i in due]).isfinite().tolist() if due else []
        evaluated = [i for i, ok in zip(due, finite, strict=True) if ok]
        val = _evaluate_members(runs, firsts, rests, evaluated, data.x_val, data.y_val, precision) if evaluated else {}
        for i in active:
            runs[i].check(epoch, data, precision, val=val.get(i))
            if runs[i].done:
                sync(device)
                seconds[i] = time.perf_counter() - start
    sync(device)
    return [run.result(data, device, precision, s, probe) for run, s in zip(runs, seconds, strict=True)]
