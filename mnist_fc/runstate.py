"""One run's model, optimiser and bookkeeping, shared by every training loop.

Per-epoch training loss and correct counts live in preallocated device tensors (no host sync per
epoch); every `eval_every` epochs `check` waits for the device once, tests for divergence, computes
validation metrics, asks the callback and applies `stop_margin`. The full-batch, minibatch and
batched loops all use this class, so a trial keeps exactly the same curves, divergence rule and
stopping protocol whichever loop trains it.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from mnist_fc.config import RunConfig
from mnist_fc.measures import CHANCE_LOSS, PLATEAU_DELTA
from mnist_fc.model import build_model
from mnist_fc.optim import build_optimizer
from mnist_fc.results import Curves, EvalCallback, TrainResult
from mnist_fc.runtime import DeviceData, evaluate


class RunState:
    """Model, optimiser, per-epoch buffers, validation curves and the reason the run ends.

    `accumulate=False` (full batch): `record` stores each epoch's one loss. `accumulate=True`
    (minibatches): `add` sums batch losses weighted by batch size and `end_epoch` divides by the
    images seen, so both report the mean loss over the epoch's images.
    """

    def __init__(
        self, cfg: RunConfig, device: torch.device, on_eval: EvalCallback | None, *, accumulate: bool = False
    ) -> None:
        t = cfg.train
        self.cfg = cfg
        self.on_eval = on_eval
        self.model = build_model(cfg.model, seed=t.seed).to(device)
        self.model.train()
        self.opt = build_optimizer(self.model.parameters(), t)
        # float64: a float32 loss converts exactly, and minibatch sums keep their precision.
        self.losses = torch.zeros((t.epochs,), device=device, dtype=torch.float64)
        self.correct = torch.zeros((t.epochs,), device=device, dtype=torch.int64)
        self.seen = torch.zeros((t.epochs,), device=device, dtype=torch.int64) if accumulate else None
        self.curves = Curves()
        self.diverged = self.stopped = self.margin_reached = False
        self.epochs_run = 0
        self.val_loss = self.val_acc = float("nan")
        self.plateau_exit: int | None = None  # first epoch whose loss is clearly below the plateau
        self.scanned = 0  # epochs already searched for the plateau exit
        # (shift, scale) when the loop feeds raw pixels and the model must see (x - shift) / scale
        # (batched training with the normalisation folded into the first layer); None = inputs normalised.
        self.input_affine: tuple[torch.Tensor, torch.Tensor] | None = None
        # The network validation and final metrics are taken from, when not `model` itself: the
        # minibatch loop's weight average (TrainConfig.ema_decay). None = `model`.
        self.eval_model: torch.nn.Module | None = None

    @property
    def done(self) -> bool:
        return self.diverged or self.stopped or self.margin_reached or self.epochs_run >= self.cfg.train.epochs

    @property
    def stop_reason(self) -> str:
        if self.diverged:
            return "diverged"
        if self.stopped:
            return "callback"
        return "plateau_margin" if self.margin_reached else "epochs"

    def record(self, epoch: int, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Full batch: store this epoch's loss and correct count on the device (no host sync)."""
        self.losses[epoch - 1] = loss.detach()
        self.correct[epoch - 1] = (logits.detach().argmax(1) == y).sum()
        self.epochs_run = epoch

    def add(self, epoch: int, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Minibatch: add one batch's size-weighted loss and correct count to this epoch's totals."""
        assert self.seen is not None, "add() needs RunState(accumulate=True)"
        self.losses[epoch - 1] += loss.detach().double() * len(y)
        self.correct[epoch - 1] += (logits.detach().argmax(1) == y).sum()
        self.seen[epoch - 1] += len(y)

    def end_epoch(self, epoch: int) -> None:
        """Minibatch: turn this epoch's summed loss into the mean over the images seen."""
        assert self.seen is not None, "end_epoch() needs RunState(accumulate=True)"
        self.losses[epoch - 1] /= self.seen[epoch - 1]
        self.epochs_run = epoch

    def log_line(self, epoch: int, n_train: int) -> str:
        """The article's progress line (one host sync: call it every `log_every` epochs only)."""
        seen = float(self.seen[epoch - 1]) if self.seen is not None else n_train
        acc = float(self.correct[epoch - 1]) / seen
        return f"Epoch {epoch}, Loss {float(self.losses[epoch - 1]):.6f}, Acc {acc:.4f}"

    def due(self, epoch: int) -> bool:
        """Whether `check` evaluates at this epoch: every `eval_every` epochs and at the last."""
        t = self.cfg.train
        return epoch % t.eval_every == 0 or epoch == t.epochs

    def check(self, epoch: int, data: DeviceData, precision: str, *, val: tuple[float, float] | None = None) -> None:
        """Every `eval_every` epochs (and at the end): divergence, validation metrics, callback, stop margin.

        `val`: this epoch's (validation loss, accuracy) when the caller already computed them (batched
        runs evaluate all members in one pass); else they are computed here."""
        if not self.due(epoch):
            return
        if not math.isfinite(float(self.losses[epoch - 1])):  # the one host sync per K epochs
            self.diverged = True
            return
        self.val_loss, self.val_acc = val if val is not None else self._evaluate(data.x_val, data.y_val, precision)
        self.curves.eval_epochs.append(epoch)
        self.curves.val_loss.append(self.val_loss)
        self.curves.val_accuracy.append(self.val_acc)
        if not math.isfinite(self.val_loss):
            self.diverged = True
            return
        metrics = {"val_accuracy": self.val_acc, "val_loss": self.val_loss, "train_loss": float(self.losses[epoch - 1])}
        if self.on_eval is not None and self.on_eval(epoch, metrics):
            self.stopped = True
            return
        t = self.cfg.train
        if t.stop_margin is not None:
            self._find_plateau_exit(epoch)
            self.margin_reached = self.plateau_exit is not None and epoch >= self.plateau_exit + t.stop_margin

    def _find_plateau_exit(self, epoch: int) -> None:
        """The first epoch whose loss < min(loss at epoch 1, ln 10) - PLATEAU_DELTA (mnist_fc.measures' rule)."""
        if self.plateau_exit is not None:
            return
        threshold = min(float(self.losses[0]), CHANCE_LOSS) - PLATEAU_DELTA
        window = self.losses[self.scanned : epoch].cpu()
        below = torch.nonzero(window < threshold)
        if len(below):
            self.plateau_exit = self.scanned + int(below[0, 0]) + 1
        self.scanned = epoch

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor, precision: str) -> tuple[float, float]:
        model = self.eval_model if self.eval_model is not None else self.model
        if self.input_affine is None:
            return evaluate(model, x, y, precision=precision)
        shift, scale = self.input_affine
        return evaluate(model, x, y, precision=precision, transform=lambda xb: (xb - shift) / scale)

    def result(
        self,
        data: DeviceData,
        device: torch.device,
        precision: str,
        seconds: float,
        probe: dict[str, Any] | None = None,
    ) -> TrainResult:
        curves = self.curves
        run = self.epochs_run
        curves.train_loss = self.losses[:run].cpu().tolist()
        seen = self.seen[:run].clamp(min=1) if self.seen is not None else len(data.x_train)
        curves.train_accuracy = (self.correct[:run].double() / seen).cpu().tolist()
        if self.diverged:
            # NaN logits' argmax is class 0: any accuracy of them is the share of zeros, not a result
            test_acc = train_loss = train_acc = float("nan")
        else:
            # Final metrics of the trained weights (the curves hold pre-step values of each epoch).
            train_loss, train_acc = self._evaluate(data.x_train, data.y_train, precision)
            _, test_acc = self._evaluate(data.x_test, data.y_test, precision)
        return TrainResult(
            config=self.cfg.to_dict(),
            train_loss=train_loss,
            train_accuracy=train_acc,
            val_loss=self.val_loss,
            val_accuracy=self.val_acc if not self.diverged else float("nan"),
            test_accuracy=test_acc,
            epochs=run,
            seconds=seconds,
            device=str(device),
            precision=precision,
            diverged=self.diverged,
            stopped_early=self.stopped,
            curves=curves,
            stop_reason=self.stop_reason,
            precision_probe=probe,
        )
