"""Heartbeats for ask-and-tell rounds, which (unlike `study.optimize`) get no heartbeat thread from Optuna.

Without one, a batched worker killed on another host left its trials RUNNING forever: Optuna's stale
check skips trials that never beat, and the pid check only sees workers on its own host.
"""

from __future__ import annotations

import math
import time

import optuna
from optuna.storages._heartbeat import BaseHeartbeat

from mnist_fc.config import RunConfig
from mnist_fc.results import EvalCallback, TrainResult
from study.objective import Objective

_last_beat: dict[int, float] = {}


def heartbeat(trial: optuna.Trial, every_s: float | None = None) -> None:
    """Record that `trial` is alive, at most every `every_s` seconds (default: half the storage's heartbeat
    interval, the `--heartbeat` of the run); nothing if the storage has no heartbeat."""
    storage = trial.study._storage
    interval = storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None
    if interval is None:
        return
    every_s = interval / 2 if every_s is None else every_s
    now = time.monotonic()
    if now - _last_beat.get(trial._trial_id, -math.inf) >= every_s:
        storage.record_heartbeat(trial._trial_id)
        _last_beat[trial._trial_id] = now


class HeartbeatObjective(Objective):
    """The run objective, plus a heartbeat from inside training, for batched (ask-and-tell) rounds."""

    def _alive(self) -> dict[int, optuna.Trial]:
        """Trials sampled and not yet finished: a batch member that stopped early (plateau margin) waits
        for its batch without callbacks of its own, so every callback beats for all of them."""
        return self.__dict__.setdefault("_alive_trials", {})

    def sample(self, trial: optuna.Trial) -> RunConfig:
        heartbeat(trial, 0.0)  # from the start: a trial killed before its first evaluation must go stale too
        self._alive()[trial._trial_id] = trial
        return super().sample(trial)

    def on_eval(self, trial: optuna.Trial, cfg: RunConfig) -> EvalCallback:
        inner = super().on_eval(trial, cfg)

        def callback(epoch: int, metrics: dict[str, float]) -> bool:
            for alive in list(self._alive().values()):
                heartbeat(alive)  # at the storage's interval: `--heartbeat 1 --grace 3` must hold too
            return inner(epoch, metrics)

        return callback

    def finish(self, trial: optuna.Trial, result: TrainResult) -> float:
        self._alive().pop(trial._trial_id, None)
        return super().finish(trial, result)
