"""The public entry to training: `fit` (result, model and normaliser) and `train` (the result only).

It picks the loop a config needs: the article's full-batch loop (`fullbatch.py`) or the minibatch
loop (`minibatch.py`, for minibatches, augmentation, other optimisers, schedules). Several trials
at once are `mnist_fc.batched.train_batched`. Nothing inside `mnist_fc` imports this module, so the
loops never depend on their dispatcher.
"""

from __future__ import annotations

from pathlib import Path

from mnist_fc.config import RunConfig, validate
from mnist_fc.data import Split
from mnist_fc.errors import ConfigError
from mnist_fc.fullbatch import fit_fullbatch
from mnist_fc.minibatch import fit_minibatch
from mnist_fc.results import Curves, EvalCallback, Fitted, LogFn, TrainResult
from mnist_fc.runstate import RunState

# Curves, TrainResult, EvalCallback (mnist_fc.results) and RunState (mnist_fc.runstate) stay importable
# from here for the study layer and bench/speed.py, written against the one-module trainer.
__all__ = ["Curves", "EvalCallback", "Fitted", "RunState", "TrainResult", "fit", "train"]


def fit(
    cfg: RunConfig,
    *,
    split: Split | None = None,
    on_eval: EvalCallback | None = None,
    log: LogFn | None = None,
    log_every: int = 0,
    checkpoint: Path | None = None,
    checkpoint_every: int = 0,
) -> Fitted:
    """Train one model as `cfg` says; return its result, the trained model and the input normaliser.

    - `split`: data already loaded (else loaded from `cfg.data`);
    - `on_eval(epoch, metrics)`: called every `eval_every` epochs; True stops the run (stopped_early);
    - `log`: receives the article-style "Epoch, Loss, Acc" line every `log_every` epochs (0 = never);
    - `checkpoint`, `checkpoint_every`: save the run every K epochs (and at the end) and resume
      from an existing checkpoint of the same config (either loop; bit-identical on the CPU).

    Divergence (a non-finite training loss) stops the run at the next check, within `eval_every`
    epochs, and sets `diverged`.
    """
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 0:
        raise ConfigError(f"log_every must be a whole number >= 0 (0 = never), not {log_every!r}")
    validate(cfg)  # before the dispatch reads the config: "0.1" > 0 would be a TypeError, not a ConfigError
    loop = fit_minibatch if cfg.train.uses_minibatch_loop() else fit_fullbatch
    return loop(
        cfg,
        split=split,
        on_eval=on_eval,
        log=log,
        log_every=log_every,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
    )


def train(
    cfg: RunConfig,
    *,
    split: Split | None = None,
    on_eval: EvalCallback | None = None,
    log: LogFn | None = None,
    log_every: int = 0,
) -> TrainResult:
    """`fit(...).result`: final metrics and learning curves, the model dropped."""
    return fit(cfg, split=split, on_eval=on_eval, log=log, log_every=log_every).result
