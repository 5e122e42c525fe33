"""Create, extend or resume a study and run its trials, in this process or in `jobs` worker processes.

Everything here is keyword-only and free of argparse, so a notebook can do what `mnist-study run` does:

    from study.runner import StudyPlan, base_config, run_study
    run_study(StudyPlan(storage="sqlite:///mine.db", study_name="s", trials=5, base=base_config(epochs=50)))
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import multiprocessing
import os
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from mnist_fc.config import DataConfig, RunConfig, TrainConfig, validate
from mnist_fc.data import Split, load_split
from mnist_fc.errors import ConfigError
from study import interrupt, quiet_threads
from study.auto_precision import study_precision
from study.defaults import (
    DEFAULT_BATCH_TRIALS,
    DEFAULT_JOBS,
    DEFAULT_PRUNER,
    DEFAULT_SAMPLER,
    DEFAULT_SPACE,
    DEFAULT_STUDY_NAME,
    DEFAULT_TRIALS,
    METRIC_NAME,
    UNTIL_COMPLETE_POLL_S,
    default_epochs,
    default_storage,
)
from study.errors import USER_ERRORS, UserError, environment_error, path_error
from study.log import configure_logging
from study.objective import Objective, report_every, worker_id
from study.pruners import PRUNERS, make_pruner
from study.report_text import best_summary
from study.runner.loops import optimize_batched, optimize_until_complete
from study.runner.one_trial import optimize_n
from study.runner.progress import Echo, TrialLog, counts, worker_summary
from study.runner.recovery import fail_dead_local_trials, requeue_interrupted, runners, split_requeued
from study.safety import check_study_settings
from study.sampler import TrialSeededRandomSampler, make_sampler
from study.spaces import SPACES
from study.storage import (
    HEARTBEAT_SECONDS,
    MAX_RETRY,
    check_ours,
    check_study_name,
    create_or_load_study,
    curve_store,
    heartbeat_settings,
    open_storage,
    redact,
)

SEED_MODULUS = 2**32  # numpy's RandomState (behind Optuna's samplers) takes seeds below this
SAMPLERS = ("tpe", "random")


@dataclass(frozen=True, kw_only=True)
class StudyPlan:
    """One `run`: which study, how many trials, how they are trained and by how many workers."""

    study_name: str = DEFAULT_STUDY_NAME
    storage: str = field(default_factory=default_storage)
    space: str = DEFAULT_SPACE
    base: RunConfig = field(default_factory=RunConfig)  # every trial starts from it (epochs, data, seed, device)
    trials: int | None = None  # N more trials; None with until_complete None means DEFAULT_TRIALS
    until_complete: int | None = None  # or: until the study holds N COMPLETE trials (resumes a crashed study)
    timeout: float | None = None  # no new trial after this many seconds
    jobs: int = DEFAULT_JOBS
    batch_trials: int = DEFAULT_BATCH_TRIALS
    sampler: str = DEFAULT_SAMPLER
    pruner: str = DEFAULT_PRUNER
    heartbeat: int = HEARTBEAT_SECONDS
    grace: int | None = None
    progress: bool = True  # a progress bar on a terminal; otherwise (and in logs) one line per finished trial
    verbose: bool = False

    @property
    def n_trials(self) -> int:
        return 0 if self.until_complete else (self.trials or DEFAULT_TRIALS)


@dataclass(frozen=True)
class RunSummary:
    study_name: str
    complete: int  # COMPLETE trials the study holds at the end
    ran: str  # what this run's trials ended as, e.g. "4 trials (3 complete, 1 pruned, 0 failed)"
    requeued_dead: list[int]  # trials of dead local workers failed and re-queued before starting


def base_config(
    *,
    data: DataConfig | None = None,
    epochs: int | None = None,
    eval_every: int = TrainConfig.eval_every,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
) -> RunConfig:
    """The RunConfig every trial starts from (the space then samples the rest); checked here."""
    train = dataclasses.replace(
        TrainConfig(),
        epochs=epochs or default_epochs(device),
        eval_every=eval_every,
        seed=seed,
        device=device,
        precision=precision,
    )
    cfg = RunConfig(data=data or DataConfig(), train=train)
    check_config(cfg)
    return cfg


def check_config(cfg: RunConfig) -> None:
    """validate() as a user error: every ValueError it raises names a value that cannot be trained."""
    try:
        validate(cfg)
    except ConfigError:
        raise
    except ValueError as e:  # until mnist_fc.config raises ConfigError itself
        raise ConfigError(str(e)) from None
    check_device(cfg.train.device)


def check_device(device: str) -> None:
    """--device cuda without a GPU is refused before any storage or data is touched."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA GPU is available here (use --device cpu or auto)")


