"""What depends on the machine: a missing GPU, thread counts, running out of memory (study/runner, study/errors)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from study.errors import environment_error
from study.runner.optimize import threads_per_job, worker_threads
from tests.conftest import REPO
from tests.study.workers import cli_env

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")


@NO_GPU
def test_design_on_a_missing_gpu_is_refused_before_the_storage_is_made(cli, tmp_path):
    """`design --device cuda` without a GPU made the study, enqueued its 25 cells and failed a trial (with
    --jobs 2, four tracebacks) before its one-line error; run, train and final refused it up front."""
    for jobs in ("1", "2"):
        r = cli("design", "--device", "cuda", "--jobs", jobs, "--storage", "sqlite:///d.db", "lr_oscillation")
        assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
        assert "no CUDA GPU" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "d.db").exists()


def test_design_alone_keeps_the_users_thread_count():
    """A lone design worker set torch's threads to all cores, discarding OMP_NUM_THREADS=1 (the README's advice on
    a busy machine), where `run --jobs 1` honoured it."""
    code = (
        "import torch, study.runner.designs as d\n"
        "d._worker([], 'sqlite://', 'p-', None, 1, 1)\n"
        "print(torch.get_num_threads())\n"
    )
    env = {**os.environ, **cli_env(), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == "1"


def test_the_precision_probe_runs_at_the_workers_thread_count():
    """The study's precision was decided at the parent's thread count while its --jobs workers trained with their
    share of the cores; the figures (and the cache key) depend on the count."""
    before = torch.get_num_threads()
    with worker_threads(4):
        assert torch.get_num_threads() == threads_per_job(4)
    assert torch.get_num_threads() == before
    with worker_threads(1):
        assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't allocate memory: you tried "
            "to allocate 6400000000 bytes. Error code 12 (Cannot allocate memory)"
        ),
        MemoryError(),
        type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory. Tried to allocate 9.31 GiB"),
    ],
)
def test_running_out_of_memory_is_named_not_called_a_bug(error):
    reason = environment_error(error)
    assert reason is not None and "out of" in reason and "memory" in reason and "--batch-trials" in reason
    assert ("GPU" in reason) == ("CUDA" in str(error))


def test_a_run_too_large_for_memory_is_one_line_and_exit_2(tmp_path):
    """Widths of 40,000 under a 5 GB address-space limit: the CPU allocator fails. It was 'bug: RuntimeError',
    exit 1 (and CUDA's OutOfMemoryError the same)."""
    cmd = (
        f"ulimit -v 5000000; exec {sys.executable} -m study train --n-units-l1 40000 --n-units-l2 40000 "
        "--train-size 500 --epochs 1 --precision fp32 --device cpu"
    )
    env = {**os.environ, **cli_env()}
    r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "out of CPU memory" in r.stderr, r.stderr
