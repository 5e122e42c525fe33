"""`mnist-study run`: an Optuna study of full-batch FC networks, stored in any Optuna storage."""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import random
import time
import warnings

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from mnist_fc.config import RunConfig, TrainConfig, validate
from mnist_fc.data import Split, load_split
from study.auto_precision import study_precision
from study.batched_run import optimize_batched
from study.commands.args import add_data_args, add_train_args, data_config, positive_float, positive_int, train_config
from study.defaults import DEFAULT_SPACE, DEFAULT_STORAGE, DEFAULT_STUDY_NAME, DEFAULT_TRIALS, default_epochs
from study.errors import UserError
from study.objective import Objective, report_every, worker_id
from study.pruners import DEFAULT_PRUNER, PRUNERS, make_pruner
from study.report_text import best_summary
from study.safety import check_study_settings
from study.sampler import make_sampler
from study.spaces import SPACES
from study.storage import (
    HEARTBEAT_SECONDS,
    MAX_RETRY,
    check_study_name,
    curve_store,
    heartbeat_settings,
    open_storage,
    redact,
)

EXAMPLE = """examples:
  mnist-study run --trials 20 --epochs 300 --train-size 10000 --device cpu
  mnist-study run --trials 40 --epochs 300 --train-size 10000 --device cpu --batch-trials 4
  mnist-study run --trials 50 --pruner median --jobs 2    # two worker processes, one study
  mnist-study run --trials 200 --device cuda             # the full study on one GPU
  mnist-study run --until-complete 200 --device cuda     # resume after a crash: rerun the same line
  mnist-study run --storage postgresql+psycopg://user@host/db --study-name shared --until-complete 50"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run (or extend) an Optuna study; each trial trains one network",
        description="Run an Optuna study: each trial samples a network from the search space, "
        "trains it full-batch and stores results and learning curves. Several processes (or "
        "machines, with a PostgreSQL storage) can run the same study at once.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    how_many = p.add_mutually_exclusive_group()
    how_many.add_argument(
        "--trials",
        type=positive_int,
        help=f"run N more trials, added to any already stored (default {DEFAULT_TRIALS})",
    )
    how_many.add_argument(
        "--until-complete",
        type=positive_int,
        metavar="N",
        help="run until the study holds N COMPLETE trials, counting those already stored (any number of "
        "workers; rerunning the same command resumes a crashed study)",
    )
    p.add_argument("--timeout", type=positive_float, help="stop starting new trials after S seconds")
    p.add_argument("--study-name", default=DEFAULT_STUDY_NAME, help=f"default {DEFAULT_STUDY_NAME!r}")
    p.add_argument("--storage", default=DEFAULT_STORAGE, help=f"any Optuna storage URL (default {DEFAULT_STORAGE})")
    p.add_argument("--space", choices=sorted(SPACES), default=DEFAULT_SPACE, help="search space")
    p.add_argument(
        "--pruner",
        choices=PRUNERS,
        default=DEFAULT_PRUNER,
        help="stop unpromising trials on intermediate validation accuracy (default none: pruning "
        "early would discard the slow starters whose plateaus the study analyses; median waits half "
        "the epochs). Diverged trials are always pruned at once.",
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="worker processes running trials of this study at once (default 1); each gets cores/N torch threads",
    )
    p.add_argument(
        "--batch-trials",
        type=positive_int,
        default=1,
        help="train up to K trials at once as one batched model, results equal to training each alone (default 1)",
    )
    p.add_argument(
        "--sampler",
        choices=("tpe", "random"),
        default="tpe",
        help="tpe (default) searches for the best net; random samples the space evenly, which is what an "
        "unbiased analysis of the factors (mnist-study report) wants",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--heartbeat",
        type=positive_int,
        default=HEARTBEAT_SECONDS,
        metavar="S",
        help=f"a running trial proves its worker alive every S seconds (default {HEARTBEAT_SECONDS})",
    )
    p.add_argument(
        "--grace",
        type=positive_int,
        metavar="S",
        help="a RUNNING trial silent for S seconds is marked FAILED and re-queued with the same params "
        "(default 3 x --heartbeat)",
    )
    add_data_args(p)
    add_train_args(p, epochs_help="epochs per trial (default: 300 on CPU, 3000 on CUDA)")
    p.set_defaults(func=run)


def _sampler(name: str, *, seed: int, n_stored: int) -> optuna.samplers.BaseSampler:
    """TPE, or random sampling whose seed moves on by the trials already stored, so that extending a
    random study draws new configurations instead of repeating the first run's."""
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed + n_stored)
    # TPE seeded per (seed, trial number): a resumed study or a second worker never replays earlier params.
    return make_sampler(seed)


