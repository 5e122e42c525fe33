"""Trials whose worker is gone: re-queue them (same params) instead of losing or leaving them RUNNING.

Three ways a worker goes away: Ctrl-C (this process, `requeue_interrupted`), `kill -9` or a crash
on THIS host (`fail_dead_local_trials`: its pid no longer exists, so it is dead now), and a crash
on another host (Optuna's heartbeat: `fail_stale_trials` after the grace period). A worker killed
between Optuna's ask() and its trial's first beat (a few milliseconds) leaves a trial that never beat,
which Optuna's stale check skips and no pid names: `fail_stale_trials` also fails a trial this process
has watched stay RUNNING without any beat for the grace period (a live one beats within milliseconds).
"""

from __future__ import annotations

import datetime
import os
import socket
import time
import warnings
from collections.abc import Collection, Sequence

import optuna
import sqlalchemy as sa
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from study.objective import worker_id
from study.storage import MAX_RETRY


def _retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a copy of the FAILED `trial` (WAITING, same params, retry_history), as Optuna's heartbeat does."""
    with warnings.catch_warnings():  # "experimental" in Optuna's words only; the CLI's promise is one line
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, trial)


def retries_left(trial: FrozenTrial) -> bool:
    """Whether failing `trial` queues a copy: Optuna's retry callback stops after MAX_RETRY copies."""
    return len(trial.system_attrs.get("retry_history") or []) < MAX_RETRY


def split_requeued(study: optuna.Study, numbers: Collection[int]) -> tuple[list[int], list[int]]:
    """(re-queued, not re-queued: retries used up) among the failed trials `numbers`, for what to say."""
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    again = [n for n in numbers if n in by_number and retries_left(by_number[n])]
    return again, [n for n in numbers if n not in again]


def _fail(study: optuna.Study, trial: FrozenTrial) -> FrozenTrial | None:
    """Mark a RUNNING trial FAILED; None if another process finished or failed it first."""
    storage = study._storage  # Optuna has no public "fail this trial" outside ask/tell of one's own trial
    try:
        if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            return None
    except RuntimeError:  # UpdateFinishedTrialError: someone else got there first
        return None
    return storage.get_trial(trial._trial_id)


def fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's heartbeat check: RUNNING trials silent for the grace period are failed and re-queued;
    and those that never beat at all, once this process has watched them for the grace period."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    fail_never_beaten(study)


# (storage URL, trial id) -> monotonic time at which this process first saw the trial RUNNING without a
# heartbeat. A clock of our own: trials' start times are each worker's naive local time, which differs
# between hosts. The URL keeps trial ids of two storages in one process (tests) apart.
_UNBEATEN: dict[tuple[str, int], float] = {}


def fail_never_beaten(study: optuna.Study, *, now: float | None = None) -> list[int]:
    """Fail (and re-queue, when it had params) every RUNNING trial that this process has seen without a
    heartbeat for longer than the grace period: its worker died between ask() and its first beat.

    Without this, `--until-complete N` counted such a trial as running forever and never finished."""
    storage = getattr(study._storage, "_backend", study._storage)  # Optuna wraps an RDBStorage in a cache
    engine = getattr(storage, "engine", None)
    if engine is None or not is_heartbeat_enabled(storage):
        return []
    grace = storage.grace_period or 2 * storage.heartbeat_interval  # type: ignore[attr-defined]
    now = time.monotonic() if now is None else now
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    ids = {t._trial_id for t in running}
    where = str(engine.url)
    for gone in [k for k in _UNBEATEN if k[0] == where and k[1] not in ids]:
        del _UNBEATEN[gone]
    if not running:
        return []
    query = sa.text("SELECT trial_id FROM trial_heartbeats WHERE trial_id IN :ids").bindparams(
        sa.bindparam("ids", expanding=True)
    )
    with engine.connect() as conn:
        beaten = {row[0] for row in conn.execute(query, {"ids": sorted(ids)})}
    failed = []
    for t in running:
        key = (where, t._trial_id)
        if t._trial_id in beaten:
            _UNBEATEN.pop(key, None)
            continue
        if now - _UNBEATEN.setdefault(key, now) <= grace:
            continue
        del _UNBEATEN[key]
        done = _fail(study, t)
        if done is not None:
            if done.params:  # a popped retry copy; one killed before sampling has nothing to repeat
                _retry(study, done)
            failed.append(t.number)
    return failed


