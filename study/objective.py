"""The Optuna objective: sample a RunConfig from a space, train it, store everything with the trial."""

from __future__ import annotations

import contextlib
import math
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import torch
from optuna.storages._heartbeat import is_heartbeat_enabled

from mnist_fc.config import RunConfig
from mnist_fc.data import Split
from mnist_fc.measures import SATURATION_BATCH, run_measures, saturation_at_init
from mnist_fc.model import build_model
from mnist_fc.normalize import normalizer_for
from mnist_fc.trainer import EvalCallback, TrainResult, train
from study.curves import CurveStore
from study.defaults import N_REPORTS
from study.spaces import Space

# User attributes every finished trial carries (the analysis and `best` rely on them).
RESULT_ATTRS = (
    "val_accuracy",
    "test_accuracy",
    "train_accuracy",
    "train_loss",
    "val_loss",
    "epochs",
    "seconds",
    "device",
    "precision",
    "diverged",
)


def report_every(epochs: int, eval_every: int) -> int:
    """Epochs between `trial.report` calls: a multiple of eval_every, ~N_REPORTS per trial."""
    step = max(1, math.ceil(epochs / N_REPORTS / eval_every)) * eval_every
    return step


def first_beat(trial: optuna.Trial) -> None:
    """Record the trial's first heartbeat now, in this thread, before its worker attr and params.

    Optuna's heartbeat thread (and the batched rounds' own) starts beside the objective; on a loaded CPU
    the objective sampled params and trained before the thread's first beat, so a worker killed then
    left a trial that never beat, which the stale check never fails (CI caught it). A failed beat is not
    raised: the trial's next write reports the storage's problem.
    """
    study = getattr(trial, "study", None)  # a FixedTrial (tests, replays) has no study and no storage
    storage = getattr(study, "_storage", None)
    if storage is not None and is_heartbeat_enabled(storage):
        with contextlib.suppress(Exception):
            storage.record_heartbeat(trial._trial_id)


def worker_id() -> str:
    """host:pid of this process, as stored with every trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def store_result(trial: optuna.Trial, result: TrainResult, *, precision_probe: dict | None = None) -> None:
    """RESULT_ATTRS and the config; with precision "auto", also `precision_probe`: the probe's figures
    and reason (the run's own, or the study's when the study decided auto once: study.auto_precision)."""
    summary = result.summary()
    for key in RESULT_ATTRS:
        trial.set_user_attr(key, summary[key])
    trial.set_user_attr("config", result.config)
    probe = result.precision_probe or precision_probe
    if probe is not None:
        trial.set_user_attr("precision_probe", probe)


def initial_saturation(cfg: RunConfig, split: Split) -> list[float]:
    """Saturation per hidden layer of the trial's initial weights (same seed as the trainer) on a fixed batch:
    the first SATURATION_BATCH images of the normalised training subsample."""
    x = normalizer_for(cfg.data, split.x_train)(split.x_train[:SATURATION_BATCH])
    return saturation_at_init(build_model(cfg.model, seed=cfg.train.seed), torch.from_numpy(x))


def store_measures(trial: optuna.Trial, cfg: RunConfig, result: TrainResult, saturation: list[float]) -> None:
    """The article's per-trial measures (mnist_fc.measures), stored once as user attributes."""
    c = result.curves
    measures = run_measures(
        train_loss=c.train_loss,
        eval_epochs=c.eval_epochs,
        val_accuracy=c.val_accuracy,
        saturation_by_layer=saturation,
        layer_sizes=(cfg.model.n_units_l1, cfg.model.n_units_l2),
    )
    for key, value in measures.to_dict().items():
        trial.set_user_attr(key, value)


@dataclass
class Objective:
    """Callable for `study.optimize`: maximise validation accuracy.

    Diverged trials (NaN/inf loss) have no accuracy: they end PRUNED with diverged=True, so
    samplers learn to avoid them and no made-up value enters the analysis. With `pruning`, the
    study's pruner may also stop a trial at a report (it then ends PRUNED at that epoch).
    The three steps (`sample`, `on_eval`, `finish`) are public so that ask-and-tell loops
    (study.batched_run) treat a trial exactly as `__call__` does.
    """

    space: Space
    base: RunConfig
    split: Split
    curves: CurveStore
    pruning: bool = False
    precision_probe: dict | None = None  # the study's auto-precision decision, stored on every trial
    # Called at every evaluation (trial number, epoch, epochs, validation accuracy): progress within a
    # long trial (study.runner.progress.TrialLog.epoch shows it on the terminal's bar).
    progress: Callable[[int, int, int, float], None] | None = None

    def sample(self, trial: optuna.Trial) -> RunConfig:
        first_beat(trial)
        trial.set_user_attr("worker", worker_id())  # which process ran it: crash reports, parallel studies
        return self.space(trial, self.base)

    def on_eval(self, trial: optuna.Trial, cfg: RunConfig) -> EvalCallback:
        """Report validation accuracy every `report_every` epochs; ask the pruner when pruning."""
        every = report_every(cfg.train.epochs, cfg.train.eval_every)

        def callback(epoch: int, metrics: dict[str, float]) -> bool:
            if self.progress is not None:
                self.progress(trial.number, epoch, cfg.train.epochs, metrics["val_accuracy"])
            if epoch % every and epoch != cfg.train.epochs:
                return False
            trial.report(metrics["val_accuracy"], epoch)
            return self.pruning and trial.should_prune()

        return callback

    def finish(self, trial: optuna.Trial, result: TrainResult) -> float:
        """Store results, measures and curves (one row); return the value, or raise TrialPruned.

        Saturation at init is recomputed here from the config's seed (the trainer's initial
        weights), so every path that trains a trial (alone or batched) stores the same measures.
        """
        cfg = RunConfig.from_dict(result.config)
        store_result(trial, result, precision_probe=self.precision_probe)
        store_measures(trial, cfg, result, initial_saturation(cfg, self.split))
        self.curves.save(
            trial_id=trial._trial_id, study_name=trial.study.study_name, trial_number=trial.number, curves=result.curves
        )
        if result.diverged:
            raise optuna.TrialPruned(f"diverged at epoch {result.epochs}")
        if result.stopped_early:
            raise optuna.TrialPruned(f"pruned at epoch {result.epochs}")
        return result.val_accuracy

    def __call__(self, trial: optuna.Trial) -> float:
        cfg = self.sample(trial)
        result = train(cfg, split=self.split, on_eval=self.on_eval(trial, cfg))
        return self.finish(trial, result)
