"""Crash and resume: `kill -9` a study mid-trial, rerun the same command, lose nothing."""

from __future__ import annotations

import time
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
        "--epochs",
        "500",  # trials of a few seconds (fp32: bf16 would be faster): long enough for a signal to land inside one
        "--precision",
        "fp32",
        *HEARTBEAT,
    )
    names = iter(f"w{i}" for i in range(100))

    def start() -> Worker:
        return Worker.start(tmp_path, next(names), *command)

    # 1. kill -9 in the middle of a trial: the trial stays RUNNING, silent, until a worker notices.
    dead = kill_mid_trial(url, "crash", start, min_complete=1)
    assert sqlite_integrity(db) == "ok"
    assert count(trials(url, "crash"), TrialState.COMPLETE) >= 1

    # 2. Restart at once (the dead trial is not stale yet: the worker must neither count it as done
    # nor stop before it is retried), then Ctrl-C in the middle of a later trial.
    stopped = kill_mid_trial(url, "crash", start, min_complete=2, ctrl_c=True)
    assert sqlite_integrity(db) == "ok"
    assert f"trial {stopped.trial} re-queued with the same params" in stopped.worker.output
    # one line: not Optuna's two "Trial N failed ... KeyboardInterrupt()" warnings, nor an ExperimentalWarning
    assert stopped.worker.err.read_text().strip() == "mnist-study run: interrupted", stopped.worker.output

    final = Worker.start(tmp_path, "final", *command)
    assert final.wait() == 0, final.output
    assert sqlite_integrity(db) == "ok"
    ts = trials(url, "crash")
    assert count(ts, TrialState.COMPLETE) == TARGET
    assert_no_loss(ts, killed=dead.casualties + stopped.casualties)
    assert "(retry of trial " in final.output  # the retries themselves are checked above, chains included
    assert "Traceback" not in stopped.worker.output + final.output


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


def test_kill_9_then_rerun_with_trials_leaves_no_trial_running(tmp_path: Path) -> None:
    """Issue 12: the killed trial stayed RUNNING after the rerun ended (it waited for the heartbeat grace).
    A dead pid on this host is dead now: the rerun fails and re-queues it at once, default grace or not."""
    url = f"sqlite:///{tmp_path / 'dead.db'}"
    # default heartbeat: 30 s; fp32 and 500 epochs: trials long enough for a kill to land inside one
    command = ("--storage", url, "--study-name", "dead", "--seed", "5", *TINY, "--epochs", "500", "--precision", "fp32")
    names = iter(f"w{i}" for i in range(10))

    def start() -> Worker:
        return Worker.start(tmp_path, next(names), *command, "--trials", "5")

    kill = kill_mid_trial(url, "dead", start, min_complete=0)
    # a trial per casualty: enough for every retry (a kill that first fell between trials leaves a half-started one too)
    rerun = Worker.start(tmp_path, "rerun", *command, "--trials", str(len(kill.casualties)))
    assert rerun.wait() == 0, rerun.output
    ts = trials(url, "dead")
    assert not [t.number for t in ts if t.state == TrialState.RUNNING]
    by_number = {t.number: t for t in ts}
    for dead in kill.casualties:
        assert by_number[dead].state == TrialState.FAIL
        retries = [t for t in ts if t.system_attrs.get("retry_history", [None])[-1] == dead]
        assert len(retries) == 1 and retries[0].params == by_number[dead].params
        # run to the end by the rerun, or itself killed by a later signal of kill_mid_trial (then retried in turn)
        assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED) or retries[0].number in kill.casualties
    assert f"trial {kill.trial} of a dead worker on this host: failed and re-queued" in rerun.output


def test_ctrl_c_in_the_first_seconds_prints_no_traceback(tmp_path: Path) -> None:
    """Issue 12: Ctrl-C during start-up (imports, data loading, opening the study) printed 30-40-line tracebacks."""
    url = f"sqlite:///{tmp_path / 'early.db'}"
    for i, delay in enumerate((0.3, 1.0, 2.0, 3.5)):
        w = Worker.start(tmp_path, f"early{i}", "--storage", url, "--study-name", "early", "--trials", "3", *TINY)
        time.sleep(delay)
        rc = w.interrupt()
        assert rc == 130, (delay, rc, w.output)
        assert "Traceback" not in w.output and "interrupted" in w.output, (delay, w.output)
        if (tmp_path / "early.db").exists():
            try:
                ts = trials(url, "early")
            except KeyError:  # interrupted before the study was created
                continue
            assert not [t.number for t in ts if t.state == TrialState.RUNNING], delay
