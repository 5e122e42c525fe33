"""A storage on a disk that fills up mid-study: one line, exit 2, no traceback; the next run (with space
again) leaves no RUNNING trial behind."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from study.cli import environment_error

TINY = ("--epochs", "300", "--train-size", "500", "--device", "cpu", "--no-progress")
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def test_environment_errors_are_recognised_through_the_exception_chain() -> None:
    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as inner:
            raise AssertionError("Should not reach") from inner
    except AssertionError as outer:
        assert "disk" in (environment_error(outer) or "")
    assert environment_error(ValueError("some bug")) is None
    # A storage file deleted or its folder remounted read-only mid-run, a lock held past the busy timeout:
    # Optuna raises UnboundLocalError in its own cleanup, over the storage error (a helper's stress runs).
    for words, meaning in [("unable to open database file", "can no longer be opened"), ("database is locked", "lock")]:
        storage = RuntimeError("An exception is raised during the commit.")
        storage.__cause__ = sqlite3.OperationalError(words)
        outer_error = UnboundLocalError("cannot access local variable 'updated_state'")
        outer_error.__context__ = storage
        assert meaning in (environment_error(outer_error) or ""), words


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 400 KB tmpfs (root only): big enough to create a study, too small for many trials."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)], capture_output=True, check=False)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_mid_study_is_one_line_and_leaves_nothing_running(cli, small_disk: Path) -> None:
    url = f"sqlite:///{small_disk / 's.db'}"
    # One torch thread: with another process busy on the 2 cores, two threads made these tiny trials
    # crawl (90 s instead of 3 s each, measured) and the 40 of them outran the timeout.
    r = cli("run", "--trials", "40", "--storage", url, "--study-name", "s", *TINY, env=ONE_THREAD)
    assert r.returncode == 2, (r.stdout[-500:], r.stderr[-2000:])
    errors = [line for line in r.stderr.splitlines() if line.startswith("mnist-study")]
    assert len(errors) == 1 and "disk" in errors[0] and "full" in errors[0], r.stderr
    assert "Traceback" not in r.stderr and "bug" not in r.stderr
    # With space again, the next run fails whatever the full disk left RUNNING (its worker is dead).
    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    r = cli("run", "--trials", "1", "--storage", url, "--study-name", "s", *TINY, env=ONE_THREAD)
    assert r.returncode == 0, r.stderr[-2000:]
    with sqlite3.connect(f"file:{small_disk / 's.db'}?mode=ro", uri=True) as conn:
        states = [s for (s,) in conn.execute("SELECT state FROM trials")]
    assert "RUNNING" not in states, states
