"""Crash and resume: `kill -9` a study mid-trial, rerun the same command, lose nothing."""

from __future__ import annotations

from pathlib import Path

from optuna.trial import TrialState

from study.cli import main
from tests.study.workers import (
    HEARTBEAT,
    TINY,
    Worker,
    assert_no_loss,
    count,
    kill_mid_trial,
    sqlite_integrity,
    trials,
)

TARGET = 5  # room for a kill and a Ctrl-C with trials still to run


def test_kill_9_and_ctrl_c_mid_trial_then_same_command_resumes_to_target(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    url = f"sqlite:///{db}"
    command = (
        "--storage",
        url,
        "--study-name",
        "crash",
        "--until-complete",
        str(TARGET),
        "--seed",
        "3",
        *TINY,
        *HEARTBEAT,
    )
    names = iter(f"w{i}" for i in range(100))

    def start() -> Worker:
        return Worker.start(tmp_path, next(names), *command)

    # 1. kill -9 in the middle of a trial: the trial stays RUNNING, silent, until a worker notices.
    _, dead = kill_mid_trial(url, "crash", start, min_complete=1)
    assert sqlite_integrity(db) == "ok"
    assert count(trials(url, "crash"), TrialState.COMPLETE) >= 1

    # 2. Restart at once (the dead trial is not stale yet: the worker must neither count it as done
    # nor stop before it is retried), then Ctrl-C in the middle of a later trial.
    worker, stopped = kill_mid_trial(url, "crash", start, min_complete=2, ctrl_c=True)
    assert sqlite_integrity(db) == "ok"
    assert f"trial {stopped} re-queued with the same params" in worker.output

    final = Worker.start(tmp_path, "final", *command)
    assert final.wait() == 0, final.output
    assert sqlite_integrity(db) == "ok"
    ts = trials(url, "crash")
    assert count(ts, TrialState.COMPLETE) == TARGET
    assert_no_loss(ts, killed=[dead, stopped])
    assert "(retry of trial " in final.output  # the retries themselves are checked above, chains included
    assert "Traceback" not in worker.output + final.output


def test_trials_means_n_more_and_until_complete_is_idempotent(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'more.db'}"
    base = ["run", "--storage", url, "--study-name", "more", *TINY, "--epochs", "10", "--eval-every", "5"]
    assert main([*base, "--trials", "1"]) == 0
    assert main([*base, "--trials", "1"]) == 0
    assert count(trials(url, "more"), TrialState.COMPLETE) == 2  # --trials N: N more
    assert main([*base, "--until-complete", "3"]) == 0
    assert count(trials(url, "more"), TrialState.COMPLETE) == 3
    capsys.readouterr()
    assert main([*base, "--until-complete", "3"]) == 0  # already there: nothing to do
    assert "this worker ran 0 trials" in capsys.readouterr().out
    assert len(trials(url, "more")) == 3


def test_resume_with_other_training_settings_is_refused(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'same.db'}"
    base = ["run", "--storage", url, "--study-name", "same", *TINY, "--epochs", "10", "--eval-every", "5"]
    assert main([*base, "--trials", "1"]) == 0
    capsys.readouterr()
    assert main([*base, "--epochs", "20", "--trials", "1"]) == 2  # a worker started with other settings
    assert "epochs 10 (this run: 20)" in capsys.readouterr().err
    assert len(trials(url, "same")) == 1
