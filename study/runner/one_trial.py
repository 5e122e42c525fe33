"""One trial through `study.optimize`, surviving a heartbeat false positive.

A live worker whose heartbeat is late (a loaded machine, a slow database commit) can have its
RUNNING trial failed as stale by another worker, which re-queues a copy with the same params.
The live worker then finds its trial finished: its next write raises UpdateFinishedTrialError,
and Optuna's own tell raises ``ValueError("Cannot tell a FAIL trial.")`` out of `study.optimize`.
That worker is not broken and its trial is not lost (the copy runs), so it drops its result,
says so in one line, and goes on to the next trial instead of exiting with a "bug".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from study import interrupt

Callback = Callable[[optuna.Study, FrozenTrial], None]

_log = logging.getLogger("optuna")  # the stream Optuna's own trial lines use, so the line sits beside them


def optimize_one(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    callbacks: Sequence[Callback] = (),
    catch: tuple[type[Exception], ...] = (),
) -> bool:
    """Run one trial; False when another worker failed it as stale meanwhile (its re-queued copy runs).

    Taken over means: a write of the objective met the finished trial (UpdateFinishedTrialError), or
    the trial was finished before Optuna's tell (only another process finishes it then), or the
    objective returned and `study.optimize` still raised with the trial FAILED (the verdict landed
    between our return and Optuna's tell, whose refusal surfaces as ValueError or AssertionError).
    """
    asked: list[optuna.Trial] = []
    seen = {"returned": False, "finished_early": False}

    def tracked(trial: optuna.Trial) -> float:
        asked.append(trial)
        try:
            value = objective(trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            seen["finished_early"] = True
            raise
        except Exception:  # not Ctrl-C: that goes straight up to the re-queue, with no storage read first
            seen["finished_early"] = stored_state(study, trial).is_finished()
            raise
        seen["returned"] = True
        seen["finished_early"] = stored_state(study, trial).is_finished()
        return value

    interrupt.check()  # a Ctrl-C held out of database code (study/interrupt.py) must not ask a new trial first
    try:
        study.optimize(tracked, n_trials=1, callbacks=list(callbacks), catch=catch, show_progress_bar=False)
    except Exception:
        taken = asked and (
            seen["finished_early"] or (seen["returned"] and stored_state(study, asked[0]) == TrialState.FAIL)
        )
        if not taken:
            raise
        log_taken_over(asked[0].number)
        return False
    return True


def log_taken_over(number: int) -> None:
    _log.warning(
        "Trial %d was failed as stale by another worker (its heartbeat was late) and re-queued with the "
        "same params; this worker drops its result and goes on.",
        number,
    )


def stored_state(study: optuna.Study, trial: optuna.Trial) -> TrialState:
    """The trial's state in the storage now (another process may have finished it)."""
    return study._storage.get_trial(trial._trial_id).state


def optimize_n(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    n_trials: int,
    timeout: float | None = None,
    callbacks: Sequence[Callback] = (),
) -> None:
    """`study.optimize(n_trials=..., timeout=...)`, one trial at a time through `optimize_one`."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for _ in range(n_trials):
        if deadline is not None and time.monotonic() >= deadline:
            return
        optimize_one(study, objective, callbacks=callbacks)
