"""Heartbeats for ask-and-tell rounds, which (unlike `study.optimize`) get no heartbeat thread from Optuna.

Without one, a batched worker killed on another host left its trials RUNNING forever: Optuna's stale
check skips trials that never beat, and the pid check only sees workers on its own host. The beats come
from a thread, not from training callbacks: callbacks come only as often as evaluations, so a long
evaluation interval (or a loaded CPU) let a live round's trials go stale.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Iterator, Sequence

import optuna
from optuna.storages._heartbeat import BaseHeartbeat

THREAD_NAME = "mnist-study heartbeat"


def interval_of(study: optuna.Study) -> float | None:
    """The storage's heartbeat interval in seconds (the run's --heartbeat), or None when it has none."""
    storage = study._storage
    return storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None


@contextlib.contextmanager
def beating(study: optuna.Study, trials: Sequence[optuna.Trial], *, finished: Collection[int] = ()) -> Iterator[None]:
    """While the block runs, record a heartbeat for every trial of `trials` whose index is not (yet) in
    `finished`, at once and then every half heartbeat interval, from a thread.

    A beat that fails (database gone, disk full) is skipped, not raised: the round's own thread writes to
    the same storage and reports the problem in one line; at worst the trial goes stale and is re-queued.
    """
    interval = interval_of(study)
    if interval is None or not trials:
        yield
        return
    storage = study._storage
    stop = threading.Event()

    def beat() -> None:
        while True:
            for i, trial in enumerate(trials):
                if i not in finished:
                    with contextlib.suppress(Exception):
                        storage.record_heartbeat(trial._trial_id)
            if stop.wait(interval / 2):
                return

    thread = threading.Thread(target=beat, name=THREAD_NAME, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
