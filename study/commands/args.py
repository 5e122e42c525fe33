"""Argument types and the flag groups shared by several commands."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable

from mnist_fc.config import (
    ACTIVATIONS,
    DEVICES,
    INIT_DISTRIBUTIONS,
    INIT_SCALINGS,
    MAX_COUNT,
    MAX_DEGREES,
    MAX_EPOCHS,
    MAX_PIXELS,
    MAX_REAL,
    MAX_SEED,
    MAX_UNITS,
    NORMALIZATIONS,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from study.defaults import DEFAULT_STUDY_NAME, STORAGE_ENV, default_storage
from study.errors import UserError
from study.redaction import redact_url


def _bound(kind: type, value: float) -> str:
    """A bound as the user would type it: 4294967295, not 4.29497e+09."""
    if kind is int or (float(value).is_integer() and abs(value) < 1e16):
        return str(int(value))
    return f"{value:g}"


def _number(
    kind: type, *, minimum: float | None = None, strict: bool = False, maximum: float | None = None
) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            if not text.isascii():  # int("١٢") == 12 in Python: a digit from another script is a typo here
                raise ValueError(text)
            if "_" in text:  # int("1_0") == 10 in Python: a typo on a command line, not ten
                raise ValueError(text)
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if kind is float and value != value:  # NaN
            raise argparse.ArgumentTypeError("NaN is not allowed")
        if kind is float and abs(value) == float("inf"):
            raise argparse.ArgumentTypeError("infinity is not allowed")
        if minimum is not None and (value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(f"{text} must be {'>' if strict else '>='} {_bound(kind, minimum)}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{text} must be <= {_bound(kind, maximum)}")
        return value

    return parse


# Upper bounds keep absurd values from surfacing as overflows or out-of-memory errors deep inside torch
# (the library's own bounds, so that a flag and a config agree).
MAX_SECONDS = 10**9  # timeouts, heartbeats (~30 years)

positive_int = _number(int, minimum=1, maximum=MAX_COUNT)
nonneg_int = _number(int, minimum=0, maximum=MAX_COUNT)
positive_float = _number(float, minimum=0, strict=True, maximum=MAX_REAL)
nonneg_float = _number(float, minimum=0, maximum=MAX_REAL)
any_float = _number(float, minimum=-MAX_REAL, maximum=MAX_REAL)
epochs_int = _number(int, minimum=1, maximum=MAX_EPOCHS)
units_int = _number(int, minimum=1, maximum=MAX_UNITS)
seed_int = _number(int, minimum=0, maximum=MAX_SEED)
port_int = _number(int, minimum=1, maximum=65535)
seconds_int = _number(int, minimum=1, maximum=MAX_SECONDS)
seconds_float = _number(float, minimum=0, strict=True, maximum=MAX_SECONDS)
epochs_float = _number(float, minimum=0, maximum=MAX_EPOCHS)
pixels_float = _number(float, minimum=0, maximum=MAX_PIXELS)
positive_pixels_float = _number(float, minimum=0, strict=True, maximum=MAX_PIXELS)
degrees_float = _number(float, minimum=0, maximum=MAX_DEGREES)
fraction_float = _number(float, minimum=0, maximum=1)


def add_study_args(p: argparse.ArgumentParser, *, name: bool = True) -> None:
    """--study-name and --storage, the same in every command; $OPTUNA_STORAGE is the storage default."""
    if name:
        p.add_argument(
            "--study-name", default=DEFAULT_STUDY_NAME, help=f"study in the storage (default {DEFAULT_STUDY_NAME!r})"
        )
    storage = default_storage()
    source = f"${STORAGE_ENV}" if os.environ.get(STORAGE_ENV) else f"${STORAGE_ENV} if set, else"
    shown = redact_url(storage) if os.environ.get(STORAGE_ENV) else storage
    p.add_argument(
        "--storage",
        default=storage,
        metavar="URL",
        help=f"any Optuna storage URL, e.g. sqlite:///file.db or postgresql+psycopg://user@host/db "
        f"(default: {source} {shown})",
    )


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--train-csv", help="article-style CSV (label + 784 pixels); needs --test-csv too")
    g.add_argument("--test-csv", help="test CSV in the same format")
    g.add_argument(
        "--train-size",
        type=positive_int,
        help="stratified seeded subsample of the 50,000 training images (default: all)",
    )
    g.add_argument(
        "--validation-size",
        type=positive_int,
        metavar="N",
        help=f"hold out the last N training rows for validation (default {DataConfig.validation_size:,}, the "
        "official split; smaller for a small CSV). Part of a study's settings: every run of it uses the same N",
    )


def add_train_args(p: argparse.ArgumentParser, *, epochs_help: str, seed_help: str) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=epochs_int, help=epochs_help)
    g.add_argument(
        "--eval-every",
        type=epochs_int,
        default=TrainConfig.eval_every,
        help=f"validation metrics every K epochs (default {TrainConfig.eval_every})",
    )
    g.add_argument("--seed", type=seed_int, default=0, help=f"{seed_help} (default 0)")
    g.add_argument("--device", choices=DEVICES, default="auto", help="auto = cuda if available (default)")
    g.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto = the faster of fp32 and bf16 as measured on this machine (cached probe)",
    )


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Model/optimiser flags; unset ones keep the base config's value (the article's by default)."""
    g = p.add_argument_group("model and optimiser (defaults: the article's)")
    g.add_argument("--n-units-l1", type=units_int, help="first hidden layer width (article: 100)")
    g.add_argument("--n-units-l2", type=units_int, help="second hidden layer width (article: 30)")
    g.add_argument("--activation", choices=ACTIVATIONS, help="hidden activation (article: sigmoid)")
    g.add_argument("--batchnorm", action=argparse.BooleanOptionalAction, help="BatchNorm1d after each hidden Linear")
    g.add_argument("--dropout", type=fraction_float, help="dropout after each hidden activation (default 0)")
    g.add_argument("--init-distribution", choices=INIT_DISTRIBUTIONS, help="weight init distribution (normal)")
    g.add_argument("--init-mean", type=any_float, help="weight init mean (article: 0.01)")
    g.add_argument("--init-std", type=nonneg_float, help="weight init std (article: 0.1)")
    g.add_argument(
        "--init-scaling",
        choices=INIT_SCALINGS,
        help="multiply drawn weights by 1 (none, article), 1/sqrt(fan_in) or 1/fan_in (the article's rule)",
    )
    g.add_argument(
        "--fan-in-scaling", dest="fan_in_scaling", action="store_true", help=argparse.SUPPRESS
    )  # the old flag, kept so existing command lines still mean what they meant (= --init-scaling sqrt_fan_in)
    g.add_argument("--normalization", choices=NORMALIZATIONS, help="input normalisation (article: article)")
    g.add_argument(
        "--deskew",
        action="store_true",
        default=None,
        help="deskew every image first: shear its slant away and centre it (LeCun et al. 1998)",
    )
    g.add_argument("--lr", type=positive_float, help="learning rate (article: 0.1)")
    g.add_argument("--momentum", type=nonneg_float, help="SGD momentum (article: 0)")
    g.add_argument("--weight-decay", type=nonneg_float, help="L2 weight decay (article: 0)")
    add_minibatch_args(p)


