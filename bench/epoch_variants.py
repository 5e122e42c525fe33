"""Where the bf16 full-batch epoch spends its time, and candidate epoch steps timed side by side (issue 11 item 3).

    flock /tmp/mnist-heavy.lock .venv/bin/python bench/epoch_variants.py [--quick] [--profile] [--compile]

Article config (784-100-30-10 sigmoid, N(0.01, 0.1), (x - 127.5)/255, SGD lr 0.1), full batch of
50,000 images. Every variant starts from the same weights; methods are interleaved round by round
and the median round is kept. Variants:
  trainer bf16      the trainer's step re-typed line for line (mnist_fc/trainer.py _fit + RunState.record):
                    autocast forward, F.cross_entropy(logits.float()), autograd, torch.optim.SGD, argmax
  trainer, no acc   the same without the per-epoch argmax (what the accuracy bookkeeping costs)
  trainer ... old CE / full_batch_ce
                    the step before and after mnist_fc/loss.py: F.cross_entropy(logits.float()) (kept
                    here for comparison) vs full_batch_ce, logsumexp - gather in fp32 (log_softmax over
                    10 classes is a slow kernel on CPU), what fullbatch.py and batched.py now use;
                    `--only CE` times just these (bf16 and fp32) with the article loop and the bound
  manual bf16       hand-written forward + backward, no autograd: bf16 activations as autocast has them,
                    fp32 master weights updated in place, fused softmax-CE gradient, the fused
                    sigmoid_backward kernel, argmax kept
  manual bf16 L1    the same but only the first layer's two GEMMs in bf16, everything after in fp32
  trainer fp32 ...  the trainer's fp32 step, and with the first layer run in 16,384-row chunks (fp32
                    GEMMs of 50,000 rows run at about half their rate on this EPYC)
  compiled          torch.compile of the trainer's forward + loss (autograd and SGD as before)
  bound             the two first-layer GEMMs alone (x @ W1^T and g^T @ x) in bf16
  article fp32      the article's loop (nn.Sequential, fp32) for the ratio the issue asks about
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_fc.config import DataConfig, ModelConfig
from mnist_fc.data import load_split
from mnist_fc.loss import full_batch_ce
from mnist_fc.model import FCNet, build_model
from mnist_fc.normalize import fit_normalizer
from mnist_fc.precision import cpu_flags, device_name

LR = 0.1
Step = Callable[[int], None]  # step(epoch index) runs one full-batch gradient step


class TrainerStep:
    """The trainer's epoch, line for line (autocast + autograd + optim.SGD + record); `lse`: the loss is
    mnist_fc.loss.full_batch_ce (the trainer now), else F.cross_entropy (the trainer before it)."""

    def __init__(
        self,
        model: FCNet,
        x: torch.Tensor,
        y: torch.Tensor,
        epochs: int,
        *,
        accuracy: bool = True,
        lse: bool = False,
        chunk: int = 0,
        bf16: bool = True,
    ) -> None:
        self.model, self.x, self.y, self.accuracy, self.lse, self.bf16 = model, x, y, accuracy, lse, bf16
        self.opt = torch.optim.SGD(model.parameters(), lr=LR)
        self.losses = torch.full((epochs,), float("nan"))
        self.correct = torch.zeros((epochs,), dtype=torch.int64)
        self.forward: Callable[[torch.Tensor], torch.Tensor] = model
        if chunk:  # first layer in row chunks (autograd then sums the chunks' weight gradients)
            first, rest = model.net[0], model.net[1:]
            self.forward = lambda x: rest(torch.cat([first(xc) for xc in x.split(chunk)]))

    def __call__(self, i: int) -> None:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.forward(self.x)
        if self.lse:  # the trainer's loss now: logsumexp - gather in fp32
            loss = full_batch_ce(logits, self.y)
        else:  # the old step's loss, kept for comparison
            loss = F.cross_entropy(logits.float(), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.losses[i] = loss.detach()
        if self.accuracy:
            self.correct[i] = (logits.detach().argmax(1) == self.y).sum()


class CompiledStep(TrainerStep):
    """torch.compile of the forward + loss; autograd and SGD unchanged."""

    def __init__(self, model: FCNet, x: torch.Tensor, y: torch.Tensor, epochs: int) -> None:
        super().__init__(model, x, y, epochs)

        def fwd_loss(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
                logits = model(x)
            return F.cross_entropy(logits.float(), y), logits

        self.fwd_loss = torch.compile(fwd_loss)

    def __call__(self, i: int) -> None:
        loss, logits = self.fwd_loss(self.x, self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.losses[i] = loss.detach()
        self.correct[i] = (logits.detach().argmax(1) == self.y).sum()


class ManualStep:
    """Hand-written forward + backward of Linear-sigmoid-Linear-sigmoid-Linear-CE (no BatchNorm, no dropout).

    Same arithmetic as autocast (bf16 GEMM inputs, bf16 activations, fp32 logits/loss, fp32
    master weights) unless `tail_fp32`, where only the first layer's GEMMs run in bf16.
    """

    def __init__(self, model: FCNet, x: torch.Tensor, y: torch.Tensor, epochs: int, *, tail_fp32: bool = False):
        self.params = [(lin.weight.data, lin.bias.data) for lin in model.linears()]
        self.x, self.y, self.n = x, y, len(x)
        self.rows = torch.arange(self.n)
        self.tail = torch.float32 if tail_fp32 else torch.bfloat16
        self.losses = torch.full((epochs,), float("nan"))
        self.correct = torch.zeros((epochs,), dtype=torch.int64)

    @torch.no_grad()
    def __call__(self, i: int) -> None:
        (w1, b1), (w2, b2), (w3, b3) = self.params
        bf, tail, x, y = torch.bfloat16, self.tail, self.x, self.y
        w1c, w2c, w3c = w1.to(bf), w2.to(tail), w3.to(tail)
        h1 = torch.addmm(b1.to(bf), x, w1c.t()).sigmoid_()  # (n, 100) bf16: the big forward GEMM
        h1t = h1.to(tail)
        h2 = torch.addmm(b2.to(tail), h1t, w2c.t()).sigmoid_()
        logits = torch.addmm(b3.to(tail), h2, w3c.t()).float()
        lse = logits.logsumexp(1, keepdim=True)
        self.losses[i] = (lse.squeeze(1) - logits.gather(1, y[:, None]).squeeze(1)).mean()
        self.correct[i] = (logits.argmax(1) == y).sum()
        g3 = logits.sub_(lse).exp_()  # softmax, in place of the logits
        g3[self.rows, y] -= 1.0
        g3.mul_(1.0 / self.n)  # d loss / d logits, fp32
        g3t = g3.to(tail)
        gw3, gb3 = g3t.t() @ h2, g3.sum(0)
        g2 = torch.ops.aten.sigmoid_backward(g3t @ w3c, h2)  # fused dh * s(1-s)
        gw2, gb2 = g2.t() @ h1t, g2.sum(0, dtype=torch.float32)
        g1 = torch.ops.aten.sigmoid_backward((g2 @ w2c).to(bf), h1)
        gw1, gb1 = g1.t() @ x, g1.sum(0, dtype=torch.float32)  # the big weight-gradient GEMM
        for (w, b), gw, gb in zip(self.params, (gw1, gw2, gw3), (gb1, gb2, gb3), strict=True):
            w.sub_(gw.float(), alpha=LR)
            b.sub_(gb.float(), alpha=LR)


class BoundStep:
    """Only the two first-layer GEMMs in bf16: what an epoch cannot go below on this path."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self.w = torch.randn(100, 784).to(torch.bfloat16)
        self.g = torch.randn(len(x), 100).to(torch.bfloat16)

    def __call__(self, i: int) -> None:
        self.x @ self.w.t()
        self.g.t() @ self.x


