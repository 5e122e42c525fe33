"""Speed of trials, measured side by side in ONE run on one machine (docs/speed.md's tables).

Run it alone on the machine (other heavy jobs skew every number):

    flock /tmp/mnist-heavy.lock .venv/bin/python bench/speed.py

Sections (each prints a table; --quick shrinks every size for a smoke test):
  probe     what `--precision auto`'s probe (mnist_fc/precision.py) measures and picks for the article's
            first layer on this machine (fresh probe into a temporary cache, MNIST_STUDY_CACHE_DIR, that the
            whole bench then uses; its seconds included)
  epoch     ms/epoch of the article config (784-100-30-10 sigmoid, full batch of 50,000, lr 0.1):
            the article's loop re-typed minimal (fp32, nn.Sequential), the project trainer in fp32
            and bf16, the trainer with precision "auto" (the wired path: runtime.prepare probes), the
            bound (the two first-layer GEMMs alone in bf16: forward x @ W1^T and weight gradient
            g^T @ x), optionally torch.compile of the article
            loop, and batched-k (k trials trained as one model) against the same k trained one after
            another, for article-size and small nets. Methods are interleaved round by round and the
            median round is kept, so load from other processes hits all of them alike.
  matmul    GFLOP/s of a 60000x784 @ 784x1024 matmul in fp32 and bf16 (whether bf16 pays on this machine).
  accuracy  final validation accuracy, fp32 vs bf16, n seeds (bf16 must not cost accuracy).
  overhead  share of a trial's time spent outside the training step (metrics + storage), for one
            real Objective trial on a real SQLite file.
  study     trials/hour of a fixed small study through the real CLI: no pruner, median, hyperband,
            --jobs 2, --batch-trials 4; with the best validation accuracy each reached.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mnist_fc import trainer as trainer_mod  # noqa: E402
from mnist_fc.batched import train_batched  # noqa: E402
from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig, article_preset  # noqa: E402
from mnist_fc.data import Split, load_split  # noqa: E402
from mnist_fc.normalize import fit_normalizer  # noqa: E402
from mnist_fc.precision import CACHE_ENV, choose_precision, cpu_flags, device_name, first_layer_shapes  # noqa: E402
from mnist_fc.trainer import train  # noqa: E402


def machine() -> str:
    """CPU model and the flags that decide bf16's speed (AMX tiles, AVX-512 bf16 dot products)."""
    flags = cpu_flags()
    model = device_name(torch.device("cpu"))
    yes = {True: "yes", False: "no"}
    model += f" (AMX: {yes['amx_bf16' in flags]}, avx512_bf16: {yes['avx512_bf16' in flags]})"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{model}, {len(os.sched_getaffinity(0))} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {gpu}, {platform.python_implementation()} {platform.python_version()}"
    )


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


# ---------------------------------------------------------------- epoch ----------------------------------------


def article_loop(split: Split, *, compiled: bool = False) -> Callable[[int], float]:
    """The article's training loop, re-typed minimal: returns run(epochs) -> seconds."""
    norm = fit_normalizer("article", split.x_train)
    x = torch.from_numpy(norm(split.x_train))
    y = torch.from_numpy(split.y_train.astype("int64"))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 100), nn.Sigmoid(), nn.Linear(100, 30), nn.Sigmoid(), nn.Linear(30, 10))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.01, 0.1)
            nn.init.zeros_(m.bias)
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    forward = torch.compile(model) if compiled else model

    def run(epochs: int) -> float:
        start = time.perf_counter()
        for _ in range(epochs):
            out = forward(x)
            loss = loss_fn(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    return run


def bound_run(split: Split) -> Callable[[int], float]:
    """The two first-layer GEMMs of an epoch alone, in bf16: what a bf16 epoch cannot go below."""
    x = torch.randn(len(split.x_train), 784).to(torch.bfloat16)
    w = torch.randn(100, 784).to(torch.bfloat16)
    g = torch.randn(len(split.x_train), 100).to(torch.bfloat16)

    def run(epochs: int) -> float:
        start = time.perf_counter()
        for _ in range(epochs):
            x @ w.t()
            g.t() @ x
        return time.perf_counter() - start

    return run


def bench_probe(split: Split) -> dict:
    """A fresh probe on the article's first layer, bf16 allowed, into the bench's own (empty) cache: the
    same entry that `precision="auto"` in the trainer then reads."""
    shapes = first_layer_shapes(len(split.x_train), 784, 100)
    return choose_precision(torch.device("cpu"), shapes, allow_bf16=True).summary()


def trainer_run(cfg: RunConfig, split: Split) -> Callable[[int], float]:
    """The project's train(); its own `seconds` (training loop incl. bookkeeping, no data setup)."""

    def run(epochs: int) -> float:
        c = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs))
        return train(c, split=split).seconds

    return run


