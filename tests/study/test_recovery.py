"""Whose trial is it? A re-queued copy inherits the dead worker's "worker" attr until it is run.

A CI run and a fresh-clone run failed on this: worker A died mid-trial; worker B failed its trial and queued a copy
(Optuna copies the user attrs, "worker" included) and popped it; before B's objective stored its own
"worker", worker C read the inherited attr, saw a dead pid and failed B's live trial.
"""

from __future__ import annotations

import datetime
import socket
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from study.runner.progress import worker_summary
from study.runner.recovery import fail_dead_local_trials, requeue_interrupted, runners
from study.storage import open_storage


def _dead_worker() -> str:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return f"{socket.gethostname()}:{int(proc.stdout)}"  # that process has exited: its pid is free


def _study_with_a_dead_trial(tmp_path: Path, dead: str) -> optuna.Study:
    study = optuna.create_study(study_name="s", storage=open_storage(f"sqlite:///{tmp_path / 'r.db'}"))
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr("worker", dead)  # killed mid-trial: RUNNING, its worker gone
    return study


def test_a_popped_copy_is_not_failed_for_the_dead_worker_it_replaces(tmp_path: Path) -> None:
    dead = _dead_worker()
    study = _study_with_a_dead_trial(tmp_path, dead)
    assert fail_dead_local_trials(study) == [0]
    copy = study.ask()  # worker B pops the copy: RUNNING, user attrs inherited, its own "worker" not yet stored
    assert copy.number == 1 and study.trials[1].user_attrs["worker"] == dead
    assert fail_dead_local_trials(study) == []  # worker C, looking in that instant
    assert study.trials[1].state == TrialState.RUNNING
    assert runners(study.trials) == {0: dead, 1: None}


def test_a_copy_whose_own_worker_died_is_failed_again(tmp_path: Path) -> None:
    study = _study_with_a_dead_trial(tmp_path, _dead_worker())
    fail_dead_local_trials(study)
    copy = study.ask()
    copy.set_user_attr("worker", _dead_worker())  # B stored itself, then died too
    assert fail_dead_local_trials(study) == [1]
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.FAIL, TrialState.WAITING]
    assert study.trials[2].system_attrs["retry_history"] == [0, 1]


def test_ctrl_c_of_the_dead_workers_namesake_leaves_the_copy_alone(tmp_path: Path) -> None:
    """requeue_interrupted and worker_summary read the runner the same way."""
    dead = _dead_worker()
    study = _study_with_a_dead_trial(tmp_path, dead)
    since = datetime.datetime.now()
    fail_dead_local_trials(study)
    study.ask()  # popped by someone else in the instant before its "worker" is stored
    assert requeue_interrupted(study, worker=dead, since=since + datetime.timedelta(hours=1)) == []
    assert study.trials[1].state == TrialState.RUNNING
    assert worker_summary(study, workers={dead: "w1"}) == [f"w1 ({dead}): 1 trial (0 complete, 0 pruned, 1 failed)"]


def test_a_trial_whose_retries_are_used_up_is_not_called_re_queued() -> None:
    import warnings

    import optuna

    from study.runner.recovery import split_requeued
    from study.storage import MAX_RETRY

    study = optuna.create_study(direction="maximize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for history in ([], list(range(MAX_RETRY - 1)), list(range(MAX_RETRY))):
            study.add_trial(
                optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, system_attrs={"retry_history": history})
            )
    assert split_requeued(study, [0, 1, 2]) == ([0, 1], [2])