class ArticleStep:
    """The article's loop (fp32 nn.Sequential, nn.CrossEntropyLoss, SGD)."""

    def __init__(self, model: FCNet, x: torch.Tensor, y: torch.Tensor) -> None:
        self.model, self.x, self.y = model, x, y
        self.opt = torch.optim.SGD(model.parameters(), lr=LR)

    def __call__(self, i: int) -> None:
        loss = F.cross_entropy(self.model(self.x), self.y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()


def rounds(methods: dict[str, Step], *, epochs: int, n_rounds: int) -> dict[str, float]:
    """Median seconds per epoch, methods interleaved within every round (after 2 warm-up steps each)."""
    for step in methods.values():
        step(0)
        step(1)
    samples: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(n_rounds):
        for name, step in methods.items():
            t = time.perf_counter()
            for i in range(epochs):
                step(i)
            samples[name].append((time.perf_counter() - t) / epochs)
    return {k: statistics.median(v) for k, v in samples.items()}


def _median_time(f: Callable[[], object], reps: int) -> float:
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _layer_rates(x: torch.Tensor, reps: int, chunk: int = 16384) -> list[float]:
    """GFLOP/s of forward, wgrad, chunked forward, chunked wgrad (fp32 accumulation of the chunks)."""
    rows, dt = len(x), x.dtype
    w = torch.randn(100, 784).to(dt)
    g = torch.randn(rows, 100).to(dt)
    out = torch.empty(rows, 100, dtype=dt)
    acc = torch.empty(100, 784)

    def fwd_chunks() -> None:
        for i in range(0, rows, chunk):
            torch.mm(x[i : i + chunk], w.t(), out=out[i : i + chunk])

    def wgrad_chunks() -> None:
        acc.zero_()
        for i in range(0, rows, chunk):
            acc.add_(g[i : i + chunk].t() @ x[i : i + chunk])

    gflop = 2 * rows * 784 * 100 / 1e9
    return [gflop / _median_time(f, reps) for f in (lambda: x @ w.t(), lambda: g.t() @ x, fwd_chunks, wgrad_chunks)]


def gemm_rates(x32: torch.Tensor, reps: int) -> None:
    """GFLOP/s of the first layer's two GEMMs by row count and dtype, and with the batch cut in row chunks."""
    print(f"\n## first-layer GEMM rates (GFLOP/s, median of {reps}), 784 -> 100")
    print("| rows | dtype | forward x @ W^T | wgrad g^T @ x | forward in 16384-row chunks | wgrad in chunks |")
    print("|---|---|---|---|---|---|")
    n = len(x32)
    for rows in sorted({min(8192, n), min(16384, n), n}):
        for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            r = _layer_rates(x32[:rows].to(dt), reps)
            print(f"| {rows} | {name} | " + " | ".join(f"{v:.0f}" for v in r) + " |", flush=True)


def profile(step: Step, epochs: int, label: str) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof_

    step(0)
    with prof_(activities=[ProfilerActivity.CPU]) as p:
        for i in range(epochs):
            step(i)
    print(f"### profile: {label}, {epochs} epochs")
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=18, max_name_column_width=45))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2,000 images, 1 round: a smoke test, numbers meaningless")
    ap.add_argument("--epochs", type=int, default=10, help="epochs per round and method")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="also print the profiler's top ops per variant")
    ap.add_argument("--compile", action="store_true", help="include torch.compile (slow first call)")
    ap.add_argument("--gemm", action="store_true", help="also print first-layer GEMM rates by row count")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    ap.add_argument("--only", help="comma-separated substrings: time only variants whose name contains one")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)  # as the trainer's run_settings
    split = load_split(DataConfig(train_size=2000 if a.quick else None), seed=0)
    norm = fit_normalizer("article", split.x_train)
    x32 = torch.from_numpy(norm(split.x_train))
    xbf = x32.to(torch.bfloat16)  # the trainer casts the input once, in prepare()
    y = torch.from_numpy(split.y_train.astype("int64"))
    epochs, n_rounds = (2, 1) if a.quick else (a.epochs, a.rounds)
    fresh = lambda: build_model(ModelConfig(), seed=0)  # noqa: E731
    methods: dict[str, Step] = {
        "article fp32": ArticleStep(fresh(), x32, y),
        "trainer bf16 (old CE)": TrainerStep(fresh(), xbf, y, epochs + 2),
        "trainer bf16, no accuracy": TrainerStep(fresh(), xbf, y, epochs + 2, accuracy=False),
        "trainer bf16, full_batch_ce (CE now)": TrainerStep(fresh(), xbf, y, epochs + 2, lse=True),
        "trainer fp32 (old CE)": TrainerStep(fresh(), x32, y, epochs + 2, bf16=False),
        "trainer fp32, full_batch_ce (CE now)": TrainerStep(fresh(), x32, y, epochs + 2, bf16=False, lse=True),
        "trainer fp32, L1 in 16384-row chunks": TrainerStep(fresh(), x32, y, epochs + 2, bf16=False, chunk=16384),
        "trainer fp32, L1 chunks + full_batch_ce": TrainerStep(
            fresh(), x32, y, epochs + 2, bf16=False, chunk=16384, lse=True
        ),
        "manual bf16": ManualStep(fresh(), xbf, y, epochs + 2),
        "manual bf16 L1 only": ManualStep(fresh(), xbf, y, epochs + 2, tail_fp32=True),
        "bound: 2 bf16 GEMMs": BoundStep(xbf),
    }
    if a.only:
        keep = [w.strip() for w in a.only.split(",")] + ["article fp32", "trainer bf16 (old CE)", "bound"]
        methods = {k: m for k, m in methods.items() if any(w in k for w in keep)}
    if a.compile:
        t = time.perf_counter()
        methods["compiled fwd+loss"] = CompiledStep(fresh(), xbf, y, epochs + 2)
        methods["compiled fwd+loss"](0)
        methods["compiled fwd+loss"].model.load_state_dict(fresh().state_dict())  # same start as the others
        print(f"(torch.compile first call {time.perf_counter() - t:.1f} s)")
    flags = cpu_flags()
    print(
        f"machine: {device_name(torch.device('cpu'))}, amx_bf16={'amx_bf16' in flags}, "
        f"avx512_bf16={'avx512_bf16' in flags}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    # Same start, same steps: the variants must follow the same curve (within rounding), each against
    # the old trainer step of its precision.
    check = {k: m for k, m in methods.items() if hasattr(m, "losses")}
    for m in check.values():
        for i in range(epochs + 2):
            m(i)
    refs = {p: methods.get(f"trainer {p} (old CE)") for p in ("bf16", "fp32")}
    for k, m in check.items():
        ref = refs["fp32" if "fp32" in k else "bf16"]
        if ref is None:
            continue
        diff = float((m.losses - ref.losses).abs().max())  # type: ignore[attr-defined]
        print(f"  {k}: loss after {epochs + 2} steps {float(m.losses[-1]):.6f} (max |diff| vs old step {diff:.2e})")
    sec = rounds(methods, epochs=epochs, n_rounds=n_rounds)
    base = sec["article fp32"]
    print(f"\n## ms per epoch, {len(xbf)} images, median of {n_rounds} interleaved rounds of {epochs} epochs")
    print("| variant | ms/epoch | x article fp32 | x bound |\n|---|---|---|---|")
    bound = sec["bound: 2 bf16 GEMMs"]
    for k, s in sec.items():
        print(f"| {k} | {1e3 * s:.1f} | {base / s:.2f} | {s / bound:.2f} |")
    if a.gemm:
        gemm_rates(x32, 3 if a.quick else 7)
    if a.profile:
        for k in ("trainer bf16 (old CE)", "trainer bf16, full_batch_ce (CE now)", "manual bf16"):
            if k not in methods:
                continue
            profile(methods[k], epochs, k)


if __name__ == "__main__":
    main()
