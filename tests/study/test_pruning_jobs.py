"""Pruners, parallel workers on one SQLite study, and batched trials through the real CLI."""

import multiprocessing
import sqlite3
import time

import optuna
import pytest

from study.errors import UserError
from study.pruners import make_pruner
from study.storage import open_storage
from tests.study.workers import Worker, trials

TINY = ("--epochs", "10", "--eval-every", "5", "--train-size", "500", "--device", "cpu", "--no-progress")


def _trials(db):
    storage = open_storage(f"sqlite:///{db}", create=False)
    return optuna.load_study(study_name="article", storage=storage).trials


def _curve_rows(db) -> int:
    with sqlite3.connect(db) as conn:
        q = "SELECT COUNT(*) FROM trial_system_attributes WHERE key = 'mnist_study:curves'"  # one per trial
        return conn.execute(q).fetchone()[0]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask/tell on the heartbeat storage: no worker here
def test_median_pruner_spares_slow_starts_until_warmup(tmp_path):
    """A trial still on the plateau is not judged in the first half of the epochs, then it is."""
    storage = open_storage(f"sqlite:///{tmp_path / 'p.db'}")
    study = optuna.create_study(
        storage=storage, direction="maximize", pruner=make_pruner("median", epochs=100, report_every=10)
    )
    for _ in range(5):  # fast learners, complete
        t = study.ask()
        for step in range(10, 101, 10):
            t.report(0.9, step)
        study.tell(t, 0.9)
    slow = study.ask()
    verdicts = {}
    for step in range(10, 101, 10):
        slow.report(0.1, step)  # the ln(10) plateau: 10% accuracy
        verdicts[step] = slow.should_prune()
    assert not any(verdicts[s] for s in (10, 20, 30, 40))
    assert verdicts[50] or verdicts[60]
    assert isinstance(make_pruner("none", epochs=100, report_every=10), optuna.pruners.NopPruner)
    with pytest.raises(UserError, match="unknown pruner"):
        make_pruner("asha", epochs=100, report_every=10)


def _hammer(url: str, worker: int, n: int) -> None:
    storage = open_storage(url)
    study = optuna.load_study(study_name="hammer", storage=storage)
    for i in range(n):
        t = study.ask()
        for step in range(5):
            t.report(worker + i + step, step)
        t.set_user_attr("worker", worker)
        study.tell(t, float(i))


def test_parallel_writers_share_one_sqlite_study(tmp_path):
    """Two processes writing as fast as they can: the busy timeout + WAL make them wait, not fail."""
    url = f"sqlite:///{tmp_path / 'h.db'}"
    optuna.create_study(study_name="hammer", storage=open_storage(url))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(url, w, 25)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    trials = optuna.load_study(study_name="hammer", storage=open_storage(url)).trials
    assert len(trials) == 50 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert all(len(t.intermediate_values) == 5 for t in trials)


def test_run_with_two_jobs_and_a_pruner(cli, tmp_path):
    db = tmp_path / "s.db"
    r = cli(
        "run",
        "--storage",
        f"sqlite:///{db}",
        "--trials",
        "4",
        "--jobs",
        "2",
        "--pruner",
        "hyperband",
        "--precision",
        "bf16",
        *TINY,
    )
    assert r.returncode == 0, r.stderr
    assert "locked" not in r.stderr and "Traceback" not in r.stderr
    trials = _trials(db)
    assert len(trials) == 4
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    assert _curve_rows(db) == 4
    assert {t.user_attrs["precision"] for t in trials} == {"bf16"}  # --precision reaches every worker's trainer


def test_batched_trials_equal_sequential_trials(cli, tmp_path):
    """Same seed: the batched study stores the same trials, values and curves as the one-by-one study."""
    seq, bat = tmp_path / "seq.db", tmp_path / "bat.db"
    for db, k in ((seq, "1"), (bat, "3")):
        r = cli("run", "--storage", f"sqlite:///{db}", "--trials", "3", "--batch-trials", k, *TINY)
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
    a, b = _trials(seq), _trials(bat)
    assert [t.params for t in a] == [t.params for t in b]
    assert [t.state for t in a] == [t.state for t in b]
    for ta, tb in zip(a, b, strict=True):
        assert tb.intermediate_values.keys() == ta.intermediate_values.keys()
        if ta.value is not None:
            assert tb.value == pytest.approx(ta.value, abs=2e-3)
        assert tb.user_attrs["epochs"] == ta.user_attrs["epochs"]
    assert _curve_rows(bat) == 3


def test_bad_pruner_and_jobs_are_one_line_errors(cli, tmp_path):
    for args in (("--pruner", "asha"), ("--jobs", "0"), ("--batch-trials", "-1")):
        r = cli("run", "--storage", f"sqlite:///{tmp_path / 'x.db'}", *args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "x.db").exists()


def test_two_jobs_with_the_largest_seed_show_progress_and_a_summary(cli, tmp_path):
    """Issue 12: worker 2's sampler seed (seed + 1) overflowed numpy's 2**32 - 1 with a traceback."""
    db = tmp_path / "big.db"
    r = cli("run", "--storage", f"sqlite:///{db}", "--trials", "2", "--jobs", "2", "--seed", "4294967295", *TINY[:-1])
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "\r" not in r.stdout + r.stderr
    assert len(_trials(db)) == 2
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in _trials(db))
    assert "[worker 1] trial " in r.stdout and "[worker 2] trial " in r.stdout  # one line per finished trial
    assert "worker 1 (" in r.stdout and "worker 2 (" in r.stdout and "1 trial (" in r.stdout  # per-worker summary


def test_ctrl_c_with_two_jobs_requeues_and_prints_no_traceback(tmp_path):
    """Issue 12: Ctrl-C with --jobs 2 printed tracebacks, and the interrupted trial was FAILED but not re-queued.
    SIGINT goes to the parent only (as `kill -INT`); a terminal's Ctrl-C reaches the workers too: both work."""
    url = f"sqlite:///{tmp_path / 'cc.db'}"
    # Trials of ~8 s: a TINY trial (~0.5 s) could end between "seen running" and the Ctrl-C, and then
    # nothing is interrupted (a CI run failed that way).
    long = ("--epochs", "2000", "--eval-every", "500", "--train-size", "500", "--device", "cpu", "--no-progress")
    w = Worker.start(tmp_path, "jobs", "--storage", url, "--study-name", "cc", "--trials", "8", "--jobs", "2", *long)
    deadline = time.monotonic() + 180
    seen: dict[int, float] = {}
    while time.monotonic() < deadline:
        try:
            running = [t.number for t in trials(url, "cc") if t.state == optuna.trial.TrialState.RUNNING]
        except Exception:  # study not created yet
            running = []
        if any(time.monotonic() - seen.setdefault(n, time.monotonic()) > 0.3 for n in running):
            break
        time.sleep(0.1)
    assert w.interrupt() == 130, w.output
    assert "Traceback" not in w.output, w.output
    ts = trials(url, "cc")
    assert not [t.number for t in ts if t.state == optuna.trial.TrialState.RUNNING]
    failed = [t for t in ts if t.state == optuna.trial.TrialState.FAIL]
    assert failed, "no trial was interrupted"
    for t in failed:
        retries = [r for r in ts if r.system_attrs.get("retry_history", [None])[-1] == t.number]
        assert len(retries) == 1 and retries[0].params == t.params and retries[0].state.name == "WAITING"
        assert f"trial {t.number} re-queued with the same params" in w.output
