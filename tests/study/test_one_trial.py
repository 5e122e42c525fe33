"""A live worker whose trial another worker failed as stale (a late heartbeat) drops it and goes on.

A CI run failed this way: on a loaded 2-core machine one PostgreSQL worker's heartbeat was late,
another worker failed its trial as stale and re-queued it, and the live worker then exited with
"bug: ValueError: Cannot tell a FAIL trial." instead of running the next trial.
"""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from study.runner.one_trial import optimize_n, optimize_one
from study.runner.recovery import _fail, _retry
from study.storage import open_storage
from tests.study.workers import TINY, Worker, assert_no_loss, count, trials, wait_running_trial


def _as_another_worker(url: str, trial_id: int) -> None:
    """What another worker's heartbeat check does to a trial it thinks stale: FAIL, then a WAITING copy."""
    other = optuna.load_study(study_name="s", storage=open_storage(url))
    failed = _fail(other, other._storage.get_trial(trial_id))
    assert failed is not None
    _retry(other, failed)


@pytest.mark.parametrize("write_after", [False, True], ids=["returns-a-value", "reports-again"])
def test_a_trial_failed_by_another_worker_is_dropped_and_its_copy_runs(tmp_path: Path, write_after: bool) -> None:
    url = f"sqlite:///{tmp_path / 'takeover.db'}"
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    calls: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        calls.append(trial.number)
        if len(calls) == 1:
            _as_another_worker(url, trial._trial_id)
            if write_after:  # the next write of the live worker (an evaluation's report) meets the FAIL
                trial.report(0.5, step=1)
        return x

    assert optimize_one(study, objective) is False
    assert optimize_one(study, objective) is True
    ts = study.get_trials()
    assert [t.state for t in ts] == [TrialState.FAIL, TrialState.COMPLETE]
    assert ts[1].params == ts[0].params and ts[1].system_attrs["retry_history"] == [0]
    assert calls == [0, 1]


def test_the_objectives_own_errors_still_stop_the_worker(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="s", storage=open_storage(f"sqlite:///{tmp_path / 'own.db'}"))

    def objective(trial: optuna.Trial) -> float:
        raise ValueError("a bad value of our own")

    with pytest.raises(ValueError, match="a bad value of our own"):
        optimize_one(study, objective)
    with pytest.raises(ZeroDivisionError):
        optimize_n(study, lambda t: 1 / 0, n_trials=3)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.FAIL]


def test_optimize_n_runs_n_trials_and_stops_at_the_timeout(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="s", storage=open_storage(f"sqlite:///{tmp_path / 'n.db'}"))
    optimize_n(study, lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert count(study.get_trials(), TrialState.COMPLETE) == 3

    def slow(trial: optuna.Trial) -> float:
        time.sleep(0.3)
        return 0.0

    optimize_n(study, slow, n_trials=100, timeout=0.5)  # as Optuna: no new trial once the timeout has passed
    assert 1 <= len(study.get_trials()) - 3 <= 2


@pytest.mark.parametrize("mode", [(), ("--trials", "2")], ids=["until-complete", "trials"])
def test_the_real_worker_survives_a_false_stale_verdict(tmp_path: Path, mode: tuple[str, ...]) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    args = mode or ("--until-complete", "2")
    # fp32, 500 epochs: trials of a few seconds, so the verdict lands while the trial trains
    w = Worker.start(
        tmp_path, "live", "--storage", url, "--study-name", "s", *args, *TINY, "--epochs", "500", "--precision", "fp32"
    )
    victim = wait_running_trial(url, "s", worker=w, min_complete=0)
    _as_another_worker(url, victim._trial_id)
    assert w.wait() == 0, w.output
    assert f"Trial {victim.number} was failed as stale by another worker" in w.output
    assert "Traceback" not in w.output and "bug:" not in w.output
    ts = trials(url, "s")
    if mode:  # --trials 2: the dropped trial counts as one of this worker's two; the second pops its copy
        assert [t.state for t in ts] == [TrialState.FAIL, TrialState.COMPLETE]
    else:  # --until-complete 2: the copy and one more
        assert count(ts, TrialState.COMPLETE) == 2
    assert_no_loss(ts, killed=[victim.number])


def test_a_batched_worker_drops_the_taken_over_member_and_tells_the_others(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'batch.db'}"
    w = Worker.start(
        tmp_path,
        "batch",
        *("--storage", url, "--study-name", "s", "--trials", "2", "--batch-trials", "2"),
        *(*TINY, "--epochs", "500", "--precision", "fp32"),
    )
    victim = wait_running_trial(url, "s", worker=w, min_complete=0)
    _as_another_worker(url, victim._trial_id)
    assert w.wait() == 0, w.output
    assert f"Trial {victim.number} was failed as stale by another worker" in w.output
    assert "Traceback" not in w.output and "bug:" not in w.output
    by_number = {t.number: t for t in trials(url, "s")}
    assert by_number.pop(victim.number).state == TrialState.FAIL
    copy = next(t for t in by_number.values() if t.system_attrs.get("retry_history") == [victim.number])
    assert copy.state == TrialState.WAITING  # --trials 2 ran one round of two; the copy waits for the next run
    others = [t for t in by_number.values() if t.number != copy.number]
    assert len(others) == 1 and others[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
