"""Real `mnist-study run` worker processes and read-only looks at the study they share.

Used by the crash/resume, parallel and PostgreSQL tests: nothing is mocked, workers are
separate Python processes killed with SIGKILL like a crashed machine.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

REPO = Path(__file__).resolve().parents[2]
# Tiny trials (~1-3 s on a busy 2-core CPU) that still last long enough to be killed mid-way.
TINY = ("--train-size", "200", "--epochs", "100", "--eval-every", "50", "--device", "cpu", "--no-progress")
# Heartbeats every second, but a trial is stale only after 30 s of silence: a dead worker on this host is
# failed at once by its pid, and a grace of 2 s could fail a live worker's trial on a loaded machine (the
# worker survives that, see test_one_trial.py, but here it would blur which trial was killed).
HEARTBEAT = ("--heartbeat", "1", "--grace", "30")


def cli_env() -> dict[str, str]:
    # One thread per worker: several workers share 2 cores, and oversubscribed OpenMP crawls.
    return dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")


def as_from_a_terminal() -> None:
    """SIGINT back to its default in the worker, as a command typed at a terminal has it. A test run
    started in the background by a non-interactive shell (`cmd &`, as CI scripts may) inherits SIGINT
    *ignored*, Python then installs no KeyboardInterrupt handler, and every Ctrl-C test would see a
    worker that ignores Ctrl-C and exits 0."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Worker:
    """One `python -m study run ...` process with its output in files."""

    proc: subprocess.Popen
    out: Path
    err: Path

    @classmethod
    def start(cls, folder: Path, name: str, *args: str) -> Worker:
        out, err = folder / f"{name}.out", folder / f"{name}.err"
        with out.open("w") as o, err.open("w") as e:
            proc = subprocess.Popen(
                [sys.executable, "-m", "study", "run", *args],
                cwd=folder,
                env=cli_env(),
                stdout=o,
                stderr=e,
                preexec_fn=as_from_a_terminal,
            )
        return cls(proc, out, err)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def interrupt(self) -> int:
        """Ctrl-C, as a user at the terminal would press it; returns the exit status."""
        os.kill(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=60)

    def wait(self, timeout: float = 240) -> int:
        return self.proc.wait(timeout=timeout)

    @property
    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def ran(self) -> int:
        """Trials this worker says it ran (its last summary line)."""
        line = next(ln for ln in self.out.read_text().splitlines() if ln.startswith("this worker ran "))
        return int(line.split()[3])


def trials(url: str, study_name: str) -> list[FrozenTrial]:
    """All trials of the study, read with a plain Optuna storage (no heartbeat of its own)."""
    storage = optuna.storages.RDBStorage(url, skip_compatibility_check=True)
    try:
        return optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
    finally:
        storage.engine.dispose()


def trials_so_far(url: str, study_name: str) -> list[FrozenTrial]:
    """`trials`, or none while the study (or its tables) is not created yet."""
    try:
        return trials(url, study_name)
    except Exception:
        return []


def count(ts: list[FrozenTrial], state: TrialState) -> int:
    return sum(t.state == state for t in ts)


def space_size(space: str = "article") -> int:
    """How many params one trial of `space` samples (a kill must land after all of them are stored)."""
    from mnist_fc.config import RunConfig
    from study.spaces import SPACES

    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    SPACES[space](trial, RunConfig())
    return len(trial.params)


def wait_running_trial(
    url: str, study_name: str, *, worker: Worker, min_complete: int, timeout: float = 180
) -> FrozenTrial:
    """A trial `worker` is running, once the study holds `min_complete` COMPLETE trials and every
    param of the trial is stored (so a kill lands inside training, not in sampling or between trials)."""
    suffix = f":{worker.proc.pid}"
    n_params = space_size()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker exited early (rc {worker.proc.returncode}):\n{worker.output}")
        ts = trials_so_far(url, study_name)
        if count(ts, TrialState.COMPLETE) >= min_complete:
            for t in ts:
                # every param committed: the space is sampled, so training (not sampling) is what a kill hits
                sampled = len(t.params) >= n_params
                if t.state == TrialState.RUNNING and sampled and str(t.user_attrs.get("worker", "")).endswith(suffix):
                    return t
        time.sleep(0.1)
    raise AssertionError(f"no running trial of worker {worker.proc.pid} within {timeout} s:\n{worker.output}")


@dataclass
class Kill:
    """What `kill_mid_trial` did: the worker it signalled last, the trial that signal hit, and every
    trial its signals left unfinished."""

    worker: Worker
    trial: int
    # The hit trial, plus any trial a signal that fell *between* trials caught half-started (the
    # next one asked, not yet trained): that one is killed too, and the next worker fails and
    # re-queues it. A CI run failed by counting only the hit trial ("failed trials [2, 3], killed [3]").
    casualties: list[int]


def _unfinished(ts: list[FrozenTrial]) -> set[int]:
    return {t.number for t in ts if t.state in (TrialState.RUNNING, TrialState.FAIL)}


def kill_mid_trial(
    url: str,
    study_name: str,
    start: Callable[[], Worker],
    *,
    min_complete: int,
    ctrl_c: bool = False,
    attempts: int = 3,
) -> Kill:
    """Start a worker, and SIGKILL it (or Ctrl-C it) in the middle of a trial.

    A trial can end in the instant between seeing it RUNNING and the signal; that signal did not
    land mid-trial, so it is checked in the database and tried again with a fresh worker. Each
    signal's casualties are the trials RUNNING or FAILED after it that were neither before the
    worker started (the signalled worker ran alone).
    """
    casualties: set[int] = set()
    rc: int | None = None
    for _ in range(attempts):
        before = _unfinished(trials_so_far(url, study_name))
        worker = start()
        victim = wait_running_trial(url, study_name, worker=worker, min_complete=min_complete)
        if ctrl_c:
            rc = worker.interrupt()
        else:
            worker.kill()
        after = trials(url, study_name)
        casualties |= _unfinished(after) - before
        state = {t.number: t.state for t in after}[victim.number]
        # a kill leaves the hit trial RUNNING (silent); Ctrl-C makes the worker fail (and re-queue) it
        landed = (rc == 130 and state == TrialState.FAIL) if ctrl_c else state == TrialState.RUNNING
        if landed:
            return Kill(worker, victim.number, sorted(casualties))
        if worker.proc.poll() is None:
            worker.kill()
    raise AssertionError(f"{attempts} signals in a row fell between trials")


def sqlite_integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def assert_no_loss(ts: list[FrozenTrial], *, killed: list[int]) -> None:
    """Every killed trial is FAILED and re-run (same params) as a COMPLETE retry; nothing else failed;
    no two trials that ran to the end share their parameters."""
    by_number = {t.number: t for t in ts}
    assert len(by_number) == len(ts), "duplicate trial numbers"
    failed = sorted(t.number for t in ts if t.state == TrialState.FAIL)
    assert failed == sorted(killed), f"failed trials {failed}, killed {killed}"
    assert not [t.number for t in ts if t.state in (TrialState.RUNNING, TrialState.WAITING)], "unfinished trials"
    for n in killed:  # a retry lists the trials it re-runs in retry_history, the one it replaces last
        retries = [t for t in ts if t.system_attrs.get("retry_history", [None])[-1] == n]
        assert len(retries) == 1, f"trial {n} retried {len(retries)} times"
        assert retries[0].params == by_number[n].params
        assert retries[0].state == TrialState.COMPLETE or retries[0].number in killed
    finished = [t for t in ts if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    keys = [tuple(sorted(t.params.items())) for t in finished]
    assert len(set(keys)) == len(keys), "two finished trials ran the same parameters"
