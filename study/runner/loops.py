"""The two ways trials run besides plain `study.optimize`: until N are complete, and k at a time (batched).

Batched: each round asks the sampler for k trials, groups the sampled configs whose data and
schedule match (`mnist_fc.batched.group_by_key`), trains each group as one batched model and
tells every trial its own value or PRUNED state, with its own reports, user attributes and
curve row: the stored study looks exactly as if the trials had run one by one. The price is
the sampler's: the k trials of a round are sampled without seeing each other's results (as
with k parallel workers).
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from mnist_fc.batched import group_by_key, train_batched
from mnist_fc.results import EvalCallback
from mnist_fc.trainer import TrainResult, train
from study import interrupt
from study.objective import Objective
from study.runner.heartbeat import beating
from study.runner.one_trial import log_taken_over, optimize_one, stored_state
from study.runner.recovery import fail_dead_local_trials, fail_stale_trials

Callback = Callable[[optuna.Study, FrozenTrial], None]


def _count(study: optuna.Study, state: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=(state,)))


def optimize_until_complete(
    study: optuna.Study,
    objective: Objective,
    *,
    target: int,
    timeout: float | None,
    poll_s: float,
    callbacks: Sequence[Callback] = (),
) -> None:
    """Run trials one at a time until the study holds `target` COMPLETE trials.

    A worker starts a trial only while COMPLETE + RUNNING < target; otherwise it waits for the
    running ones, which either complete or, if their worker died, are failed and re-queued
    (WAITING, same params): at once when the worker ran on this host, after the heartbeat grace
    otherwise. The next trial started here pops that retry first, so no worker leaves a
    re-queued trial behind and several workers stop together at `target`, give or take the
    trials started in the same instant.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while deadline is None or time.monotonic() < deadline:
        fail_dead_local_trials(study)
        fail_stale_trials(study)
        complete = _count(study, TrialState.COMPLETE)
        # A re-queued trial is run even past the target: failing a dead trial and queuing its copy
        # are two commits, and another worker may start a fresh trial in between.
        waiting = _count(study, TrialState.WAITING)
        if complete >= target and not waiting:
            return
        if waiting or complete + _count(study, TrialState.RUNNING) < target:
            optimize_one(study, objective, callbacks=callbacks)
        else:
            time.sleep(poll_s * random.uniform(0.5, 1.5))  # jitter: waiting workers do not wake in step


def _tell(study: optuna.Study, objective: Objective, trial: optuna.Trial, result: TrainResult) -> FrozenTrial:
    """Store the trial's results and tell its value, or PRUNED (diverged or stopped by the pruner)."""
    try:
        value = objective.finish(trial, result)
    except optuna.TrialPruned:
        return study.tell(trial, state=TrialState.PRUNED)
    return study.tell(trial, value)


def _stop_if_taken_over(callback: EvalCallback) -> EvalCallback:
    """Stop training a batch member whose trial another worker failed as stale (its report is refused)."""

    def checked(epoch: int, metrics: dict[str, float]) -> bool:
        try:
            return callback(epoch, metrics)
        except optuna.exceptions.UpdateFinishedTrialError:
            return True  # the other members train on; the tell below drops this one

    return checked


def optimize_batched(
    study: optuna.Study,
    objective: Objective,
    *,
    n_trials: int,
    batch_trials: int,
    timeout: float | None = None,
    callbacks: Sequence[Callback] = (),
) -> None:
    """Run `n_trials` trials, `batch_trials` at a time; no new round starts after `timeout` seconds."""
    start = time.monotonic()
    done = 0
    while done < n_trials and (timeout is None or time.monotonic() - start < timeout):
        # What study.optimize does before each trial: a dead worker's trials are failed and re-queued, and
        # this round's asks pop their copies first.
        fail_dead_local_trials(study)
        fail_stale_trials(study)
        interrupt.check()  # a Ctrl-C held out of database code must not ask a new round first
        with warnings.catch_warnings():  # heartbeats need study.optimize; the finally below covers crashes
            warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
            trials = [study.ask() for _ in range(min(batch_trials, n_trials - done))]
        told: set[int] = set()
        try:
            with beating(study, trials, finished=told):  # Optuna beats only inside study.optimize
                cfgs = [objective.sample(t) for t in trials]
                for group in group_by_key(cfgs):
                    on_eval = [_stop_if_taken_over(objective.on_eval(trials[i], cfgs[i])) for i in group]
                    if len(group) == 1:
                        results = [train(cfgs[group[0]], split=objective.split, on_eval=on_eval[0])]
                    else:
                        results = train_batched([cfgs[i] for i in group], split=objective.split, on_eval=on_eval)
                    for i, result in zip(group, results, strict=True):
                        told.add(i)
                        try:
                            frozen = _tell(study, objective, trials[i], result)
                        except optuna.exceptions.UpdateFinishedTrialError:  # its copy runs again, here or elsewhere
                            log_taken_over(trials[i].number)
                            continue
                        for callback in callbacks:
                            callback(study, frozen)
        finally:  # a crash or Ctrl-C must not leave trials RUNNING until they go stale
            for i, trial in enumerate(trials):
                if i not in told and not stored_state(study, trial).is_finished():
                    study.tell(trial, state=TrialState.FAIL)
        done += len(trials)