def _local_pid(worker: str) -> int | None:
    host, _, pid = worker.rpartition(":")
    return int(pid) if host == socket.gethostname() and pid.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def runners(trials: Sequence[FrozenTrial]) -> dict[int, str | None]:
    """Trial number -> the worker (host:pid) running it, or None while that is not known yet.

    A re-queued copy carries the user attrs of the trial it replaces, "worker" included (Optuna's
    retry callbacks copy them). From the moment another worker pops the copy (RUNNING) until its
    objective stores its own "worker", the attr still names the dead worker: read as the runner, it
    made a third worker fail a live trial (a CI run and a fresh-clone run did). So an attr equal to
    the replaced trial's is not evidence of who runs the copy.
    """
    attr = {t.number: t.user_attrs.get("worker") for t in trials}
    who: dict[int, str | None] = {}
    for t in trials:
        history = t.system_attrs.get("retry_history") or []
        inherited = bool(history) and attr.get(history[-1]) == attr[t.number]
        who[t.number] = None if attr[t.number] is None or inherited else str(attr[t.number])
    return who


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail and re-queue, at once, RUNNING trials whose worker (host:pid) ran on this host and is gone.

    No heartbeat grace is needed for them: the pid's absence proves the worker dead. Trials of
    other hosts, and copies whose runner is not known yet, keep waiting for the heartbeat. Returns
    the numbers of the trials failed here.
    """
    done = []
    trials = study.get_trials(deepcopy=False)
    who = runners(trials)
    for t in trials:
        if t.state != TrialState.RUNNING:
            continue
        pid = _local_pid(who[t.number] or "")
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        failed = _fail(study, t)
        if failed is not None:
            _retry(study, failed)
            done.append(t.number)
    return done


def requeue_interrupted(
    study: optuna.Study, *, worker: str | None = None, since: datetime.datetime, numbers: Collection[int] = ()
) -> list[int]:
    """Re-queue (WAITING, same params) the trials this process was running when Ctrl-C stopped it.

    Optuna marks an interrupted trial FAILED but, unlike a crashed worker's stale trial, does
    not retry it; this does, so a resumed study loses nothing a user stopped by hand. A trial
    the interrupt left RUNNING (Ctrl-C inside a storage write) is failed first. `numbers`: trials this
    process started, also those interrupted before they could store their "worker" attribute.
    """
    worker = worker or worker_id()
    trials = study.get_trials(deepcopy=False)
    who = runners(trials)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    again = []
    for t in trials:
        # A Ctrl-C inside Optuna's ask() leaves a trial RUNNING before any of our code saw it: no
        # "worker" attr, started since we did. It can only be ours, or another worker's in the few
        # milliseconds before it stores its worker attr; the first is far likelier, and a trial
        # failed by mistake is re-queued with its params all the same.
        orphan = (
            t.state == TrialState.RUNNING
            and who[t.number] is None
            and t.datetime_start is not None
            and t.datetime_start >= since
        )
        if (who[t.number] != worker and t.number not in numbers and not orphan) or t.number in retried:
            continue
        if t.state == TrialState.RUNNING:
            failed = _fail(study, t)
        elif t.state == TrialState.FAIL and t.datetime_start is not None and t.datetime_start >= since:
            failed = t
        else:
            continue
        if failed is not None:
            _retry(study, failed)
            again.append(t.number)
    return again
