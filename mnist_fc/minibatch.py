"""Minibatch training with optional on-device augmentation, label smoothing and lr schedules.

`mnist_fc.trainer.fit` dispatches here whenever a TrainConfig asks for anything beyond the article's
full-batch plain SGD (see `TrainConfig.uses_minibatch_loop`). The training images stay on the
device in pixel units, so each epoch can warp them afresh (`augment.py`) before normalising;
validation and test images are normalised once. `batch_size=None` means one full batch.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from mnist_fc.augment import Augmentation, augment_images
from mnist_fc.config import RunConfig, TrainConfig
from mnist_fc.data import Split
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


def _batches(perm: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Index batches of one epoch; a trailing batch of one image is dropped (BatchNorm cannot use it)."""
    parts = list(torch.split(perm, batch_size))
    if len(parts) > 1 and len(parts[-1]) < 2:
        parts.pop()
    return parts


def fit_minibatch(
    cfg: RunConfig,
    *,
    split: Split | None = None,
    on_eval: EvalCallback | None = None,
    log: LogFn | None = None,
    log_every: int = 0,
) -> Fitted:
    """Train `cfg` with the minibatch loop (any config, also a full-batch one) and keep the model.

    Final models are retrained through this loop whatever their config (the shipped model was).
    """
    p = prepare(cfg, split)
    # No denormal flushing here: the minibatch path (and the shipped model) was trained without it.
    with run_settings(deterministic=cfg.train.deterministic, flush_denormals=False):
        return _loop(cfg, p, on_eval, log, log_every)


# The old name, still imported by study/commands/final.py and bench/accuracy_epoch.py.
fit = fit_minibatch


def _loop(cfg: RunConfig, p: Prepared, on_eval: EvalCallback | None, log: LogFn | None, log_every: int) -> Fitted:
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
    x_clean, y = data.x_train, data.y_train
    n = len(x_clean)
    batch_size = min(t.batch_size or n, n)
    sched = build_scheduler(opt, t, steps_per_epoch=len(_batches(torch.arange(n), batch_size)))
    start = time.perf_counter()
    for epoch in range(1, t.epochs + 1):
        if pixels is not None:  # a fresh random warp of every training image, then normalise
            x = ((augment_images(pixels, aug, generator=gen) - shift) / scale).to(x_clean.dtype)
        else:
            x = x_clean
        for idx in _batches(torch.randperm(n, generator=gen, device=device), batch_size):
            xb, yb = x[idx], y[idx]
            with autocast(device, precision):
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=t.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run.add(epoch, loss, logits, yb)
        run.end_epoch(epoch)
        if log is not None and log_every and (epoch == 1 or epoch % log_every == 0):
            log(run.log_line(epoch, n))
        run.check(epoch, data, precision)
        if run.done:
            break
    sync(device)
    result = run.result(data, device, precision, time.perf_counter() - start, p.probe)
    return Fitted(result=result, model=run.model.eval(), normalizer=normalizer)
