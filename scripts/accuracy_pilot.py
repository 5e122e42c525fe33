"""A long validation-only run of a two-hidden-layer recipe, stored as a trial that `mnist-study final` can retrain.

Issue 14 (>= 99.55% test): the Optuna study of `studies/accuracy.db` picked its recipe in 9-epoch runs
on 10,000 images, where long-training levers (width, elastic distortions, weight averaging) cannot
show. A pilot takes a saved model's config (`--base`), changes the named things, trains on the 50,000
training images for the full number of epochs and scores the 10,000 validation images; the test set
is never printed or written. Resumable: rerun the same command after an interruption (checkpoint
every --checkpoint-every epochs, bit-identical on the CPU).

With --storage the finished pilot becomes a COMPLETE trial (value = validation accuracy, the config in
its user attributes) of a study, so that the best pilot is retrained on all 60,000 images by

    mnist-study final --study-name accuracy-long --storage sqlite:///studies/accuracy_long.db ...

    python scripts/accuracy_pilot.py --n-units-l1 1024 --n-units-l2 1024 --epochs 120 --ema-decay 0.999 \
        --precision bf16 --threads 1 --out runs/accuracy_long/pilots/affine \
        --storage sqlite:///studies/accuracy_long.db --study-name accuracy-long
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from mnist_fc.config import OPTIMIZERS, PRECISIONS, RunConfig
from mnist_fc.export import load_meta
from mnist_fc.precision import cpu_flags
from mnist_fc.trainer import fit
from study.redaction import redact_argv
from study.runner.final import hardware
from study.spaces import AUG_AT_STRENGTH_1

# What a pilot may change, as Optuna params: numeric distributions wide enough for any pilot, so that
# trials with different values stay compatible in one study.
PARAMS = {
    "n_units_l1": ("model", IntDistribution(1, 8192)),
    "n_units_l2": ("model", IntDistribution(1, 8192)),
    "dropout": ("model", FloatDistribution(0.0, 1.0)),
    "epochs": ("train", IntDistribution(1, 100_000)),
    "ema_decay": ("train", FloatDistribution(0.0, 1.0)),
    "lr": ("train", FloatDistribution(0.0, 1000.0)),
    "weight_decay": ("train", FloatDistribution(0.0, 100.0)),
    "label_smoothing": ("train", FloatDistribution(0.0, 1.0)),
    "aug_elastic_alpha": ("train", FloatDistribution(0.0, 1000.0)),
    "aug_elastic_sigma": ("train", FloatDistribution(0.1, 100.0)),
    "aug_clean_epochs": ("train", IntDistribution(0, 100_000)),
    "seed": ("train", IntDistribution(0, 2**31)),
}
# Params recorded only by pilots that change them, so that older pilots' recorded params stay as they were
# (a finished pilot is recognised by its params): deskew as 1, the optimizer by name, its momentum, the
# minibatch size, and the affine augmentation's strength (the study space's rule: its four maxima scaled together).
OPTIONAL = {
    "aug_strength": FloatDistribution(0.0, 100.0),
    "deskew": IntDistribution(0, 1),
    "optimizer": CategoricalDistribution(OPTIMIZERS),
    "momentum": FloatDistribution(0.0, 1.0),
    "batch_size": IntDistribution(1, 1_000_000),
}
OPTIONAL_TRAIN = ("optimizer", "momentum", "batch_size")  # the TrainConfig fields among them, each with its own flag


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--base", type=Path, default=Path("models/accuracy.json"), help="saved model whose config to start from"
    )
    for name, (_, dist) in PARAMS.items():
        kind = int if isinstance(dist, IntDistribution) else float
        p.add_argument("--" + name.replace("_", "-"), type=kind, help=f"override the base config's {name}")
    p.add_argument("--deskew", action="store_true", help="deskew every image first (DataConfig.deskew)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="override the base config's optimizer")
    p.add_argument("--momentum", type=float, help="override the base config's momentum (sgd, nesterov)")
    p.add_argument("--batch-size", type=int, help="override the base config's minibatch size")
    p.add_argument(
        "--aug-strength",
        type=float,
        help="affine augmentation at this strength: shift, rotation, zoom and shear maxima = S x "
        + ", ".join(f"{v:g}" for v in AUG_AT_STRENGTH_1.values())
        + " (the accuracy space's rule; elastic distortions are set apart)",
    )
    p.add_argument("--precision", choices=PRECISIONS, help="override the base config's precision")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--train-size", type=int, help="stratified subsample of the 50,000 (quick checks only)")
    p.add_argument("--eval-every", type=int, default=5, help="validation metrics every K epochs (default 5)")
    p.add_argument("--checkpoint-every", type=int, default=5, help="epochs between checkpoints (default 5)")
    p.add_argument("--out", type=Path, required=True, help="folder: pilot.ckpt, curves.json, result.json, log.txt")
    p.add_argument("--storage", help="Optuna storage to record the finished pilot in as a trial")
    p.add_argument("--study-name", default="accuracy-long", help="study for --storage (default accuracy-long)")
    return p.parse_args(argv)


def pilot_config(base: RunConfig, args: argparse.Namespace) -> tuple[RunConfig, dict[str, float | str]]:
    """The base config with the named overrides, on the 50,000 training images (validation held out)."""
    changes: dict[str, dict] = {"model": {}, "train": {}}
    for name, (part, _) in PARAMS.items():
        if getattr(args, name) is not None:
            changes[part][name] = getattr(args, name)
    train = dict(changes["train"], eval_every=args.eval_every)
    train |= {k: getattr(args, k) for k in OPTIONAL_TRAIN if getattr(args, k) is not None}
    if args.aug_strength is not None:
        if not args.aug_strength >= 0:  # NaN too
            raise ValueError(f"--aug-strength must be >= 0, not {args.aug_strength:g}")
        train |= {k: v * args.aug_strength for k, v in AUG_AT_STRENGTH_1.items()}
    if args.precision:
        train["precision"] = args.precision
    cfg = RunConfig(
        model=dataclasses.replace(base.model, **changes["model"]),
        data=dataclasses.replace(
            base.data, include_validation=False, train_size=args.train_size, deskew=args.deskew or base.data.deskew
        ),
        train=dataclasses.replace(base.train, **train),
    )
    params = {name: getattr(getattr(cfg, part), name) for name, (part, _) in PARAMS.items()}
    if cfg.data.deskew:
        params["deskew"] = 1
    if args.aug_strength is not None:
        params["aug_strength"] = args.aug_strength
    for name in OPTIONAL_TRAIN:
        if getattr(args, name) is not None:
            params[name] = getattr(cfg.train, name)
    return cfg, params


def record_trial(storage: str, study_name: str, params: dict, value: float, attrs: dict) -> int:
    """Store the finished pilot as a COMPLETE trial (maximised validation accuracy), once: a pilot already
    recorded from the same --out with the same config keeps its trial (compared as configs, not params or
    dicts, so that a pilot recorded before a param or a config field was added is still found)."""
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize", load_if_exists=True)
    config = RunConfig.from_dict(attrs["config"])
    for t in study.get_trials(deepcopy=False):  # the same command again (it resumed a finished run): no duplicate
        # As configs, not dicts: one stored before a field existed lacks that key but means its default.
        same = "config" in t.user_attrs and RunConfig.from_dict(t.user_attrs["config"]) == config
        same = same or t.params == params
        if t.user_attrs.get("pilot") == attrs["pilot"] and same:
            return t.number
    trial = optuna.trial.create_trial(
        params=params,
        distributions={name: PARAMS[name][1] if name in PARAMS else OPTIONAL[name] for name in params},
        value=value,
        user_attrs=attrs,
    )
    study.add_trial(trial)
    return study.trials[-1].number


def record(args: argparse.Namespace, params: dict, summary: dict, say: Callable[[str], None]) -> None:
    """With --storage, the finished pilot (its result.json "result") as a trial, once."""
    if args.storage:
        attrs = {k: summary[k] for k in ("config", "val_accuracy", "seconds")} | {"pilot": str(args.out)}
        number = record_trial(args.storage, args.study_name, params, summary["val_accuracy"], attrs)
        say(f"recorded as trial {number} of {args.study_name!r} in {args.storage}")


def finished(out: Path, params: dict) -> dict | None:
    """The result.json of a pilot in `out` that already ran to the end with these params, else None.

    Rerunning a resumable pilot script must not touch a finished pilot's committed record: resuming it
    from its last checkpoint rewrote result.json (the seconds changed) and appended to log.txt."""
    try:
        result = json.loads((out / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and result.get("params") == params else None


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg, params = pilot_config(RunConfig.from_dict(load_meta(args.base)["config"]), args)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        sys.exit(f"accuracy_pilot: error: {exc}")
    if (done := finished(args.out, params)) is not None:
        val = done["result"]["val_accuracy"]
        print(f"{args.out}: already finished (val acc {val:.4f}); its files are left as they are")
        record(args, params, done["result"], print)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    log_file = (args.out / "log.txt").open("a")

    def log(line: str) -> None:
        print(line, flush=True)
        print(line, file=log_file, flush=True)

    log(f"$ {shlex.join([sys.executable, *redact_argv(sys.argv)])}")

    def on_eval(epoch: int, metrics: dict[str, float]) -> bool:
        log(f"epoch {epoch}: val acc {metrics['val_accuracy']:.4f}, val loss {metrics['val_loss']:.4f}")
        return False

    try:
        r = fit(cfg, on_eval=on_eval, checkpoint=args.out / "pilot.ckpt", checkpoint_every=args.checkpoint_every).result
    except ValueError as exc:  # bad config or a checkpoint of another run: one line, exit 2
        sys.exit(f"accuracy_pilot: error: {exc}")
    curves = r.curves.to_dict()
    (args.out / "curves.json").write_text(json.dumps(curves) + "\n")
    summary = {k: v for k, v in r.summary().items() if not k.startswith("test")}  # selection: no test figure
    result = {
        "params": params,
        "result": summary,
        "command": shlex.join(
            ["python", "scripts/accuracy_pilot.py", *redact_argv(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": {
            **hardware(),  # the same record `final` writes into a model's JSON
            "cpu_flags": sorted(f for f in cpu_flags() if f.startswith(("amx", "avx512_bf16", "avx512f"))),
        },
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    log(f"done: val acc {r.val_accuracy:.4f}, train acc {r.train_accuracy:.4f}, {r.epochs} epochs in {r.seconds:.0f} s")
    record(args, params, summary, log)


if __name__ == "__main__":
    main()
