"""GPU figures for the docs (issue 11 item 5): article epoch, trials/hour of the 200-trial article study, batched gain.

    .venv/bin/python bench/gpu.py [--quick] [--out docs/gpu.md]

Without a CUDA GPU it prints "no CUDA GPU: skipped" and exits 0. On a GPU:
  1. ms per epoch of the article config on all 50,000 images: the article's loop (fp32; TF32 off,
     as the article's PyTorch default), the trainer in fp32 (TF32 on) and bf16, and what
     `--precision auto`'s probe picks; methods interleaved round by round, medians.
  2. trials/hour of the article study (`mnist-study run`, article space, 50,000 images, the CUDA
     default of 3000 epochs, 200 trials) EXTRAPOLATED from scaled-down runs of the real CLI: T trials at
     two epoch counts give a per-trial start-up cost and a per-epoch cost (a straight line), and the
     line is evaluated at 3000 epochs. The table says so.
  3. the batched gain: the same with --batch-trials 4 against 1.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mnist_fc.config import DataConfig, ModelConfig, article_preset  # noqa: E402
from mnist_fc.data import load_split  # noqa: E402
from mnist_fc.model import build_model  # noqa: E402
from mnist_fc.normalize import fit_normalizer  # noqa: E402
from mnist_fc.precision import choose_precision, first_layer_shapes  # noqa: E402
from mnist_fc.trainer import train  # noqa: E402

STUDY_TRIALS = 200
STUDY_EPOCHS = 3000  # study/defaults.py DEFAULT_EPOCHS["cuda"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def article_loop(split, device: torch.device) -> Callable[[int], float]:
    x = torch.from_numpy(fit_normalizer("article", split.x_train)(split.x_train)).to(device)
    y = torch.from_numpy(split.y_train.astype("int64")).to(device)
    model = build_model(ModelConfig(), seed=0).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def run(epochs: int) -> float:
        torch.backends.cuda.matmul.allow_tf32 = False
        sync(device)
        t = time.perf_counter()
        for _ in range(epochs):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sync(device)
        return time.perf_counter() - t

    return run


def trainer_run(split, precision: str, device: torch.device) -> Callable[[int], float]:
    def run(epochs: int) -> float:
        cfg = article_preset(device=device.type, precision=precision, epochs=epochs, eval_every=max(10, epochs))
        return train(cfg, split=split).seconds

    return run


def epoch_table(split, device: torch.device, *, epochs: int, rounds: int) -> list[tuple[str, float]]:
    methods = {
        "article loop (fp32, TF32 off)": article_loop(split, device),
        "trainer fp32 (TF32)": trainer_run(split, "fp32", device),
        "trainer bf16": trainer_run(split, "bf16", device),
    }
    for run in methods.values():
        run(3)
    samples: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(rounds):
        for k, run in methods.items():
            samples[k].append(run(epochs) / epochs)
    return [(k, statistics.median(v)) for k, v in samples.items()]


def cli_study(*, trials: int, epochs: int, batch: int, train_size: int | None, device: str) -> float:
    """Wall seconds of the real `mnist-study run` on a fresh SQLite file."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "study", "run", "--storage", f"sqlite:///{tmp}/g.db", "--trials", str(trials)]
        cmd += ["--epochs", str(epochs), "--device", device, "--sampler", "random", "--no-progress"]
        cmd += ["--batch-trials", str(batch)]
        if train_size:
            cmd += ["--train-size", str(train_size)]
        t = time.perf_counter()
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise SystemExit(f"mnist-study run failed: {r.stderr.strip()[-500:]}")
        return time.perf_counter() - t


def study_rate(
    *, trials: int, epochs: tuple[int, int], batch: int, train_size: int | None, device: str
) -> dict[str, float]:
    """Seconds per trial at two epoch counts -> straight line -> trials/hour at STUDY_EPOCHS."""
    e1, e2 = epochs
    s1 = cli_study(trials=trials, epochs=e1, batch=batch, train_size=train_size, device=device) / trials
    s2 = cli_study(trials=trials, epochs=e2, batch=batch, train_size=train_size, device=device) / trials
    per_epoch = max((s2 - s1) / (e2 - e1), 0.0)
    fixed = max(s1 - per_epoch * e1, 0.0)
    per_trial = fixed + per_epoch * STUDY_EPOCHS
    return {
        "fixed_s": fixed,
        "per_epoch_ms": 1e3 * per_epoch,
        "trial_s": per_trial,
        "trials_per_hour": 3600 / per_trial,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    ap.add_argument("--out", type=Path, help="also write the markdown here")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: smoke-test this script's code")
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU: skipped")
        return
    q = a.quick
    device = torch.device(a.device)
    name = torch.cuda.get_device_name(0) if a.device == "cuda" else "CPU (smoke test, not a GPU figure)"
    split = load_split(DataConfig(train_size=5000 if q else None), seed=0)
    n = len(split.x_train)
    lines = [f"GPU: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}", ""]
    choice = choose_precision(device, first_layer_shapes(n, 784, 100), allow_bf16=True)
    lines += [f"`--precision auto` probe: {choice.header()}", ""]
    rows = epoch_table(split, device, epochs=20 if q else 200, rounds=1 if q else 5)
    ref = rows[0][1]
    lines += [f"| {n} images, article config | ms/epoch | x article loop |", "|---|---|---|"]
    lines += [f"| {k} | {1e3 * s:.2f} | {ref / s:.2f} |" for k, s in rows]
    trials, eps, size = (4, (20, 60), 5000) if q else (8, (100, 400), None)
    lines += [
        "",
        f"Article study ({STUDY_TRIALS} trials x {STUDY_EPOCHS} epochs, {size or 50_000} images): EXTRAPOLATED from "
        f"the real CLI at {trials} trials x {eps[0]} and {eps[1]} epochs (straight line in epochs).",
        "",
        "| variant | start-up s/trial | ms/epoch per trial | s/trial at 3000 epochs | trials/hour | 200 trials, h |",
        "|---|---|---|---|---|---|",
    ]
    rates = {}
    for batch in (1, 4):
        r = study_rate(trials=trials, epochs=eps, batch=batch, train_size=size, device=a.device)
        rates[batch] = r
        lines.append(
            f"| --batch-trials {batch} | {r['fixed_s']:.2f} | {r['per_epoch_ms']:.2f} | {r['trial_s']:.1f} "
            f"| {r['trials_per_hour']:.0f} | {STUDY_TRIALS / r['trials_per_hour']:.2f} |"
        )
    lines += ["", f"Batched gain (4 vs 1): {rates[4]['trials_per_hour'] / rates[1]['trials_per_hour']:.2f}x"]
    text = "\n".join(lines)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