def batched_run(cfgs: list[RunConfig], split: Split) -> Callable[[int], float]:
    def run(epochs: int) -> float:
        cs = [dataclasses.replace(c, train=dataclasses.replace(c.train, epochs=epochs)) for c in cfgs]
        return max(r.seconds for r in train_batched(cs, split=split))

    return run


def sequential_run(cfgs: list[RunConfig], split: Split) -> Callable[[int], float]:
    runs = [trainer_run(c, split) for c in cfgs]
    return lambda epochs: sum(r(epochs) for r in runs)


def timed_rounds(methods: dict[str, Callable[[int], float]], *, epochs: int, rounds: int) -> dict[str, float]:
    """Median seconds per epoch of each method, methods interleaved within every round."""
    for run in methods.values():  # warm-up: allocations, thread pools, compilation
        run(2)
    samples: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, run in methods.items():
            samples[name].append(run(epochs) / epochs)
    return {name: statistics.median(v) for name, v in samples.items()}


def _members(k: int, h1: int, h2: int, precision: str) -> list[RunConfig]:
    """k trials of one shape with different learning rates (as a study's trials differ), in the precision a
    study would have decided once for all its trials (study.auto_precision)."""
    base = article_preset(device="cpu", eval_every=10, precision=precision)
    return [
        dataclasses.replace(
            base,
            model=dataclasses.replace(base.model, n_units_l1=h1, n_units_l2=h2),
            train=dataclasses.replace(base.train, lr=0.1 * (1 + i)),
        )
        for i in range(k)
    ]


def bench_epoch(split: Split, *, epochs: int, rounds: int, k: int, compile_: bool) -> list[dict]:
    art = article_preset(device="cpu", eval_every=10)  # precision "auto", as `mnist-study train --preset article`
    fp32 = dataclasses.replace(art, train=dataclasses.replace(art.train, precision="fp32"))
    bf16 = dataclasses.replace(art, train=dataclasses.replace(art.train, precision="bf16"))
    auto = train(dataclasses.replace(art, train=dataclasses.replace(art.train, epochs=1)), split=split).precision
    methods: dict[str, Callable[[int], float]] = {
        "article loop (fp32, nn.Sequential)": article_loop(split),
        "trainer fp32": trainer_run(fp32, split),
        "trainer bf16": trainer_run(bf16, split),
        f"trainer, precision auto (chose {auto})": trainer_run(art, split),
        "bound: 2 first-layer GEMMs in bf16": bound_run(split),
    }
    if compile_:
        t0 = time.perf_counter()
        methods["article loop + torch.compile"] = article_loop(split, compiled=True)
        methods["article loop + torch.compile"](1)
        print(f"  (torch.compile first call: {time.perf_counter() - t0:.1f} s)", flush=True)
    per_trial: dict[str, int] = {}
    for label, (h1, h2) in {"article-size 100-30": (100, 30), "small 32-16": (32, 16)}.items():
        methods[f"{label}: {k} trials one by one"] = sequential_run(_members(k, h1, h2, auto), split)
        methods[f"{label}: batched-{k}"] = batched_run(_members(k, h1, h2, auto), split)
        per_trial[f"{label}: {k} trials one by one"] = per_trial[f"{label}: batched-{k}"] = k
    sec = timed_rounds(methods, epochs=epochs, rounds=rounds)
    ref = sec["article loop (fp32, nn.Sequential)"]
    rows = []
    for name, s in sec.items():
        k_ = per_trial.get(name, 1)
        rows.append({"method": name, "ms_per_epoch": 1e3 * s, "ms_per_trial_epoch": 1e3 * s / k_, "x": ref * k_ / s})
    return rows


