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

`--profile E` instead profiles one seed's cells for E epochs (torch.profiler), alone and batched: time
per trial-epoch split into the first layer's GEMMs, the other layers' GEMMs, the per-trial bookkeeping
(RunState.check = validation every eval_every epochs + host sync; RunState.record; final metrics) and
everything else (elementwise ops, loss, autograd and optimiser overhead), and the top ops.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mnist_fc import batched  # noqa: E402
from mnist_fc.batched import group_by_key, train_batched  # noqa: E402
from mnist_fc.config import DataConfig, RunConfig  # noqa: E402
from mnist_fc.data import Split, load_split  # noqa: E402
from mnist_fc.loss import full_batch_ce  # noqa: E402
from mnist_fc.precision import cpu_flags, device_name  # noqa: E402
from mnist_fc.results import TrainResult  # noqa: E402
from mnist_fc.runstate import RunState  # noqa: E402
from mnist_fc.runtime import DeviceData, autocast  # noqa: E402
from mnist_fc.trainer import train  # noqa: E402
from study.designs import DESIGNS_BY_NAME, design_config, expand  # noqa: E402


def _fit_batched_before(
    runs: list[RunState], data: DeviceData, device: torch.device, precision: str, probe: dict[str, Any] | None
) -> list[TrainResult]:
    """mnist_fc.batched._fit_batched before the change that this bench measured (kept for comparison):
    the first layer as x W^T split into strided column views, each member validated alone."""
    firsts = [run.model.linears()[0] for run in runs]
    rests = [run.model.net[1:] for run in runs]
    x, y = data.x_train, data.y_train
    seconds = [0.0] * len(runs)
    start = time.perf_counter()
    for epoch in range(1, runs[0].cfg.train.epochs + 1):
        active = [i for i, run in enumerate(runs) if not run.done]
        if not active:
            break
        folded = [batched._folded_first_layer(runs[i], firsts[i]) for i in active]
        weight, bias = torch.cat([w for w, _ in folded]), torch.cat([b for _, b in folded])
        with autocast(device, precision):
            hidden = F.linear(x, weight, bias).split([firsts[i].out_features for i in active], dim=1)
            logits = [rests[i](h) for i, h in zip(active, hidden, strict=True)]
        losses = [full_batch_ce(out, y) for out in logits]
        for i in active:
            runs[i].opt.zero_grad(set_to_none=True)
        torch.stack(losses).sum().backward()
        for i, loss, out in zip(active, losses, logits, strict=True):
            runs[i].opt.step()
            runs[i].record(epoch, loss, out, y)
        for i in active:
            runs[i].check(epoch, data, precision)
            if runs[i].done:
                seconds[i] = time.perf_counter() - start
    return [run.result(data, device, precision, s, probe) for run, s in zip(runs, seconds, strict=True)]


def train_batched_before(members: list[RunConfig], split: Split) -> list[TrainResult]:
    current = batched._fit_batched
    batched._fit_batched = _fit_batched_before  # type: ignore[assignment]
    try:
        return train_batched(members, split=split)
    finally:
        batched._fit_batched = current  # type: ignore[assignment]


METHODS: dict[str, Callable[[list[RunConfig], Split], list[TrainResult]]] = {
    "one at a time": lambda members, split: [train(c, split=split) for c in members],
    "batched": lambda members, split: train_batched(members, split=split),
    "batched, before": train_batched_before,
}

LABELS = (
    "RunState.check (validation + sync)",
    "RunState.record",
    "RunState.result (final metrics)",
    "batched validation (_evaluate_members)",
)


def _labelled(method: Callable[..., Any], label: str) -> Callable[..., Any]:
    def wrapped(*args: Any, **kw: Any) -> Any:
        with torch.profiler.record_function(label):
            return method(*args, **kw)

    return wrapped


def _best_time(f: Callable[[], object], reps: int = 7) -> float:
    f()
    best = math.inf
    for _ in range(reps):  # fastest of reps: load from other processes only adds time
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def gemm_rates(rows: int, widths: list[int]) -> str:
    """GFLOP/s of the first layer's forward and weight-gradient GEMMs (fp32), one trial's width vs the
    batch's concatenated width: batching can only gain where the wide GEMM runs at a higher rate."""
    x = torch.randn(rows, 784)
    out = []
    for h in (widths[0], sum(widths)):
        w, g = torch.randn(h, 784), torch.randn(rows, h)
        gflop = 2 * rows * 784 * h / 1e9
        fwd, wgrad = _best_time(lambda: x @ w.t()), _best_time(lambda: g.t() @ x)  # noqa: B023
        out.append(f"width {h}: forward {gflop / fwd:.0f}, wgrad {gflop / wgrad:.0f}")
    return f"{rows} rows x 784: " + "; ".join(out) + " GFLOP/s"