def _check_study_space(study: optuna.Study, space: str) -> None:
    stored = study.user_attrs.get("space")
    if stored is None:
        study.set_user_attr("space", space)
    elif stored != space:
        raise UserError(f"study {study.study_name!r} was created with space {stored!r}, not {space!r}")


def _count(study: optuna.Study, state: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=(state,)))


def _fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def optimize_until_complete(
    study: optuna.Study, objective: Objective, *, target: int, timeout: float | None, poll_s: float, callbacks: list
) -> None:
    """Run trials one at a time until the study holds `target` COMPLETE trials.

    A worker starts a trial only while COMPLETE + RUNNING < target; otherwise it waits for the
    running ones, which either complete or, if their worker died, go stale: Optuna then marks
    them FAILED and re-queues them (WAITING, same params), and the next trial started here
    pops that retry first. No worker leaves a re-queued trial behind. So several workers stop
    together at `target`, give or take the trials started in the same instant.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while deadline is None or time.monotonic() < deadline:
        _fail_stale_trials(study)
        complete = _count(study, TrialState.COMPLETE)
        # A re-queued trial is run even past the target: failing a dead trial and queuing its copy
        # are two commits, and another worker may start a fresh trial in between.
        waiting = _count(study, TrialState.WAITING)
        if complete >= target and not waiting:
            return
        if waiting or complete + _count(study, TrialState.RUNNING) < target:
            study.optimize(objective, n_trials=1, callbacks=callbacks, show_progress_bar=False)
        else:
            time.sleep(poll_s * random.uniform(0.5, 1.5))  # jitter: waiting workers do not wake in step


def requeue_interrupted(study: optuna.Study, *, worker: str, since: datetime.datetime) -> list[int]:
    """Re-queue (WAITING, same params) the trials this process was running when Ctrl-C stopped it.

    Optuna marks an interrupted trial FAILED but, unlike a crashed worker's stale trial, does
    not retry it; this does, so a resumed study loses nothing a user stopped by hand.
    """
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    mine = [
        t
        for t in trials
        if t.state == TrialState.FAIL
        and t.user_attrs.get("worker") == worker
        and t.datetime_start is not None
        and t.datetime_start >= since
        and t.number not in retried
    ]
    for t in mine:
        RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, t)
    return [t.number for t in mine]


def _base_config(args: argparse.Namespace) -> RunConfig:
    epochs = args.epochs or default_epochs(args.device)
    base = RunConfig(data=data_config(args), train=train_config(args, TrainConfig(), epochs=epochs))
    validate(base)
    return base


def _optimize(
    args: argparse.Namespace,
    base: RunConfig,
    split: Split,
    *,
    n_trials: int,
    seed: int,
    progress: bool,
    callbacks: list | None = None,
) -> optuna.Study:
    """Run `n_trials` trials of the (existing) study in this process."""
    storage = open_storage(args.storage, heartbeat=args.heartbeat, grace=args.grace)
    pruner = make_pruner(
        args.pruner, epochs=base.train.epochs, report_every=report_every(base.train.epochs, base.train.eval_every)
    )
    study = optuna.load_study(study_name=args.study_name, storage=storage, pruner=pruner)
    study.sampler = _sampler(args.sampler, seed=seed, n_stored=len(study.trials))
    sp = study_precision(study, base, n_train=len(split.x_train))  # auto: decided once per study, recorded
    objective = Objective(
        space=SPACES[args.space], base=sp.base, split=split, curves=curve_store(storage), pruning=args.pruner != "none"
    )
    objective.precision_probe = sp.probe
    if args.until_complete:
        optimize_until_complete(
            study, objective, target=args.until_complete, timeout=args.timeout, poll_s=1.0, callbacks=callbacks
        )
    elif args.batch_trials > 1:
        optimize_batched(study, objective, n_trials=n_trials, batch_trials=args.batch_trials, timeout=args.timeout)
    else:
        study.optimize(
            objective, n_trials=n_trials, timeout=args.timeout, callbacks=callbacks, show_progress_bar=progress
        )
    return study


def _worker(args: argparse.Namespace, n_trials: int, index: int) -> None:
    """One of --jobs processes: its own torch threads, storage connection and sampler seed."""
    import torch

    torch.set_num_threads(threads_per_job(args.jobs))
    optuna.logging.set_verbosity(optuna.logging.INFO if args.verbose else optuna.logging.WARNING)
    base = _base_config(args)
    split = load_split(base.data, seed=args.seed)
    _optimize(args, base, split, n_trials=n_trials, seed=args.seed + index, progress=False)


def threads_per_job(jobs: int) -> int:
    """Cores shared out between the jobs, at least one torch thread each (oversubscribing hurts BLAS)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // jobs)