def check_plan(plan: StudyPlan) -> None:
    """Every user mistake in `plan` as one UserError, before the storage or data is touched."""
    check_study_name(plan.study_name)
    heartbeat_settings(plan.heartbeat, plan.grace)
    if plan.space not in SPACES:
        raise UserError(f"unknown space {plan.space!r} (choose from {', '.join(sorted(SPACES))})")
    if plan.sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {plan.sampler!r} (choose from {', '.join(SAMPLERS)})")
    if plan.pruner not in PRUNERS:
        raise UserError(f"unknown pruner {plan.pruner!r} (choose from {', '.join(PRUNERS)})")
    if plan.trials is not None and plan.until_complete is not None:
        raise UserError("give --trials or --until-complete, not both")
    if plan.until_complete is not None and plan.batch_trials > 1:
        raise UserError("--batch-trials does not combine with --until-complete (use --trials)")
    if min(plan.jobs, plan.batch_trials, plan.trials or 1, plan.until_complete or 1) < 1:
        raise UserError("--trials, --until-complete, --jobs and --batch-trials must be >= 1")
    check_config(plan.base)


def check_settings(study: optuna.Study, *, space: str, settings: dict[str, Any], cfg: RunConfig) -> None:
    """Every worker and every resume of a study must train trials alike, on the same data, or their
    results do not compare (study.safety.check_study_settings also derives the settings of studies
    made before settings were recorded, and adds the data's identity)."""
    stored_space = study.user_attrs.get("space")
    if stored_space is None:
        study.set_user_attr("space", space)
    elif stored_space != space:
        raise UserError(f"study {study.study_name!r} was created with space {stored_space!r}, not {space!r}")
    check_study_settings(study, settings, cfg=cfg, seed=cfg.train.seed)


def study_settings(plan: StudyPlan, split: Split) -> dict[str, Any]:
    b = plan.base
    return {
        "epochs": b.train.epochs,
        "eval_every": b.train.eval_every,
        "train_size": len(split.x_train),
        "validation_size": b.data.validation_size,
        "data": "embedded" if b.data.source == "embedded" else "csv",
    }


def open_study(plan: StudyPlan, *, settings: dict[str, Any]) -> optuna.Study:
    """Create the study, or load it when it exists, after checking it was run with the same settings."""
    storage = open_storage(plan.storage, heartbeat=plan.heartbeat, grace=plan.grace)
    study = create_or_load_study(storage, plan.study_name)
    check_ours(study)  # load_if_exists compares neither directions nor whose trials it holds
    check_settings(study, space=plan.space, settings=settings, cfg=plan.base)
    if study.metric_names is None:  # optuna-dashboard shows "val_accuracy", not "Objective 0"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([METRIC_NAME])
    return study


def _sampler(name: str, *, seed: int) -> optuna.samplers.BaseSampler:
    """TPE or random sampling, each re-seeded per (seed, trial number): a resumed study, a second worker or
    another machine with the same --seed never replays earlier params (trial numbers are unique)."""
    if name == "random":
        return TrialSeededRandomSampler(seed=seed % SEED_MODULUS)
    return make_sampler(seed % SEED_MODULUS)


