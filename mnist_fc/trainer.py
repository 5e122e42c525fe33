"""Full-batch gradient descent with the whole training set resident on the device.

Bookkeeping stays off the hot path: the training loss and accuracy of every epoch are
written into preallocated device tensors (no host sync), and validation metrics plus the
divergence check run every `eval_every` epochs; only then does the host wait for the device.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mnist_fc.config import RunConfig, validate
from mnist_fc.data import Split, load_split
from mnist_fc.device import resolve_device, resolve_precision
from mnist_fc.model import FCNet, build_model
from mnist_fc.normalize import Normalizer, normalizer_for

# on_eval(epoch, metrics) -> True to stop early (e.g. an Optuna pruner said so).
EvalCallback = Callable[[int, dict[str, float]], bool]


@dataclass
class Curves:
    """Learning curves: per-epoch training metrics and every-K-epochs validation metrics."""

    train_loss: list[float] = field(default_factory=list)  # one per epoch run
    train_accuracy: list[float] = field(default_factory=list)  # one per epoch run
    eval_epochs: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list]:
        return {k: list(v) for k, v in self.__dict__.items()}


@dataclass
class TrainResult:
    config: dict[str, Any]
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    test_accuracy: float
    epochs: int  # epochs actually run
    seconds: float  # training time only: no start-up, no data loading
    device: str
    precision: str
    diverged: bool
    stopped_early: bool
    curves: Curves

    def summary(self) -> dict[str, Any]:
        """Everything but the curves, JSON-ready."""
        d = {k: v for k, v in self.__dict__.items() if k != "curves"}
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


@dataclass
class DeviceData:
    """Normalised tensors on the device, inputs already in the compute dtype (cast once)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    normalizer: Normalizer


def to_device(split: Split, normalizer: Normalizer, device: torch.device, dtype: torch.dtype) -> DeviceData:
    def put(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(normalizer(x)).to(device=device, dtype=dtype)

    def lab(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(y, dtype=np.int64)).to(device)

    return DeviceData(
        put(split.x_train),
        lab(split.y_train),
        put(split.x_val),
        lab(split.y_val),
        put(split.x_test),
        lab(split.y_test),
        normalizer,
    )


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(
    model: FCNet, x: torch.Tensor, y: torch.Tensor, *, precision: str, chunk: int = 16384
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) in eval mode, in chunks to bound memory."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    with _autocast(x.device, precision):
        for i in range(0, len(x), chunk):
            logits = model(x[i : i + chunk]).float()
            loss_sum += F.cross_entropy(logits, y[i : i + chunk], reduction="sum").double()
            correct += (logits.argmax(1) == y[i : i + chunk]).sum()
    model.train(was_training)
    n = max(len(x), 1)
    return float(loss_sum) / n, float(correct) / n


def prepare(cfg: RunConfig, split: Split | None) -> tuple[torch.device, str, DeviceData]:
    """Validate `cfg`, resolve device and precision, and put the normalised data on the device once."""
    validate(cfg)
    device = resolve_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device)
    if split is None:
        split = load_split(cfg.data, seed=cfg.train.seed)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    data = to_device(split, normalizer_for(cfg.data, split.x_train), device, dtype)
    return device, precision, data


@contextlib.contextmanager
def run_settings(*, deterministic: bool, flush_denormals: bool = True) -> Iterator[None]:
    """Process-wide torch settings for one run, restored afterwards (so callers, e.g. tests, keep theirs).

    - deterministic algorithms, when asked;
    - denormal floats flushed to zero (unless told not to): saturated sigmoids and tiny learning
      rates produce them, and x86 CPUs compute them ~4x slower (measured: a 683-unit net,
      29 s -> 8 s for 40 epochs).
    """
    previous = torch.are_deterministic_algorithms_enabled()
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if flush_denormals:
        torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flush_denormals:
            torch.set_flush_denormal(False)  # torch's default; it has no getter to restore from
        torch.use_deterministic_algorithms(previous)


def train(
    cfg: RunConfig,
    *,
    split: Split | None = None,
    on_eval: EvalCallback | None = None,
    log: Callable[[str], None] | None = None,
    log_every: int = 0,
) -> TrainResult:
    """Train one model as `cfg` says; return final metrics and the learning curves.

    Divergence (a non-finite training loss) stops the run at the next check, within
    `eval_every` epochs, and sets `diverged`. `log` receives the article-style
    "Epoch, Loss, Acc" line every `log_every` epochs (0 = never).
    """
    validate(cfg)
    if cfg.train.uses_minibatch_loop():  # minibatches, augmentation, other optimisers: mnist_fc/minibatch.py
        from mnist_fc.minibatch import train_minibatch

        return train_minibatch(cfg, split=split, on_eval=on_eval, log=log, log_every=log_every)
    device, precision, data = prepare(cfg, split)
    torch.manual_seed(cfg.train.seed)
    with run_settings(deterministic=cfg.train.deterministic):
        return _fit(cfg, data, device, precision, on_eval, log, log_every)


