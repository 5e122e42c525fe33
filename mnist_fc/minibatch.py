"""Minibatch training with optional on-device augmentation, label smoothing and lr schedules.

`trainer.train` dispatches here whenever a TrainConfig asks for anything beyond the article's
full-batch plain SGD (see `TrainConfig.uses_minibatch_loop`). The training images stay on the
device in pixel units, so each epoch can warp them afresh (`augment.py`) before normalising;
validation and test images are normalised once. `batch_size=None` means one full batch.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mnist_fc.augment import Augmentation, augment_images
from mnist_fc.config import RunConfig, TrainConfig, validate
from mnist_fc.data import Split, load_split
from mnist_fc.device import resolve_device, resolve_precision
from mnist_fc.model import FCNet, build_model
from mnist_fc.normalize import Normalizer, normalizer_for
from mnist_fc.optim import build_optimizer, build_scheduler
from mnist_fc.trainer import Curves, EvalCallback, TrainResult, evaluate, run_settings, to_device


@dataclass
class Fitted:
    """A finished run: its result, the trained network and the input normaliser it expects."""

    result: TrainResult
    model: FCNet
    normalizer: Normalizer


def augmentation_of(t: TrainConfig) -> Augmentation:
    return Augmentation(
        shift=t.aug_shift,
        rotate=t.aug_rotate,
        scale=t.aug_scale,
        shear=t.aug_shear,
        elastic_alpha=t.aug_elastic_alpha,
        elastic_sigma=t.aug_elastic_sigma,
    )


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _batches(perm: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Index batches of one epoch; a trailing batch of one image is dropped (BatchNorm cannot use it)."""
    parts = list(torch.split(perm, batch_size))
    if len(parts) > 1 and len(parts[-1]) < 2:
        parts.pop()
    return parts


def train_minibatch(
    cfg: RunConfig,
    *,
    split: Split | None = None,
    on_eval: EvalCallback | None = None,
    log: Callable[[str], None] | None = None,
    log_every: int = 0,
) -> TrainResult:
    """Same contract as `trainer.train`, for configurations that need the minibatch loop."""
    return fit(cfg, split=split, on_eval=on_eval, log=log, log_every=log_every).result


def fit(
    cfg: RunConfig,
    *,
    split: Split | None = None,
    on_eval: EvalCallback | None = None,
    log: Callable[[str], None] | None = None,
    log_every: int = 0,
) -> Fitted:
    """Train as `cfg` says and keep the model (final models are saved and exported from it)."""
    validate(cfg)
    device = resolve_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device)
    if split is None:
        split = load_split(cfg.data, seed=cfg.train.seed)
    # No denormal flushing here: the minibatch path (and the shipped model) was trained without it.
    with run_settings(deterministic=cfg.train.deterministic, flush_denormals=False):
        return _fit(cfg, split, device, precision, on_eval, log, log_every)


def _fit(
    cfg: RunConfig,
    split: Split,
    device: torch.device,
    precision: str,
    on_eval: EvalCallback | None,
    log: Callable[[str], None] | None,
    log_every: int,
) -> Fitted:
    t = cfg.train
    torch.manual_seed(t.seed)
    gen = torch.Generator(device=device).manual_seed(t.seed)  # shuffling and augmentation
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    normalizer = normalizer_for(cfg.data, split.x_train)
    data = to_device(split, normalizer, device, dtype)
    aug = augmentation_of(t)
    pixels = torch.from_numpy(np.array(split.x_train)).to(device) if aug.active else None
    shift = torch.as_tensor(normalizer.shift, device=device)
    scale = torch.as_tensor(normalizer.scale, device=device)
    model = build_model(cfg.model, seed=t.seed).to(device)
    model.train()
    x_clean, y = data.x_train, data.y_train
    n = len(x_clean)
    batch_size = min(t.batch_size or n, n)
    steps = len(_batches(torch.arange(n), batch_size))
    opt = build_optimizer(model.parameters(), t)
    sched = build_scheduler(opt, t, steps_per_epoch=steps)
    losses = torch.zeros((t.epochs,), device=device, dtype=torch.float64)
    correct = torch.zeros((t.epochs,), device=device, dtype=torch.int64)
    seen = torch.zeros((t.epochs,), device=device, dtype=torch.int64)
    curves = Curves()
    diverged = stopped = False
    epochs_run = 0
    val_loss = val_acc = float("nan")
    start = time.perf_counter()
    for epoch in range(1, t.epochs + 1):
        if pixels is not None:  # a fresh random warp of every training image, then normalise
            x = ((augment_images(pixels, aug, generator=gen) - shift) / scale).to(dtype)
        else:
            x = x_clean
        for idx in _batches(torch.randperm(n, generator=gen, device=device), batch_size):
            xb, yb = x[idx], y[idx]
            with _autocast(device, precision):
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=t.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses[epoch - 1] += loss.detach().double() * len(idx)
            correct[epoch - 1] += (logits.detach().argmax(1) == yb).sum()
            seen[epoch - 1] += len(idx)
        losses[epoch - 1] /= seen[epoch - 1]
        epochs_run = epoch
        if log is not None and log_every and (epoch == 1 or epoch % log_every == 0):
            acc = float(correct[epoch - 1]) / float(seen[epoch - 1])
            log(f"Epoch {epoch}, Loss {float(losses[epoch - 1]):.6f}, Acc {acc:.4f}")
        if epoch % t.eval_every == 0 or epoch == t.epochs:
            if not math.isfinite(float(losses[epoch - 1])):
                diverged = True
                break
            val_loss, val_acc = evaluate(model, data.x_val, data.y_val, precision=precision)
            curves.eval_epochs.append(epoch)
            curves.val_loss.append(val_loss)
            curves.val_accuracy.append(val_acc)
            if not math.isfinite(val_loss):
                diverged = True
                break
            if on_eval is not None and on_eval(
                epoch, {"val_accuracy": val_acc, "val_loss": val_loss, "train_loss": float(losses[epoch - 1])}
            ):
                stopped = True
                break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    curves.train_loss = losses[:epochs_run].cpu().tolist()
    curves.train_accuracy = (correct[:epochs_run].double() / seen[:epochs_run].clamp(min=1)).cpu().tolist()
    if diverged:
        test_acc = train_loss = float("nan")
        train_acc = curves.train_accuracy[-1] if curves.train_accuracy else float("nan")
    else:  # final metrics of the trained weights on the un-augmented images
        train_loss, train_acc = evaluate(model, x_clean, y, precision=precision)
        _, test_acc = evaluate(model, data.x_test, data.y_test, precision=precision)
    result = TrainResult(
        config=cfg.to_dict(),
        train_loss=train_loss,
        train_accuracy=train_acc,
        val_loss=val_loss,
        val_accuracy=val_acc if not diverged else float("nan"),
        test_accuracy=test_acc,
        epochs=epochs_run,
        seconds=seconds,
        device=str(device),
        precision=precision,
        diverged=diverged,
        stopped_early=stopped,
        curves=curves,
    )
    return Fitted(result=result, model=model.eval(), normalizer=normalizer)