# TrainConfig fields set by add_minibatch_args (flag --aug-shift -> field aug_shift, ...).
MINIBATCH_FIELDS = (
    "optimizer",
    "batch_size",
    "schedule",
    "warmup_epochs",
    "label_smoothing",
    "aug_shift",
    "aug_rotate",
    "aug_scale",
    "aug_shear",
    "aug_elastic_alpha",
    "aug_elastic_sigma",
    "aug_clean_epochs",
)


def add_minibatch_args(p: argparse.ArgumentParser) -> None:
    """Beyond the article: any of these switches training to the minibatch loop."""
    g = p.add_argument_group("minibatch training and augmentation (defaults: off, i.e. the article's full batch)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, help="sgd (article; uses --momentum), nesterov, adam, adamw")
    g.add_argument("--batch-size", type=positive_int, help="minibatch size (default: full batch)")
    g.add_argument("--schedule", choices=SCHEDULES, help="lr schedule per step: none (article), cosine, onecycle")
    g.add_argument("--warmup-epochs", type=epochs_float, help="lr warm-up (cosine) or rise (onecycle) in epochs")
    g.add_argument("--label-smoothing", type=fraction_float, help="cross-entropy label smoothing (default 0)")
    g.add_argument("--aug-shift", type=pixels_float, help="random shift, max pixels per axis (default 0 = off)")
    g.add_argument("--aug-rotate", type=degrees_float, help="random rotation, max degrees (default 0)")
    g.add_argument("--aug-scale", type=fraction_float, help="random zoom, max relative change, e.g. 0.1 (default 0)")
    g.add_argument("--aug-shear", type=degrees_float, help="random shear, max degrees (default 0)")
    g.add_argument("--aug-elastic-alpha", type=nonneg_float, help="elastic distortion strength, pixels (Simard: 34)")
    g.add_argument(
        "--aug-elastic-sigma", type=positive_pixels_float, help="elastic field smoothness, pixels (default 4)"
    )
    g.add_argument(
        "--aug-clean-epochs",
        type=_number(int, minimum=0, maximum=MAX_EPOCHS),
        help="train the last K epochs on clean images, augmentation off (default 0)",
    )


def _overrides(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def data_config(args: argparse.Namespace, base: DataConfig | None = None) -> DataConfig:
    for flag, value in (("--train-csv", args.train_csv), ("--test-csv", args.test_csv)):
        if value is not None and not value.strip():  # an unset shell variable: never the embedded data instead
            raise UserError(f"{flag} is empty: give a CSV file")
    if (args.train_csv is None) != (args.test_csv is None):
        raise UserError("--train-csv and --test-csv go together")
    base = base or DataConfig()
    source = "csv" if args.train_csv is not None else "embedded"
    n_val = getattr(args, "validation_size", None) or base.validation_size
    return dataclasses.replace(
        base,
        source=source,
        train_csv=args.train_csv,
        test_csv=args.test_csv,
        train_size=args.train_size,
        validation_size=n_val,
    )


def train_config(args: argparse.Namespace, base: TrainConfig, *, epochs: int) -> TrainConfig:
    return dataclasses.replace(
        base, epochs=epochs, eval_every=args.eval_every, seed=args.seed, device=args.device, precision=args.precision
    )


def run_config_from_flags(args: argparse.Namespace, base: RunConfig, *, epochs: int) -> RunConfig:
    """`base` with every flag the user set applied on top."""
    if getattr(args, "fan_in_scaling", False):  # the old flag: one meaning, never silently overridden
        if args.init_scaling not in (None, "sqrt_fan_in"):
            raise UserError(f"--fan-in-scaling means --init-scaling sqrt_fan_in, not {args.init_scaling}: give one")
        args.init_scaling = "sqrt_fan_in"
    model = dataclasses.replace(base.model, **_overrides(args, tuple(f.name for f in dataclasses.fields(ModelConfig))))
    data = dataclasses.replace(data_config(args, base.data), **_overrides(args, ("normalization", "deskew")))
    train = train_config(
        args,
        dataclasses.replace(base.train, **_overrides(args, ("lr", "momentum", "weight_decay", *MINIBATCH_FIELDS))),
        epochs=epochs,
    )
    return RunConfig(model=model, data=data, train=train)


def bounded_int(maximum: int) -> Callable[[str], float]:
    """A whole number from 1 to `maximum`."""
    return _number(int, minimum=1, maximum=maximum)
