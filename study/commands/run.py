"""`mnist-study run`: an Optuna study of full-batch FC networks, stored in any Optuna storage."""

from __future__ import annotations

import argparse

from study.commands.args import (
    add_data_args,
    add_study_args,
    add_train_args,
    bounded_int,
    data_config,
    positive_int,
    seconds_float,
    seconds_int,
)
from study.defaults import (
    DEFAULT_BATCH_TRIALS,
    DEFAULT_JOBS,
    DEFAULT_PRUNER,
    DEFAULT_SAMPLER,
    DEFAULT_SPACE,
    DEFAULT_TRIALS,
    HEARTBEAT_SECONDS,
    MAX_BATCH_TRIALS,
    MAX_JOBS,
    PRUNERS,
    SPACE_NAMES,
)

EXAMPLE = """examples:
  mnist-study run --trials 20 --epochs 300 --train-size 10000 --device cpu
  mnist-study run --trials 40 --epochs 300 --train-size 10000 --device cpu --batch-trials 4
  mnist-study run --trials 50 --pruner median --jobs 2    # two worker processes, one study
  mnist-study run --trials 200 --device cuda             # the full study on one GPU
  mnist-study run --until-complete 200 --device cuda     # resume after a crash: rerun the same line
  mnist-study run --storage postgresql+psycopg://user@host/db --study-name shared --until-complete 50"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "run",
        help="run (or extend) an Optuna study; each trial trains one network",
        description="Run an Optuna study: each trial samples a network from the search space, "
        "trains it full-batch and stores results and learning curves. Several processes (or "
        "machines, with a PostgreSQL storage) can run the same study at once. Progress: a bar on a "
        "terminal, one line per finished trial otherwise.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    how_many = p.add_mutually_exclusive_group()
    how_many.add_argument(
        "--trials", type=positive_int, help=f"run N more trials, added to any already stored (default {DEFAULT_TRIALS})"
    )
    how_many.add_argument(
        "--until-complete",
        type=positive_int,
        metavar="N",
        help="run until the study holds N COMPLETE trials, counting those already stored (any number of "
        "workers; rerunning the same command resumes a crashed study)",
    )
    p.add_argument("--timeout", type=seconds_float, help="stop starting new trials after S seconds")
    add_study_args(p)
    p.add_argument(
        "--space", choices=SPACE_NAMES, default=DEFAULT_SPACE, help=f"search space (default {DEFAULT_SPACE})"
    )
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
        type=bounded_int(MAX_JOBS),
        default=DEFAULT_JOBS,
        help=f"worker processes running trials of this study at once (default {DEFAULT_JOBS}); "
        "each gets cores/N torch threads",
    )
    p.add_argument(
        "--batch-trials",
        type=bounded_int(MAX_BATCH_TRIALS),
        default=DEFAULT_BATCH_TRIALS,
        help="train up to K trials at once as one batched model, results equal to training each alone "
        f"within float rounding (default {DEFAULT_BATCH_TRIALS})",
    )
    p.add_argument(
        "--sampler",
        choices=("tpe", "random"),
        default=DEFAULT_SAMPLER,
        help="tpe (default) searches for the best net; random samples the space evenly, which is what an "
        "unbiased analysis of the factors (mnist-study report) wants",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar on a terminal: one plain line per finished trial instead (as in a log)",
    )
    p.add_argument(
        "--heartbeat",
        type=seconds_int,
        default=HEARTBEAT_SECONDS,
        metavar="S",
        help=f"a running trial proves its worker alive every S seconds (default {HEARTBEAT_SECONDS})",
    )
    p.add_argument(
        "--grace",
        type=seconds_int,
        metavar="S",
        help="a RUNNING trial of another host silent for S seconds is marked FAILED and re-queued with the "
        "same params (default 3 x --heartbeat); one of a dead process on this host is re-queued at once",
    )
    add_data_args(p)
    add_train_args(
        p,
        epochs_help="epochs per trial (default: 300 on CPU, 3000 on CUDA)",
        seed_help="seed for data subsample, init and sampler (the sampler draws trial N from (seed, N): "
        "workers, machines and resumed runs with one --seed never repeat a trial; worker i of --jobs "
        "samples with seed + i)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from study.runner import StudyPlan, base_config, run_study

    base = base_config(
        data=data_config(args),
        epochs=args.epochs,
        eval_every=args.eval_every,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
    )
    plan = StudyPlan(
        study_name=args.study_name,
        storage=args.storage,
        space=args.space,
        base=base,
        trials=args.trials,
        until_complete=args.until_complete,
        timeout=args.timeout,
        jobs=args.jobs,
        batch_trials=args.batch_trials,
        sampler=args.sampler,
        pruner=args.pruner,
        heartbeat=args.heartbeat,
        grace=args.grace,
        progress=not args.no_progress,
        verbose=args.verbose,
    )
    run_study(plan, echo=lambda line: print(line, flush=True))
    return 0
