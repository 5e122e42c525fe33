"""`mnist-study run`: an Optuna study of full-batch FC networks, stored in any Optuna storage."""

from __future__ import annotations

import argparse
import multiprocessing
import os

import optuna

from mnist_fc.config import RunConfig, TrainConfig, validate
from mnist_fc.data import Split, load_split
from study.batched_run import optimize_batched
from study.commands.args import add_data_args, add_train_args, data_config, positive_float, positive_int, train_config
from study.defaults import DEFAULT_SPACE, DEFAULT_STORAGE, DEFAULT_STUDY_NAME, DEFAULT_TRIALS, default_epochs
from study.errors import UserError
from study.objective import Objective, report_every
from study.pruners import DEFAULT_PRUNER, PRUNERS, make_pruner
from study.report_text import best_summary
from study.spaces import SPACES
from study.storage import curve_store, open_storage, redact

EXAMPLE = """examples:
  mnist-study run --trials 20 --epochs 300 --train-size 10000 --device cpu
  mnist-study run --trials 40 --epochs 300 --train-size 10000 --device cpu --batch-trials 4
  mnist-study run --trials 50 --pruner median --jobs 2    # two worker processes, one study
  mnist-study run --trials 200 --device cuda             # the full study on one GPU
  mnist-study run --storage postgresql+psycopg://user@host/db --study-name shared --trials 50"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run (or extend) an Optuna study; each trial trains one network",
        description="Run an Optuna study: each trial samples a network from the search space, "
        "trains it full-batch and stores results and learning curves.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--trials",
        type=positive_int,
        default=DEFAULT_TRIALS,
        help=f"number of trials to run now, added to any already stored (default {DEFAULT_TRIALS})",
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
    add_data_args(p)
    add_train_args(p, epochs_help="epochs per trial (default: 300 on CPU, 3000 on CUDA)")
    p.set_defaults(func=run)


def _sampler(name: str, *, seed: int, n_stored: int) -> optuna.samplers.BaseSampler:
    """TPE, or random sampling whose seed moves on by the trials already stored, so that extending a
    random study draws new configurations instead of repeating the first run's."""
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed + n_stored)
    return optuna.samplers.TPESampler(seed=seed)


def _check_study_space(study: optuna.Study, space: str) -> None:
    stored = study.user_attrs.get("space")
    if stored is None:
        study.set_user_attr("space", space)
    elif stored != space:
        raise UserError(f"study {study.study_name!r} was created with space {stored!r}, not {space!r}")


def _base_config(args: argparse.Namespace) -> RunConfig:
    epochs = args.epochs or default_epochs(args.device)
    base = RunConfig(data=data_config(args), train=train_config(args, TrainConfig(), epochs=epochs))
    validate(base)
    return base


def _optimize(
    args: argparse.Namespace, base: RunConfig, split: Split, *, n_trials: int, seed: int, progress: bool
) -> None:
    """Run `n_trials` trials of the (existing) study in this process."""
    storage = open_storage(args.storage)
    pruner = make_pruner(
        args.pruner, epochs=base.train.epochs, report_every=report_every(base.train.epochs, base.train.eval_every)
    )
    study = optuna.load_study(study_name=args.study_name, storage=storage, pruner=pruner)
    study.sampler = _sampler(args.sampler, seed=seed, n_stored=len(study.trials))
    objective = Objective(
        space=SPACES[args.space], base=base, split=split, curves=curve_store(storage), pruning=args.pruner != "none"
    )
    if args.batch_trials > 1:
        optimize_batched(study, objective, n_trials=n_trials, batch_trials=args.batch_trials, timeout=args.timeout)
    else:
        study.optimize(objective, n_trials=n_trials, timeout=args.timeout, show_progress_bar=progress)


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
    """--jobs N: N spawned processes share the trials; SQLite waits (busy timeout + WAL) instead of failing."""
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
    if not args.study_name.strip():
        raise UserError("--study-name must not be empty")
    base = _base_config(args)
    split = load_split(base.data, seed=args.seed)  # bad data fails here, before the study is touched
    storage = open_storage(args.storage)
    study = optuna.create_study(
        study_name=args.study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
    )
    _check_study_space(study, args.space)
    print(
        f"study {study.study_name!r} in {redact(args.storage)}: {len(study.trials)} trials stored, "
        f"running {args.trials} more ({base.train.epochs} epochs each, train size {len(split.x_train)}, "
        f"pruner {args.pruner}, jobs {args.jobs}, batch {args.batch_trials})",
        flush=True,
    )
    if args.jobs > 1:
        _run_jobs(args)
    else:
        _optimize(args, base, split, n_trials=args.trials, seed=args.seed, progress=not args.no_progress)
    print(best_summary(study))
    return 0