# ---------------------------------------------------------------- matmul ---------------------------------------


def bench_matmul(*, reps: int) -> list[dict]:
    a = torch.randn(60000, 784)
    b = torch.randn(784, 1024)
    flop = 2 * 60000 * 784 * 1024
    rows = []
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x, w = a.to(dtype), b.to(dtype)
        x @ w
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            x @ w
            times.append(time.perf_counter() - t)
        rows.append({"dtype": name, "gflops": flop / statistics.median(times) / 1e9})
    return rows


# ---------------------------------------------------------------- accuracy -------------------------------------


def bench_accuracy(split: Split, *, seeds: int, epochs: int) -> list[dict]:
    cfg = RunConfig(
        model=ModelConfig(batchnorm=True),
        data=DataConfig(normalization="per_pixel"),
        train=TrainConfig(device="cpu", epochs=epochs, lr=1.0, eval_every=max(1, epochs // 10)),
    )
    rows = []
    for precision in ("fp32", "bf16"):
        accs = []
        for seed in range(seeds):
            c = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision=precision, seed=seed))
            accs.append(train(c, split=split).val_accuracy)
        rows.append({"precision": precision, "val_accuracy": accs, "mean": statistics.mean(accs)})
    return rows


# ---------------------------------------------------------------- overhead -------------------------------------


def bench_overhead(split: Split, *, epochs: int, trials: int) -> dict:
    """Time every bookkeeping piece of real Objective trials by wrapping it; the rest is the training step."""
    import optuna

    from study import objective as objective_mod
    from study.storage import curve_store, open_storage

    spent = dict.fromkeys(("record", "check", "evaluate", "result", "finish", "prepare", "total_train"), 0.0)

    def timed(owner: object, attr: str, key: str) -> None:
        original = getattr(owner, attr)

        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                spent[key] += time.perf_counter() - t

        setattr(owner, attr, wrapper)

    from mnist_fc import fullbatch as fullbatch_mod
    from mnist_fc import runstate as runstate_mod

    timed(trainer_mod.RunState, "record", "record")  # per-epoch loss + argmax into device tensors
    timed(trainer_mod.RunState, "check", "check")  # every K: divergence check, validation, trial.report
    timed(runstate_mod, "evaluate", "evaluate")  # the forward passes on val/train/test inside check and result
    timed(trainer_mod.RunState, "result", "result")  # curves to host, final train/test metrics
    timed(objective_mod.Objective, "finish", "finish")  # user attrs + one curve row in SQLite
    timed(objective_mod, "train", "total_train")  # whole train() call
    timed(fullbatch_mod, "prepare", "prepare")  # data normalisation + copy to device, and the auto decision

    base = RunConfig(data=DataConfig(train_size=len(split.x_train)), train=TrainConfig(device="cpu", epochs=epochs))

    def space(trial: optuna.Trial, b: RunConfig) -> RunConfig:
        return dataclasses.replace(b, train=dataclasses.replace(b.train, lr=trial.suggest_float("lr", 0.05, 1.0)))

    with tempfile.TemporaryDirectory() as tmp:
        storage = open_storage(f"sqlite:///{tmp}/o.db")
        study = optuna.create_study(storage=storage, direction="maximize")
        obj = objective_mod.Objective(space=space, base=base, split=split, curves=curve_store(storage))
        t0 = time.perf_counter()
        study.optimize(obj, n_trials=trials)
        total = time.perf_counter() - t0
    book = spent["record"] + spent["check"] + spent["result"] + spent["finish"]
    return {
        "trials": trials,
        "epochs": epochs,
        "train_size": len(split.x_train),
        "trial_seconds": total / trials,
        "bookkeeping_share": book / total,
        "parts_share": {k: v / total for k, v in spent.items() if k != "total_train"},
        "optuna_and_sampler_share": (total - spent["total_train"] - spent["finish"]) / total,
    }


