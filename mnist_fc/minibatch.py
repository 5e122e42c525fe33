"""Minibatch training with optional on-device augmentation, label smoothing and lr schedules.

`mnist_fc.trainer.fit` dispatches here whenever a TrainConfig asks for anything beyond the article's
full-batch plain SGD (see `TrainConfig.uses_minibatch_loop`). The training images stay on the
device in pixel units, so each epoch can warp them afresh (`augment.py`) before normalising;
validation and test images are normalised once. `batch_size=None` means one full batch.

With `TrainConfig.ema_decay` > 0 the loop also keeps an exponential moving average of the weights
(`WeightAverage`); validation metrics, the final metrics and the returned model are then the
average's. With a checkpoint path the run saves itself every K epochs and resumes bit for bit.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mnist_fc import checkpoint as ckpt
from mnist_fc.augment import Augmentation, augment_images
from mnist_fc.config import RunConfig, TrainConfig
from mnist_fc.data import Split
from mnist_fc.model import FCNet
from mnist_fc.optim import build_scheduler
from mnist_fc.results import EvalCallback, Fitted, LogFn
from mnist_fc.runstate import RunState
from mnist_fc.runtime import Prepared, autocast, prepare, run_settings, sync


def augmentation_of(t: TrainConfig) -> Augmentation:
    return Augmentation(
        shift=t.aug_shift,
        rotate=t.aug_rotate,
        scale=t.aug_scale,
        shear=t.aug_shear,
        elastic_alpha=t.aug_elastic_alpha,
        elastic_sigma=t.aug_elastic_sigma,
    )


def _batches(perm: torch.Tensor, batch_size: int, *, batchnorm: bool) -> list[torch.Tensor]:
    """Index batches of one epoch; with BatchNorm a trailing batch of one image is dropped (BatchNorm
    cannot normalise one image); without it every image is trained on."""
    parts = list(torch.split(perm, batch_size))
    if batchnorm and len(parts) > 1 and len(parts[-1]) < 2:
        parts.pop()
    return parts


class WeightAverage:
    """An exponential moving average of a model's weights: after each optimiser step,
    avg <- decay * avg + (1 - decay) * live, and avg = live at the first step (torch's AveragedModel
    convention, so the random init never leaks into the average).

    BatchNorm running statistics are averaged the same way (integer buffers, i.e. the batch counter,
    are copied): the averaged weights are a time average over the last ~1/(1 - decay) steps, and the
    averaged statistics describe activations over that same window, whereas the live statistics
    describe only the latest weights. (Recomputing the statistics with a pass over the training data,
    as SWA does, would be exact but costs a pass and needs a clean-vs-augmented choice.)
    """

    def __init__(self, model: FCNet, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self.steps = 0
        # Tensors are updated in place (optimiser steps, BatchNorm, load_state_dict), so the lists stay valid.
        live, avg = model.state_dict(), self.model.state_dict()
        self._floats = [(avg[k], live[k]) for k in live if live[k].is_floating_point()]
        self._others = [(avg[k], live[k]) for k in live if not live[k].is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        avg, live = [a for a, _ in self._floats], [w for _, w in self._floats]
        if self.steps == 0:
            torch._foreach_copy_(avg, live)
        else:
            torch._foreach_lerp_(avg, live, 1.0 - self.decay)
        for a, w in self._others:
            a.copy_(w)
        self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.steps = int(state["steps"])


def fit_minibatch(
    cfg: RunConfig,
    *,
    split: Split | None = None,
    on_eval: EvalCallback | None = None,
    log: LogFn | None = None,
    log_every: int = 0,
    checkpoint: Path | None = None,
    checkpoint_every: int = 0,
) -> Fitted:
    """Train `cfg` with the minibatch loop (any config, also a full-batch one) and keep the model.

    Final models are retrained through this loop whatever their config (the shipped model was).
    With `checkpoint`, the run's state is written there every `checkpoint_every` epochs (and at the
    end), and a run started with an existing checkpoint of the same config resumes from it.
    """
    path = ckpt.path_to_use(checkpoint, checkpoint_every)
    p = prepare(cfg, split)
    # No denormal flushing here: the minibatch path (and the shipped model) was trained without it.
    with run_settings(deterministic=cfg.train.deterministic, device=p.device, flush_denormals=False):
        return _loop(cfg, p, on_eval, log, log_every, path, checkpoint_every)


# The old name, still imported by study/runner/final.py and bench/accuracy_epoch.py.
fit = fit_minibatch


def _loop(
    cfg: RunConfig,
    p: Prepared,
    on_eval: EvalCallback | None,
    log: LogFn | None,
    log_every: int,
    checkpoint: Path | None,
    checkpoint_every: int,
) -> Fitted:
    device, precision, data = p.device, p.precision, p.data
    t = cfg.train
    torch.manual_seed(t.seed)
    gen = torch.Generator(device=device).manual_seed(t.seed)  # shuffling and augmentation
    normalizer = data.normalizer
    aug = augmentation_of(t)
    pixels = torch.from_numpy(np.array(p.split.x_train)).to(device) if aug.active else None
    shift = torch.as_tensor(normalizer.shift, device=device)
    scale = torch.as_tensor(normalizer.scale, device=device)
    run = RunState(cfg, device, on_eval, accumulate=True)
    model, opt = run.model, run.opt
    ema = WeightAverage(model, t.ema_decay) if t.ema_decay > 0 else None
    if ema is not None:
        run.eval_model = ema.model  # validation and final metrics of the averaged weights
    x_clean, y = data.x_train, data.y_train
    n = len(x_clean)
    batch_size = min(t.batch_size or n, n)
    sched = build_scheduler(
        opt, t, steps_per_epoch=len(_batches(torch.arange(n), batch_size, batchnorm=cfg.model.batchnorm))
    )
    spent = 0.0
    if checkpoint is not None and checkpoint.exists():  # after the scheduler: it rewrites the optimiser's lr
        spent, loop = ckpt.resume(checkpoint, run)
        try:
            sched.load_state_dict(loop["scheduler"])
            gen.set_state(loop["generator"])
            if ema is not None:
                ema.load_state_dict(loop["ema"])
        except ckpt.DAMAGE as exc:  # a damaged or crafted loop entry
            raise ckpt.damaged(checkpoint, exc) from None

    def loop_state() -> dict[str, Any]:
        """What the next epoch depends on beyond RunState (global RNGs: saved by checkpoint.save)."""
        return {
            "scheduler": sched.state_dict(),
            "generator": gen.get_state(),
            "ema": ema.state_dict() if ema is not None else None,
        }

    sync(device)
    finished_before = run.done  # a restored run that had already finished
    start = time.perf_counter()
    for epoch in range(run.epochs_run + 1, t.epochs + 1):
        if finished_before:
            break
        if pixels is not None and epoch <= t.epochs - t.aug_clean_epochs:  # a fresh warp of every image, normalised
            x = ((augment_images(pixels, aug, generator=gen) - shift) / scale).to(x_clean.dtype)
        else:
            x = x_clean
        for idx in _batches(torch.randperm(n, generator=gen, device=device), batch_size, batchnorm=cfg.model.batchnorm):
            xb, yb = x[idx], y[idx]
            with autocast(device, precision):
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=t.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update()
            run.add(epoch, loss, logits, yb)
        run.end_epoch(epoch)
        if log is not None and log_every and (epoch == 1 or epoch % log_every == 0):
            log(run.log_line(epoch, n))
        run.check(epoch, data, precision)
        if checkpoint is not None and (epoch % checkpoint_every == 0 or run.done):
            sync(device)
            ckpt.save(checkpoint, run, seconds=spent + time.perf_counter() - start, loop=loop_state())
        if run.done:
            break
    sync(device)
    # A run restored finished trained nothing now: its seconds are exactly those its checkpoint recorded.
    seconds = spent if finished_before else spent + time.perf_counter() - start
    result = run.result(data, device, precision, seconds, p.probe)
    final = ema.model if ema is not None else run.model
    return Fitted(result=result, model=final.eval(), normalizer=normalizer)