def enable_tf32(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 on CUDA uses TF32 tensor cores
        torch.backends.cudnn.allow_tf32 = True


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class RunState:
    """One model's optimiser and bookkeeping: per-epoch metrics in device tensors, checks every K epochs.

    Shared by `train()` and `mnist_fc.batched`, so a trial trained in a batch keeps exactly the
    same curves, divergence rule and early-stop protocol as one trained alone.
    """

    def __init__(self, cfg: RunConfig, device: torch.device, on_eval: EvalCallback | None) -> None:
        t = cfg.train
        self.cfg = cfg
        self.on_eval = on_eval
        self.model = build_model(cfg.model, seed=t.seed).to(device)
        self.model.train()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
        self.losses = torch.full((t.epochs,), float("nan"), device=device)
        self.correct = torch.zeros((t.epochs,), device=device, dtype=torch.int64)
        self.curves = Curves()
        self.diverged = self.stopped = False
        self.epochs_run = 0
        self.val_loss = self.val_acc = float("nan")

    @property
    def done(self) -> bool:
        return self.diverged or self.stopped or self.epochs_run >= self.cfg.train.epochs

    def record(self, epoch: int, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Store this epoch's loss and correct count on the device: no host sync."""
        self.losses[epoch - 1] = loss.detach()
        self.correct[epoch - 1] = (logits.detach().argmax(1) == y).sum()
        self.epochs_run = epoch

    def check(self, epoch: int, data: DeviceData, precision: str) -> None:
        """Every `eval_every` epochs (and at the end): divergence check, validation metrics, callback."""
        t = self.cfg.train
        if epoch % t.eval_every and epoch != t.epochs:
            return
        if not math.isfinite(float(self.losses[epoch - 1])):  # the one host sync per K epochs
            self.diverged = True
            return
        self.val_loss, self.val_acc = evaluate(self.model, data.x_val, data.y_val, precision=precision)
        self.curves.eval_epochs.append(epoch)
        self.curves.val_loss.append(self.val_loss)
        self.curves.val_accuracy.append(self.val_acc)
        if not math.isfinite(self.val_loss):
            self.diverged = True
            return
        metrics = {"val_accuracy": self.val_acc, "val_loss": self.val_loss, "train_loss": float(self.losses[epoch - 1])}
        if self.on_eval is not None and self.on_eval(epoch, metrics):
            self.stopped = True

    def result(self, data: DeviceData, device: torch.device, precision: str, seconds: float) -> TrainResult:
        n = len(data.x_train)
        curves = self.curves
        curves.train_loss = self.losses[: self.epochs_run].double().cpu().tolist()
        curves.train_accuracy = (self.correct[: self.epochs_run].double() / n).cpu().tolist()
        if self.diverged:
            test_acc = float("nan")
            train_loss, train_acc = float("nan"), curves.train_accuracy[-1] if curves.train_accuracy else float("nan")
        else:
            # Final metrics of the trained weights (the curves hold pre-step values of each epoch).
            train_loss, train_acc = evaluate(self.model, data.x_train, data.y_train, precision=precision)
            _, test_acc = evaluate(self.model, data.x_test, data.y_test, precision=precision)
        return TrainResult(
            config=self.cfg.to_dict(),
            train_loss=train_loss,
            train_accuracy=train_acc,
            val_loss=self.val_loss,
            val_accuracy=self.val_acc if not self.diverged else float("nan"),
            test_accuracy=test_acc,
            epochs=self.epochs_run,
            seconds=seconds,
            device=str(device),
            precision=precision,
            diverged=self.diverged,
            stopped_early=self.stopped,
            curves=curves,
        )


def _fit(
    cfg: RunConfig,
    data: DeviceData,
    device: torch.device,
    precision: str,
    on_eval: EvalCallback | None,
    log: Callable[[str], None] | None,
    log_every: int,
) -> TrainResult:
    enable_tf32(device)
    run = RunState(cfg, device, on_eval)
    model, opt = run.model, run.opt
    x, y = data.x_train, data.y_train
    n = len(x)
    sync(device)
    start = time.perf_counter()
    for epoch in range(1, cfg.train.epochs + 1):
        with _autocast(device, precision):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run.record(epoch, loss, logits, y)
        if log is not None and log_every and (epoch == 1 or epoch % log_every == 0):
            log(f"Epoch {epoch}, Loss {float(run.losses[epoch - 1]):.6f}, Acc {float(run.correct[epoch - 1]) / n:.4f}")
        run.check(epoch, data, precision)
        if run.diverged or run.stopped:
            break
    sync(device)
    return run.result(data, device, precision, time.perf_counter() - start)
