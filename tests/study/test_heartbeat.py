"""study/runner/heartbeat.py: batched (ask-and-tell) rounds beat for their trials, so a batched worker killed
on another host is noticed by the heartbeat like any other (its pid cannot be checked from here)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from optuna.trial import TrialState

from tests.study.workers import TINY, Worker, assert_no_loss, space_size, trials, trials_so_far

LONG = (*TINY, "--epochs", "500", "--precision", "fp32")  # seconds per round: a kill lands inside training
BEAT = ("--heartbeat", "1", "--grace", "3")


def _as_if_on_another_host(db: Path, numbers: list[int]) -> None:
    """Rename the killed worker's host in its trials' "worker" attr: this host's pid check then cannot
    vouch for it, as for a machine elsewhere, and only a heartbeat can show it dead."""
    with sqlite3.connect(db) as conn:
        for n in numbers:
            conn.execute(
                "UPDATE trial_user_attributes SET value_json = ? WHERE key = 'worker' AND trial_id = "
                "(SELECT trial_id FROM trials WHERE number = ?)",
                (json.dumps("elsewhere.example:1"), n),
            )


def _beats(db: Path, numbers: list[int]) -> int:
    with sqlite3.connect(db) as conn:
        q = "SELECT COUNT(*) FROM trial_heartbeats JOIN trials USING (trial_id) WHERE number IN (%s)"
        return conn.execute(q % ",".join("?" * len(numbers)), numbers).fetchone()[0]


def _round_training(url: str, study_name: str, worker: Worker) -> list[int]:
    """The two trials of the worker's first round, once both are sampled: from then on it trains them."""
    n_params, deadline = space_size(), time.monotonic() + 180
    while True:
        assert time.monotonic() < deadline and worker.proc.poll() is None, worker.output
        ts = trials_so_far(url, study_name)
        running = [t.number for t in ts if t.state == TrialState.RUNNING and len(t.params) >= n_params]
        if len(running) == 2:
            return running
        time.sleep(0.1)


def test_a_batched_worker_killed_elsewhere_is_failed_by_heartbeat_and_rerun(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    url = f"sqlite:///{db}"
    args = ("--storage", url, "--study-name", "b", "--batch-trials", "2", *LONG, *BEAT)
    worker = Worker.start(tmp_path, "b0", *args, "--trials", "4")
    running = _round_training(url, "b", worker)  # the kill lands in both members' training
    worker.kill()
    assert [t.number for t in trials(url, "b") if t.state == TrialState.RUNNING] == running
    assert _beats(db, running) == 2  # every member of the killed round beat
    _as_if_on_another_host(db, running)
    time.sleep(4.5)  # past the grace (3 s)
    rerun = Worker.start(tmp_path, "b1", *args, "--trials", str(len(running)))
    assert rerun.wait() == 0, rerun.output
    assert "Traceback" not in rerun.output
    assert_no_loss(trials(url, "b"), killed=running)  # failed, re-queued and run to the end


def test_a_live_batched_worker_beats_within_a_short_grace(tmp_path: Path) -> None:
    """Beats follow the run's --heartbeat, from a thread: at a fixed 15 s, every batched trial of a
    `--heartbeat 1 --grace 3` run looked dead to the other workers after 3 s; beating from the training
    callbacks, it did whenever evaluations were further apart than the grace (one at the end here, and a
    loaded CPU did the same to `--eval-every 50`)."""
    import optuna

    from study.storage import open_storage

    url = f"sqlite:///{tmp_path / 'live.db'}"
    args = ("--storage", url, "--study-name", "live", "--batch-trials", "2", "--trials", "2", *LONG, *BEAT)
    args = (*args, "--eval-every", "500")  # no evaluation until the round's end
    worker = Worker.start(tmp_path, "live", *args)
    _round_training(url, "live", worker)
    other = open_storage(url, heartbeat=1, grace=3)  # another worker's stale check, again and again
    study = optuna.load_study(study_name="live", storage=other)
    stop = time.monotonic() + 5.0  # past the grace while the round trains (~6 s on an idle CPU)
    while time.monotonic() < stop and worker.proc.poll() is None:
        optuna.storages.fail_stale_trials(study)
        time.sleep(0.25)
    assert worker.wait() == 0, worker.output
    states = [t.state for t in trials(url, "live")]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE], (states, worker.output)


def test_a_trial_beats_before_its_params_are_stored(tmp_path: Path) -> None:
    """The first beat is the objective's own, before the worker attr and the params: no heartbeat thread
    runs here at all, as on a loaded CPU where the thread's first beat came after sampling and training
    had begun. A worker killed from then on leaves a trial the stale check can fail (the batched test
    above failed in CI this way: both trials had params, neither had beaten)."""
    from study.designs import design_base, design_space
    from study.objective import Objective
    from study.runner.designs import enqueue, open_design_study
    from study.storage import curve_store, open_storage
    from tests.study.test_designs import TINY as DESIGN

    db = tmp_path / "d.db"
    storage = open_storage(f"sqlite:///{db}", heartbeat=1, grace=2)
    study = open_design_study(storage, DESIGN, "t_")
    enqueue(study, DESIGN)
    objective = Objective(space=design_space(DESIGN), base=design_base(DESIGN), split=None, curves=curve_store(storage))
    trial = study.ask()
    assert _beats(db, [trial.number]) == 0
    objective.sample(trial)
    assert study.trials[trial.number].params and _beats(db, [trial.number]) == 1


def test_a_trial_whose_worker_died_before_its_first_beat_does_not_block_until_complete(tmp_path: Path) -> None:
    """A worker killed between ask() and the objective's first beat (a few milliseconds; a helper's timed
    kills hit it 4 times in 4) left a trial RUNNING with no beat and no worker: Optuna's stale check skips
    it, no pid names it, and `--until-complete N` counted it as running forever."""
    import optuna

    from study.runner.recovery import fail_never_beaten
    from study.storage import open_storage

    url = f"sqlite:///{tmp_path / 's.db'}"
    hb = ("--heartbeat", "1", "--grace", "2")
    first = Worker.start(tmp_path, "w0", "--storage", url, "--study-name", "s", "--until-complete", "1", *TINY, *hb)
    assert first.wait() == 0, first.output
    storage = open_storage(url, heartbeat=1, grace=2)
    study = optuna.load_study(study_name="s", storage=storage)
    orphan = study.ask()  # what the killed worker left: RUNNING, never beaten, no params, no worker attr
    assert fail_never_beaten(study, now=0.0) == []  # first sight: a live trial beats within milliseconds
    assert fail_never_beaten(study, now=1.0) == []  # inside the grace period
    assert fail_never_beaten(study, now=3.0) == [orphan.number]
    assert study.trials[orphan.number].state == TrialState.FAIL
    assert len(study.trials) == 2  # no params: nothing to repeat, so no copy is queued

    second = study.ask()  # the same again, left for the next command to find
    start = time.monotonic()
    again = Worker.start(tmp_path, "w1", "--storage", url, "--study-name", "s", "--until-complete", "2", *TINY, *hb)
    assert again.wait(timeout=240) == 0, again.output
    states = {t.number: t.state for t in trials(url, "s")}
    assert states[second.number] == TrialState.FAIL
    assert sum(s == TrialState.COMPLETE for s in states.values()) == 2
    assert time.monotonic() - start < 200