def profile_cells(members: list[RunConfig], split: Split) -> None:
    """Where a trial-epoch's time goes, alone vs batched (the profiler adds ~us per op to both)."""
    from torch.profiler import ProfilerActivity, profile

    for name, label in zip(("check", "record", "result"), LABELS[:3], strict=True):
        setattr(RunState, name, _labelled(getattr(RunState, name), label))
    batched._evaluate_members = _labelled(batched._evaluate_members, LABELS[-1])  # type: ignore[assignment]
    k, epochs = len(members), members[0].train.epochs
    runs = {name: functools.partial(method, members, split) for name, method in METHODS.items()}
    widths = [c.model.n_units_l1 for c in members]
    print("first-layer GEMM rates (fp32, fastest of 7):")
    for rows in (len(split.x_train), len(split.x_val)):
        print("  " + gemm_rates(rows, widths), flush=True)
    for method, run in runs.items():
        run()  # warm-up
        t0 = time.perf_counter()
        run()
        plain = time.perf_counter() - t0
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            run()
        total = sum(e.self_cpu_time_total for e in prof.key_averages())
        first = other_gemm = 0.0
        for e in prof.key_averages(group_by_input_shape=True):
            if e.key in ("aten::mm", "aten::addmm"):  # a first-layer GEMM has the 784 input columns in a shape
                if any(784 in s for s in e.input_shapes if s):
                    first += e.self_cpu_time_total
                else:
                    other_gemm += e.self_cpu_time_total
        inclusive = {e.key: e.cpu_time_total for e in prof.key_averages() if e.key in LABELS}
        per = 1 / (k * epochs)
        print(
            f"\n### {method}: {k} trials x {epochs} epochs; wall without profiler {plain:.2f} s = "
            f"{1e3 * plain * per:.2f} ms per trial-epoch; profiled self-CPU {total / 1e6:.2f} s"
        )
        print("| part | ms per trial-epoch | share |\n|---|---|---|")
        rows = {"first-layer GEMMs (784 columns: training, validation, test)": first, "other GEMMs": other_gemm}
        rows |= {f"{lab} (inclusive)": inclusive.get(lab, 0.0) for lab in LABELS}
        for part, us in rows.items():
            print(f"| {part} | {us * per / 1e3:.3f} | {us / total:.1%} |")
        print(f"| all (self-CPU sum) | {total * per / 1e3:.3f} | 100% |")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=40))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--design", default="lr_oscillation", choices=sorted(DESIGNS_BY_NAME))
    p.add_argument("--seeds", type=int, default=3, help="replicate seeds to time (the design's first N)")
    p.add_argument("--epochs", type=int, default=300, help="epochs per trial (the design's own count is larger)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--profile", type=int, default=0, metavar="E", help="profile one seed's cells for E epochs")
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
    if a.profile:
        members = [dataclasses.replace(c, train=dataclasses.replace(c.train, epochs=a.profile)) for c in cfgs]
        profile_cells([members[i] for i in groups[0]], split)
        return
    print(
        f"{design.name}: {len(cfgs)} trials ({len(groups)} batches of {[len(g) for g in groups]}), "
        f"{a.epochs} epochs, {len(split.x_train)} images",
        flush=True,
    )
    train(dataclasses.replace(cfgs[0], train=dataclasses.replace(cfgs[0].train, epochs=2)), split=split)  # warm-up
    wall = dict.fromkeys(METHODS, 0.0)
    per_group: dict[str, list[float]] = {k: [] for k in wall}
    max_diff: dict[float, float] = {}  # by learning rate: large rates amplify rounding (docs/speed.md section 3)
    precisions = set()
    for n, group in enumerate(groups):
        members = [cfgs[i] for i in group]
        names = list(METHODS)
        order = names[n % len(names) :] + names[: n % len(names)]  # who goes first rotates
        results = {}
        for method in order:
            t0 = time.perf_counter()
            results[method] = METHODS[method](members, split)
            spent = time.perf_counter() - t0
            wall[method] += spent
            per_group[method].append(spent)
        for cfg, alone, bat in zip(members, results["one at a time"], results["batched"], strict=True):
            precisions |= {alone.precision, bat.precision}
            diffs = [abs(x - y) for x, y in zip(alone.curves.train_loss, bat.curves.train_loss, strict=True)]
            diffs += [abs(x - y) for x, y in zip(alone.curves.val_loss, bat.curves.val_loss, strict=True)]
            max_diff[cfg.train.lr] = max(max_diff.get(cfg.train.lr, 0.0), *diffs)
        print(f"  batch {n}: " + ", ".join(f"{m} {per_group[m][-1]:.1f} s" for m in order), flush=True)
    print("\n| method | seconds (wall, all trials) | median s per batch | trials/hour |")
    print("|---|---|---|---|")
    for method, s in wall.items():
        print(f"| {method} | {s:.1f} | {statistics.median(per_group[method]):.2f} | {3600 * len(cfgs) / s:.0f} |")
    alone = "one at a time"
    for method in [m for m in wall if m != alone]:
        ratios = [a / b for a, b in zip(per_group[alone], per_group[method], strict=True)]
        print(
            f"\n{method} / one at a time, trials/hour: {wall[alone] / wall[method]:.2f}x over all trials, "
            f"median over batches {statistics.median(ratios):.2f}x (per batch {', '.join(f'{r:.2f}' for r in ratios)})"
        )
    print(f"precision: {', '.join(sorted(precisions))}; max |training or validation loss difference| batched vs alone:")
    print("  " + ", ".join(f"lr {lr:g}: {d:.1e}" for lr, d in sorted(max_diff.items())))


if __name__ == "__main__":
    main()
