"""What a running study prints: a bar on a terminal, plain lines in a log, a summary per worker.

Progress bars (tqdm, as Optuna's own) go to a terminal only: redirected to a file they would
fill it with carriage-return frames, so a log gets one plain line per finished trial instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from study import interrupt
from study.runner.recovery import runners


def counts(trials: Iterable[FrozenTrial]) -> str:
    """'5 trials (3 complete, 1 pruned, 1 failed)'."""
    ts = list(trials)
    n = {s: sum(t.state == s for t in ts) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    trials = "1 trial" if len(ts) == 1 else f"{len(ts)} trials"
    return f"{trials} ({n[TrialState.COMPLETE]} complete, {n[TrialState.PRUNED]} pruned, {n[TrialState.FAIL]} failed)"


def trial_line(trial: FrozenTrial) -> str:
    history = trial.system_attrs.get("retry_history")  # the trials it re-runs, the one it replaces last
    again = f" (retry of trial {history[-1]})" if history else ""
    value = f" value {trial.value:.4f}" if trial.value is not None else ""
    secs = trial.duration.total_seconds() if trial.duration is not None else None
    took = f" in {secs:.1f} s" if secs is not None else ""
    return f"trial {trial.number}{again}: {trial.state.name}{value}{took}"


class TrialLog:
    """Optuna callback: a tqdm bar on a terminal (stderr) when `bar`, else one plain line per finished trial.

    Keeps the trials it saw, for the worker's closing summary.
    """

    def __init__(self, *, total: int | None, bar: bool = True, prefix: str = "") -> None:
        self.ran: list[FrozenTrial] = []
        self.prefix = prefix
        self._bar: Any = None
        if bar and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="trial", file=sys.stderr, dynamic_ncols=True)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.ran.append(trial)
        interrupt.check()  # stop at a trial boundary if a Ctrl-C was swallowed during the trial
        if self._bar is not None:
            self._bar.update(1)
            best = max((t.value for t in self.ran if t.value is not None), default=None)
            if best is not None:
                self._bar.set_postfix_str(f"best of these {best:.4f}")
        else:
            print(f"{self.prefix}{trial_line(trial)}", flush=True)

    def epoch(self, number: int, epoch: int, epochs: int, val_accuracy: float) -> None:
        """Progress inside a long trial, on the bar only (a log gets its line when the trial ends)."""
        if self._bar is not None:
            self._bar.set_postfix_str(f"trial {number}: epoch {epoch}/{epochs}, val {val_accuracy:.4f}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def worker_summary(study: optuna.Study, *, workers: dict[str, str]) -> list[str]:
    """One line per worker id in `workers` (id -> label): what its trials ended as."""
    by_worker: dict[str, list[FrozenTrial]] = {w: [] for w in workers}
    trials = study.get_trials(deepcopy=False)
    who = runners(trials)  # not a re-queued copy's inherited attr
    for t in trials:
        w = who[t.number]
        if w in by_worker:
            by_worker[w].append(t)
    return [f"{label} ({w}): {counts(by_worker[w])}" for w, label in workers.items()]


Echo = Callable[[str], None]
