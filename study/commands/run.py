"""`mnist-study run`: an Optuna study of full-batch FC networks, stored in any Optuna storage."""

from __future__ import annotations

import argparse

import optuna

from mnist_fc.config import RunConfig, TrainConfig, validate
from mnist_fc.data import load_split
from study.commands.args import add_data_args, add_train_args, data_config, positive_float, positive_int, train_config
from study.defaults import DEFAULT_SPACE, DEFAULT_STORAGE, DEFAULT_STUDY_NAME, DEFAULT_TRIALS, default_epochs
from study.errors import UserError
from study.objective import Objective
from study.report_text import best_summary
from study.spaces import SPACES
from study.storage import curve_store, open_storage, redact

EXAMPLE = """examples:
  mnist-study run --trials 20 --epochs 300 --train-size 10000 --device cpu
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


def run(args: argparse.Namespace) -> int:
    if not args.study_name.strip():
        raise UserError("--study-name must not be empty")
    epochs = args.epochs or default_epochs(args.device)
    base = RunConfig(data=data_config(args), train=train_config(args, TrainConfig(), epochs=epochs))
    validate(base)
    split = load_split(base.data, seed=args.seed)  # bad data fails here, before the study is touched
    storage = open_storage(args.storage)
    study = optuna.create_study(
        study_name=args.study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
    )
    study.sampler = _sampler(args.sampler, seed=args.seed, n_stored=len(study.trials))
    _check_study_space(study, args.space)
    objective = Objective(space=SPACES[args.space], base=base, split=split, curves=curve_store(storage))
    print(
        f"study {study.study_name!r} in {redact(args.storage)}: {len(study.trials)} trials stored, "
        f"running {args.trials} more ({epochs} epochs each, train size {len(split.x_train)})",
        flush=True,
    )
    study.optimize(objective, n_trials=args.trials, timeout=args.timeout, show_progress_bar=not args.no_progress)
    print(best_summary(study))
    return 0
