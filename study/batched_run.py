"""Ask-and-tell loop that trains k trials at once (mnist_fc.batched) and tells each result separately.

Each round asks the sampler for k trials, groups the sampled configs whose data and schedule
match (`mnist_fc.batched.group_by_key`), trains each group as one batched model and tells every
trial its own value or PRUNED state, with its own reports, user attributes and curve row: the
stored study looks exactly as if the trials had run one by one. The price is the sampler's:
the k trials of a round are sampled without seeing each other's results (as with k parallel
workers).
"""

from __future__ import annotations

import time
import warnings

import optuna

from mnist_fc.batched import group_by_key, train_batched
from mnist_fc.trainer import TrainResult, train
from study.objective import Objective


def _tell(study: optuna.Study, objective: Objective, trial: optuna.Trial, result: TrainResult) -> None:
    """Store the trial's results and tell its value, or PRUNED (diverged or stopped by the pruner)."""
    try:
        value = objective.finish(trial, result)
    except optuna.TrialPruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, value)


def optimize_batched(
    study: optuna.Study,
    objective: Objective,
    *,
    n_trials: int,
    batch_trials: int,
    timeout: float | None = None,
) -> None:
    """Run `n_trials` trials, `batch_trials` at a time; no new round starts after `timeout` seconds."""
    start = time.monotonic()
    done = 0
    while done < n_trials and (timeout is None or time.monotonic() - start < timeout):
        with warnings.catch_warnings():  # heartbeats need study.optimize; the finally below covers crashes
            warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
            trials = [study.ask() for _ in range(min(batch_trials, n_trials - done))]
        told: set[int] = set()
        try:
            cfgs = [objective.sample(t) for t in trials]
            for group in group_by_key(cfgs):
                callbacks = [objective.on_eval(trials[i], cfgs[i]) for i in group]
                if len(group) == 1:
                    results = [train(cfgs[group[0]], split=objective.split, on_eval=callbacks[0])]
                else:
                    results = train_batched([cfgs[i] for i in group], split=objective.split, on_eval=callbacks)
                for i, result in zip(group, results, strict=True):
                    _tell(study, objective, trials[i], result)
                    told.add(i)
        finally:  # a crash or Ctrl-C must not leave trials RUNNING forever (ask/tell has no heartbeat)
            for i, trial in enumerate(trials):
                if i not in told:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
        done += len(trials)