def _run_jobs(args: argparse.Namespace) -> None:
    """--jobs N: N spawned processes share the trials; SQLite waits (busy timeout + WAL) instead of failing.
    With --until-complete every process works towards the same target."""
    if args.until_complete:
        shares = [1] * args.jobs
    else:
        shares = [args.trials // args.jobs + (i < args.trials % args.jobs) for i in range(args.jobs)]
    ctx = multiprocessing.get_context("spawn")  # no fork of a process whose BLAS thread pool already runs
    procs = [ctx.Process(target=_worker, args=(args, n, i)) for i, n in enumerate(shares) if n > 0]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise UserError(f"{len(failed)} of {len(procs)} worker processes failed (exit codes {failed})")


def run(args: argparse.Namespace) -> int:
    started = datetime.datetime.now()  # Optuna stores naive local times
    check_study_name(args.study_name)
    heartbeat_settings(args.heartbeat, args.grace)
    args.trials = args.trials or (None if args.until_complete else DEFAULT_TRIALS)
    base = _base_config(args)
    split = load_split(base.data, seed=args.seed)  # bad data fails here, before the study is touched
    storage = open_storage(args.storage, heartbeat=args.heartbeat, grace=args.grace)
    study = optuna.create_study(
        study_name=args.study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
    )
    _check_study_space(study, args.space)
    check_study_settings(
        study,
        {
            "epochs": base.train.epochs,
            "eval_every": args.eval_every,
            "train_size": len(split.x_train),
            "data": "embedded" if base.data.source == "embedded" else "csv",
        },
        cfg=base,
        seed=args.seed,
    )
    stored = study.get_trials(deepcopy=False)
    complete = sum(t.state == TrialState.COMPLETE for t in stored)
    plan = f"running until {args.until_complete} complete" if args.until_complete else f"running {args.trials} more"
    print(
        f"study {study.study_name!r} in {redact(args.storage)}: {len(stored)} trials stored ({complete} complete), "
        f"{plan} ({base.train.epochs} epochs each, train size {len(split.x_train)}, "
        f"pruner {args.pruner}, jobs {args.jobs}, batch {args.batch_trials})",
        flush=True,
    )
    print(study_precision(study, base, n_train=len(split.x_train)).header or f"precision {base.train.precision}")
    ran: list[FrozenTrial] = []

    def note(study: optuna.Study, trial: FrozenTrial) -> None:
        ran.append(trial)
        if args.until_complete:
            history = trial.system_attrs.get("retry_history")  # trials it re-runs, the one it replaces last
            again = f" (retry of trial {history[-1]})" if history else ""
            value = f" value {trial.value:.4f}" if trial.value is not None else ""
            print(f"trial {trial.number}{again}: {trial.state.name}{value}", flush=True)

    if args.jobs > 1:
        _run_jobs(args)
    else:
        try:
            _optimize(
                args,
                base,
                split,
                n_trials=args.trials or 0,
                seed=args.seed,
                progress=not args.no_progress and not args.until_complete,
                callbacks=[note],
            )
        except KeyboardInterrupt:
            again = requeue_interrupted(study, worker=worker_id(), since=started)
            if again:
                print(f"interrupted: trial {', '.join(map(str, again))} re-queued with the same params", flush=True)
            raise
        states = {s: sum(t.state == s for t in ran) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        print(
            f"this worker ran {len(ran)} trials ({states[TrialState.COMPLETE]} complete, "
            f"{states[TrialState.PRUNED]} pruned, {states[TrialState.FAIL]} failed); "
            f"the study holds {_count(study, TrialState.COMPLETE)} complete",
            flush=True,
        )
    print(best_summary(study))
    return 0