def _optimize(plan: StudyPlan, split: Split, *, n_trials: int, seed: int, log: TrialLog, echo: Echo) -> optuna.Study:
    """Run this process's share of the trials; on Ctrl-C re-queue the trial it was running."""
    since = datetime.datetime.now()  # Optuna stores naive local times
    b = plan.base.train
    storage = open_storage(plan.storage, heartbeat=plan.heartbeat, grace=plan.grace)
    pruner = make_pruner(plan.pruner, epochs=b.epochs, report_every=report_every(b.epochs, b.eval_every))
    study = optuna.load_study(study_name=plan.study_name, storage=storage, pruner=pruner)
    study.sampler = _sampler(plan.sampler, seed=seed)
    sp = study_precision(study, plan.base, n_train=len(split.x_train))  # auto: decided once per study, recorded
    objective = Objective(
        space=SPACES[plan.space],
        base=sp.base,
        split=split,
        curves=curve_store(storage),
        pruning=plan.pruner != "none",
    )
    objective.precision_probe = sp.probe
    objective.progress = log.epoch  # epochs within a long trial, on a terminal bar
    started: set[int] = set()  # trial numbers this process ran, whether or not they got their "worker" attr

    def objective_here(trial: optuna.Trial) -> float:
        started.add(trial.number)
        return objective(trial)

    try:
        if plan.until_complete:
            optimize_until_complete(
                study,
                objective_here,
                target=plan.until_complete,
                timeout=plan.timeout,
                poll_s=UNTIL_COMPLETE_POLL_S,
                callbacks=[log],
            )
        elif plan.batch_trials > 1:
            optimize_batched(
                study,
                objective,
                n_trials=n_trials,
                batch_trials=plan.batch_trials,
                timeout=plan.timeout,
                callbacks=[log],
            )
        else:
            optimize_n(study, objective_here, n_trials=n_trials, timeout=plan.timeout, callbacks=[log])
    except BaseException as e:
        if not interrupt.caused(e):  # a Ctrl-C, or an error a library raised over one (study/interrupt.py)
            if isinstance(e, Exception) and environment_error(e) is not None:  # the storage failed, not a trial
                _requeue_after_storage_error(plan, study, since=since, started=started, log=log, echo=echo)
            raise
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the re-queue short
        log.close()
        again, spent = _requeue_mine(study, since=since, started=started)
        if again:
            echo(f"{log.prefix}interrupted: trial {', '.join(map(str, again))} re-queued with the same params")
        if spent:
            echo(f"{log.prefix}interrupted: trial {_numbers(spent)} failed, not re-queued ({_SPENT})")
        if isinstance(e, KeyboardInterrupt):
            raise
        raise KeyboardInterrupt from e
    finally:
        log.close()
    return study


