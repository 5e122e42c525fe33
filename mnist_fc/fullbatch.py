"""Full-batch gradient descent (the article's loop) with the whole training set resident on the device.

Bookkeeping stays off the hot path: the training loss and accuracy of every epoch are written into
preallocated device tensors (no host sync), and validation metrics plus the divergence check run
every `eval_every` epochs; only then does the host wait for the device (see `RunState`).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from mnist_fc import checkpoint as ckpt
from mnist_fc.config import RunConfig
from mnist_fc.data import Split
from mnist_fc.loss import full_batch_ce
from mnist_fc.results import EvalCallback, Fitted, LogFn
from mnist_fc.runstate import RunState
from mnist_fc.runtime import Prepared, autocast, prepare, run_settings, sync


def fit_fullbatch(
    cfg: RunConfig,
    *,
    split: Split | None = None,
    on_eval: EvalCallback | None = None,
    log: LogFn | None = None,
    log_every: int = 0,
    checkpoint: Path | None = None,
    checkpoint_every: int = 0,
) -> Fitted:
    """Train `cfg` full-batch; see `mnist_fc.trainer.fit` for the arguments.

    With `checkpoint`, the run's state is written there every `checkpoint_every` epochs (and at
    the end), and a run started with an existing checkpoint of the same config resumes from it.
    """
    path = ckpt.path_to_use(checkpoint, checkpoint_every)
    p = prepare(cfg, split)
    torch.manual_seed(cfg.train.seed)
    with run_settings(deterministic=cfg.train.deterministic, device=p.device):
        return _loop(cfg, p, on_eval, log, log_every, path, checkpoint_every)


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
    run = RunState(cfg, device, on_eval)
    spent = ckpt.restore(checkpoint, run) if checkpoint is not None and checkpoint.exists() else 0.0
    model, opt = run.model, run.opt
    x, y = data.x_train, data.y_train
    n = len(x)
    sync(device)
    start = time.perf_counter()
    for epoch in range(run.epochs_run + 1, cfg.train.epochs + 1):
        if run.done:  # a restored run that had already finished
            break
        with autocast(device, precision):
            logits = model(x)
        loss = full_batch_ce(logits, y)  # = F.cross_entropy in fp32, faster on CPU (mnist_fc/loss.py)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run.record(epoch, loss, logits, y)
        if log is not None and log_every and (epoch == 1 or epoch % log_every == 0):
            log(run.log_line(epoch, n))
        run.check(epoch, data, precision)
        if checkpoint is not None and (epoch % checkpoint_every == 0 or run.done):
            sync(device)
            ckpt.save(checkpoint, run, seconds=spent + time.perf_counter() - start)
        if run.diverged or run.stopped or run.margin_reached:
            break
    sync(device)
    result = run.result(data, device, precision, spent + time.perf_counter() - start, p.probe)
    return Fitted(result=result, model=run.model.eval(), normalizer=data.normalizer)