# ---------------------------------------------------------------- study ----------------------------------------


# --jobs 2 as Optuna's n_jobs=2 THREADS in one process (one torch thread each), for comparison with
# the CLI's worker processes: the same `run` command with study.optimize patched to n_jobs=2.
THREADS_VARIANT = """
import sys, optuna, torch
from study.cli import build_parser
optimize = optuna.Study.optimize
optuna.Study.optimize = lambda self, *a, **kw: optimize(self, *a, **{**kw, "n_jobs": 2})
torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)
args = build_parser().parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def bench_study(*, trials: int, epochs: int, train_size: int) -> list[dict]:
    import optuna

    from study.storage import open_storage

    variants = {
        "no pruner": [],
        "--pruner median": ["--pruner", "median"],
        "--pruner hyperband": ["--pruner", "hyperband"],
        "--jobs 2 (processes)": ["--jobs", "2"],
        "n_jobs=2 threads (not a CLI flag)": ["THREADS"],
        "--batch-trials 4": ["--batch-trials", "4"],
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in variants.items():
            db = Path(tmp) / f"{len(rows)}.db"
            threads = extra == ["THREADS"]
            launcher = ["-c", THREADS_VARIANT] if threads else ["-m", "study"]
            extra = [] if threads else extra
            cmd = [sys.executable, *launcher, "run", "--storage", f"sqlite:///{db}", "--trials", str(trials)]
            cmd += ["--epochs", str(epochs), "--train-size", str(train_size), "--device", "cpu", "--no-progress"]
            t0 = time.perf_counter()
            r = subprocess.run([*cmd, *extra], cwd=REPO, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - t0
            if r.returncode != 0:
                raise SystemExit(f"study variant {name!r} failed: {r.stderr.strip()}")
            study = optuna.load_study(study_name="article", storage=open_storage(f"sqlite:///{db}", create=False))
            done = [t for t in study.trials if t.value is not None]
            states = [t.state.name for t in study.trials]
            rows.append(
                {
                    "variant": name,
                    "seconds": wall,
                    "trials_per_hour": 3600 * trials / wall,
                    "best_val_accuracy": max((t.value for t in done), default=float("nan")),
                    "pruned": states.count("PRUNED"),
                    "complete": states.count("COMPLETE"),
                }
            )
            print(f"  {name}: {wall:.1f} s", flush=True)
    ref = rows[0]["seconds"]
    for row in rows:
        row["x"] = ref / row["seconds"]
    return rows


# ---------------------------------------------------------------- main -----------------------------------------


def table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(c[1] for c in cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    body = ["| " + " | ".join(format(r[c[0]], c[2]) for c in cols) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, numbers meaningless")
    p.add_argument("--sections", default="probe,epoch,matmul,accuracy,overhead,study")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True, help="time torch.compile too")
    p.add_argument("--json", type=Path, help="also write all results here")
    a = p.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    q = a.quick
    sections = set(a.sections.split(","))
    print(f"machine: {machine()}\nload average at start: {load()}\n", flush=True)
    out: dict = {"machine": machine()}
    split = load_split(DataConfig(train_size=2000 if q else None), seed=0)
    cache = tempfile.TemporaryDirectory(prefix="speed-probe-")  # a fresh probe, used by every section
    os.environ[CACHE_ENV] = cache.name
    if "probe" in sections or "epoch" in sections:
        r = bench_probe(split)
        out["probe"] = r
        print("## `--precision auto` probe (fresh cache), article first layer")
        for s in r["shapes"]:
            print(
                f"{s['rows']}x{s['in_features']}x{s['out_features']} (timed at {s['probe_rows']} rows): "
                f"fp32 {s['fp32_gflops']:.0f} GFLOP/s, bf16 {s['bf16_gflops']:.0f} GFLOP/s"
            )
        print(f"choice: {r['precision']} ({r['reason']}); probe took {r['seconds']:.2f} s\n", flush=True)
    if "epoch" in sections:
        k = 4
        rows = bench_epoch(split, epochs=2 if q else 10, rounds=1 if q else 3, k=k, compile_=a.compile and not q)
        out["epoch"] = rows
        print(f"## ms per epoch, article config, full batch of {len(split.x_train)} (median of interleaved rounds)")
        print(
            table(
                rows,
                [
                    ("method", "method", "s"),
                    ("ms_per_epoch", "ms/epoch", ".1f"),
                    ("ms_per_trial_epoch", "ms per trial-epoch", ".1f"),
                    ("x", "speed vs article loop (per trial)", ".2f"),
                ],
            ),
            "\n",
            flush=True,
        )
    if "matmul" in sections:
        rows = bench_matmul(reps=2 if q else 5)
        out["matmul"] = rows
        print("## 60000x784 @ 784x1024 matmul")
        print(table(rows, [("dtype", "dtype", "s"), ("gflops", "GFLOP/s", ".0f")]), "\n", flush=True)
    if "accuracy" in sections:
        acc_split = load_split(DataConfig(train_size=500 if q else 10_000), seed=0)
        rows = bench_accuracy(acc_split, seeds=2 if q else 3, epochs=5 if q else 150)
        out["accuracy"] = rows
        for r in rows:
            r["all"] = ", ".join(f"{v:.4f}" for v in r["val_accuracy"])
        print("## final validation accuracy, fp32 vs bf16 (784-100-30-10 + BatchNorm, per_pixel, lr 1)")
        print(table(rows, [("precision", "precision", "s"), ("all", "per seed", "s"), ("mean", "mean", ".4f")]))
        print(flush=True)
    if "overhead" in sections:
        ov_split = load_split(DataConfig(train_size=500 if q else 10_000), seed=0)
        r = bench_overhead(ov_split, epochs=10 if q else 300, trials=1 if q else 2)
        out["overhead"] = r
        print(f"## bookkeeping share of a trial ({r['epochs']} epochs, train size {r['train_size']}, SQLite)")
        share = 100 * r["bookkeeping_share"]
        print(f"trial time {r['trial_seconds']:.2f} s; bookkeeping (metrics + storage) {share:.2f}%")
        for key, v in r["parts_share"].items():
            print(f"  {key:8s} {100 * v:6.2f}%")
        print(f"  Optuna + sampler outside train(): {100 * r['optuna_and_sampler_share']:.2f}%")
        print("  (record, check, result, finish make up the bookkeeping; evaluate is the part of check and result")
        print("   spent in validation/final forward passes; prepare = data normalisation, kept apart)\n", flush=True)
    if "study" in sections:
        trials, epochs, size = (3, 5, 300) if q else (16, 100, 5000)
        print(f"## fixed small study: article space, {trials} trials, {epochs} epochs, train size {size}", flush=True)
        rows = bench_study(trials=trials, epochs=epochs, train_size=size)
        out["study"] = rows
        cols = [
            ("variant", "variant", "s"),
            ("seconds", "seconds", ".1f"),
            ("trials_per_hour", "trials/hour", ".0f"),
            ("x", "speed-up", ".2f"),
            ("best_val_accuracy", "best val acc", ".4f"),
            ("complete", "complete", "d"),
            ("pruned", "pruned", "d"),
        ]
        print(table(rows, cols), "\n", flush=True)
    print(f"load average at end: {load()}")
    cache.cleanup()
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
