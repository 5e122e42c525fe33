"""study/quiet_threads.py: Optuna's heartbeat thread failing under a broken storage prints no traceback."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

PROBE = """
import sqlite3, sys, time, optuna
from optuna.storages._heartbeat import get_heartbeat_thread
from study import quiet_threads
if sys.argv[1] == "quiet":
    quiet_threads.install()
optuna.logging.set_verbosity(optuna.logging.ERROR)
storage = optuna.storages.RDBStorage(f"sqlite:///{sys.argv[2]}", heartbeat_interval=1, grace_period=3)
trial = optuna.create_study(storage=storage, study_name="s").ask()
with sqlite3.connect(sys.argv[2]) as db:
    db.execute("DROP TABLE trial_heartbeats")  # every beat now fails, as on a full disk
thread = get_heartbeat_thread(trial._trial_id, storage)
thread.start()  # optuna's HeartbeatThread: it beats at once and dies on the error
time.sleep(1.5)
import threading
other = threading.Thread(target=lambda: 1 / 0)  # any other thread's error still prints
other.start(); other.join()
print("main thread went on")
"""


def _probe(mode: str, tmp_path) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", PROBE, mode, str(tmp_path / f"{mode}.db")]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def test_a_failing_optuna_heartbeat_thread_prints_nothing_and_other_threads_still_do(tmp_path):
    loud, quiet = _probe("loud", tmp_path), _probe("quiet", tmp_path)
    assert loud.returncode == 0 and quiet.returncode == 0, quiet.stderr
    assert "_record_heartbeat" in loud.stderr and "trial_heartbeats" in loud.stderr  # the problem, without the hook
    assert "_record_heartbeat" not in quiet.stderr and "trial_heartbeats" not in quiet.stderr
    assert "ZeroDivisionError" in quiet.stderr and "main thread went on" in quiet.stdout