@contextlib.contextmanager
def worker_threads(jobs: int) -> Iterator[None]:
    """This process at the torch thread count each of `jobs` workers will train with (its own when one)."""
    import torch

    before = torch.get_num_threads()
    if jobs > 1:
        torch.set_num_threads(threads_per_job(jobs))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def threads_per_job(jobs: int) -> int:
    """Cores shared out between the jobs, at least one torch thread each (oversubscribing hurts BLAS)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // jobs)


def _worker(plan: StudyPlan, n_trials: int, index: int) -> None:
    """One of `jobs` spawned processes: own torch threads, storage connection and sampler seed.

    Started with Ctrl-C ignored (so that a Ctrl-C during its imports prints no traceback); from
    here on Ctrl-C stops it the way it stops a single-process run: trial re-queued, exit 130.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupt.install()
    interrupt.exit_with_parent()  # a parent killed by -9 cannot tell its workers: they watch for it
    quiet_threads.install()
    label = f"worker {index + 1}"
    try:
        import torch

        torch.set_num_threads(threads_per_job(plan.jobs))
        configure_logging(verbose=plan.verbose)
        split = load_split(plan.base.data, seed=plan.base.train.seed)
        log = TrialLog(total=None, bar=False, prefix=f"[{label}] ")  # N bars would overwrite each other
        _optimize(plan, split, n_trials=n_trials, seed=plan.base.train.seed + index, log=log, echo=print)
    except KeyboardInterrupt:
        sys.exit(130)
    except USER_ERRORS as e:
        print(f"mnist-study run: {label}: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except Exception as e:
        if plan.verbose:
            traceback.print_exc()
        if interrupt.caused(e):  # a library's cleanup raised over the Ctrl-C (Optuna's tell): the Ctrl-C is the story
            sys.exit(130)
        if (reason := environment_error(e) or path_error(e)) is not None:  # the machine's fault, as in cli.main
            print(f"mnist-study run: {label}: error: {reason}", file=sys.stderr, flush=True)
            sys.exit(2)
        bug = f"{type(e).__name__}: {e}".splitlines()[0]
        print(f"mnist-study run: {label}: bug: {bug} (run with -v for the traceback)", file=sys.stderr)
        sys.exit(1)


def _stop(procs: list[Any], *, wait_s: float = 120.0) -> None:
    """Forward Ctrl-C to the workers (a terminal sends it to all; `kill -INT` to this process only) and
    wait while each re-queues its trial; a worker still starting up gets it again a moment later."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    deadline = time.monotonic() + wait_s
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        for p in procs:
            if p.is_alive() and p.pid:
                try:
                    os.kill(p.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        for p in procs:
            p.join(timeout=1.0)
    for p in procs:
        if p.is_alive():
            p.terminate()


def run_jobs(plan: StudyPlan) -> dict[str, str]:
    """`plan.jobs` spawned processes share the trials (SQLite waits via busy timeout + WAL instead of failing);
    with until_complete each works towards the same target. Returns worker id -> label, for the summary."""
    if plan.until_complete:
        shares = [1] * plan.jobs
    else:
        shares = [plan.n_trials // plan.jobs + (i < plan.n_trials % plan.jobs) for i in range(plan.jobs)]
    ctx = multiprocessing.get_context("spawn")  # no fork of a process whose BLAS thread pool already runs
    procs = [ctx.Process(target=_worker, args=(plan, n, i)) for i, n in enumerate(shares) if n > 0]
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited through exec: see _worker
    try:
        for p in procs:
            p.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        _stop(procs)
        raise
    host = worker_id().rpartition(":")[0]
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed and set(failed) == {130}:  # workers stopped by a Ctrl-C (or kill) of their own: re-queued
        raise KeyboardInterrupt
    if failed:
        how = ", ".join(f"killed by signal {-c}" if c < 0 else f"exit {c}" for c in failed)
        raise UserError(
            f"{len(failed)} of {len(procs)} worker processes failed ({how}); a trial a dead worker was running is "
            "failed and re-queued with its params: --until-complete N resumes the study"
        )
    return {f"{host}:{p.pid}": f"worker {i + 1}" for i, p in enumerate(procs)}


def _requeue_mine(study: optuna.Study, *, since: datetime.datetime, started: set[int]) -> tuple[list[int], list[int]]:
    """Fail and re-queue the trials this process was running; (re-queued, not re-queued: retries used up)."""
    return split_requeued(study, requeue_interrupted(study, worker=worker_id(), since=since, numbers=started))


def _requeue_after_storage_error(
    plan: StudyPlan, study: optuna.Study, *, since: datetime.datetime, started: set[int], log: TrialLog, echo: Echo
) -> None:
    """Best effort, as for a Ctrl-C: the trial a storage failure (a full disk, a lock held too long) cut
    short is re-queued with its params if the storage takes writes again; else the next run does it. A
    SQLite file that is gone is left alone: opening it would create an empty one in its place."""
    db = make_url(plan.storage).database if plan.storage.startswith("sqlite") else None
    if db is not None and not os.path.exists(db):
        return
    try:
        again, _ = _requeue_mine(study, since=since, started=started)
    except Exception:
        return
    if again:
        echo(f"{log.prefix}trial {_numbers(again)} re-queued with the same params")


_SPENT = f"its {MAX_RETRY} retries are used up; the next trial is sampled afresh"


def _numbers(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers))


def run_study(plan: StudyPlan, *, echo: Echo = print) -> RunSummary:
    """Create or extend `plan.study_name` and run its trials; Ctrl-C re-queues what it interrupts."""
    check_plan(plan)
    split = load_split(plan.base.data, seed=plan.base.train.seed)  # bad data fails here, before the study
    study = open_study(plan, settings=study_settings(plan, split))
    dead = fail_dead_local_trials(study)
    again, spent = split_requeued(study, dead)
    if again:
        echo(f"trial {_numbers(again)} of a dead worker on this host: failed and re-queued")
    if spent:
        echo(f"trial {_numbers(spent)} of a dead worker on this host: failed, not re-queued ({_SPENT})")
    stored = study.get_trials(deepcopy=False)
    complete = sum(t.state == TrialState.COMPLETE for t in stored)
    todo = f"until {plan.until_complete} complete" if plan.until_complete else f"{plan.n_trials} more"
    e = plan.base.train.epochs
    epochs = f"{e} epochs each" if plan.space == "article" else f"{max(1, e // 2)}-{e} epochs each, sampled"
    jobs = plan.jobs if plan.until_complete else min(plan.jobs, plan.n_trials)  # no worker without a trial
    batch = plan.batch_trials if plan.until_complete else min(plan.batch_trials, plan.n_trials)  # nor a member
    echo(
        f"study {study.study_name!r} in {redact(plan.storage)}: {len(stored)} trials stored ({complete} complete), "
        f"running {todo} ({epochs}, train size {len(split.x_train)}, "
        f"pruner {plan.pruner}, jobs {jobs}, batch {batch})"
    )
    with worker_threads(plan.jobs):  # the probe's figures depend on threads: measure at the workers' count
        header = study_precision(study, plan.base, n_train=len(split.x_train)).header
    echo(header or f"precision {plan.base.train.precision}")
    if plan.jobs > 1:
        try:
            workers = run_jobs(plan)
        finally:  # a worker killed mid-trial (kill -9, out of memory) left it RUNNING: fail and re-queue it now
            fail_dead_local_trials(study)
        for line in worker_summary(study, workers=workers):
            echo(line)
        trials = study.get_trials(deepcopy=False)
        who = runners(trials)
        ran = counts(t for t in trials if who[t.number] in workers)
        n_ran = sum(who[t.number] in workers for t in trials if t.state.is_finished())
        if plan.timeout is not None and not plan.until_complete and n_ran < plan.n_trials:  # say why, as below
            echo(f"--timeout {plan.timeout:g} s reached after {n_ran} of {plan.n_trials} trials")
    else:
        total = max(0, plan.until_complete - complete) if plan.until_complete else plan.n_trials
        log = TrialLog(total=total, bar=plan.progress)
        _optimize(plan, split, n_trials=plan.n_trials, seed=plan.base.train.seed, log=log, echo=echo)
        ran = counts(log.ran)
        if plan.timeout is not None and len(log.ran) < total:  # say why it stopped short
            echo(f"--timeout {plan.timeout:g} s reached after {len(log.ran)} of {total} trials")
        echo(f"this worker ran {ran}; the study holds {_complete(study)} complete")
    interrupt.check()
    fail_dead_local_trials(study)  # a worker that died meanwhile leaves nothing RUNNING behind this command
    echo(best_summary(study))
    return RunSummary(study_name=study.study_name, complete=_complete(study), ran=ran, requeued_dead=dead)


def _complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


Runner = Callable[[StudyPlan], RunSummary]
