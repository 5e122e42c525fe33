"""Shared fixtures: a small real data split and a runner for the real `mnist-study` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mnist_fc.config import DataConfig
from mnist_fc.data import Split, load_split
from mnist_fc.precision import CACHE_ENV

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _precision_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`--precision auto`'s probe cache in a session folder (CLI subprocesses inherit it), not in ~/.cache."""
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("precision_cache"))


@pytest.fixture(scope="session")
def small_split() -> Split:
    """2,000 stratified training images (plus the real validation and test sets)."""
    return load_split(DataConfig(train_size=2000), seed=0)


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `python -m study ARGS` as a user would, from this checkout (`env`: extra variables)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "study", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """`cli("run", "--trials", "1", ...)` runs the real command in a temp working directory."""
    return lambda *args, **kw: run_cli(*args, cwd=kw.pop("cwd", tmp_path), **kw)
