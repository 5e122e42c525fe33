"""The final retrain: a study's best configuration on all 60,000 training images, tested, saved, exported.

The configuration is the best trial's by *validation* accuracy; the test set is evaluated once
per seed and only reported. The model of the first listed seed (fixed before any result is
seen) is saved as safetensors + JSON and exported to ONNX, and the ONNX graph is checked
against PyTorch with onnxruntime on the test images.

With a checkpoint folder each seed checkpoints to DIR/seed<N>.ckpt, so an hour-long final run
survives interruption: the same command again resumes unfinished seeds (bit for bit on the CPU)
and takes finished ones from their checkpoints without retraining.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import multiprocessing
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from mnist_fc import checkpoint as ckpt
from mnist_fc.config import DataConfig, RunConfig
from mnist_fc.data import Split, file_sha256, load_split
from mnist_fc.errors import ConfigError, DataError
from mnist_fc.export import ONNX_HASH, PixelNet, export_onnx, onnx_logits, save_pixelnet, torch_logits
from mnist_fc.files import staged, with_suffix
from mnist_fc.minibatch import fit
from mnist_fc.model import FCNet
from mnist_fc.normalize import Normalizer
from mnist_fc.precision import device_name
from mnist_fc.trainer import TrainResult
from study import interrupt
from study.defaults import DEFAULT_JOBS, DEFAULT_STUDY_NAME, FINAL_OUT, FINAL_PROGRESS_LINES, FINAL_SEEDS, ONNX_ATOL
from study.defaults import default_storage as _default_storage
from study.errors import UserError
from study.locks import exclusive
from study.report_text import best_record
from study.runner.optimize import check_config
from study.runner.progress import Echo
from study.safety import check_model_outputs, check_writable_dir
from study.storage import check_study_name, load_study, open_storage


@dataclass(frozen=True)
class FinalResult:
    runs: list[dict[str, Any]]  # per seed: seed, test_accuracy, seconds, epochs
    paths: list[Path]  # safetensors, JSON, ONNX
    meta: dict[str, Any]  # what the JSON file holds

    def summary(self) -> dict[str, Any]:
        """The record `final --json` prints."""
        return {
            "trial_number": self.meta["trial_number"],
            "test_accuracy_mean": self.meta["test_accuracy_mean"],
            "test_accuracy_std": self.meta["test_accuracy_std"],
            "seeds": self.runs,
            "saved": [str(p) for p in self.paths],
            "onnx_max_abs_logit_diff": self.meta["onnx_check"]["max_abs_logit_diff"],
        }


WORKER_THREADS = 1  # torch threads of each seed trained at once with others (--jobs > 1): the seeds share the cores


def hardware(*, threads: int | None = None) -> dict[str, Any]:
    """Where the model was trained, for the JSON record; `threads`: the torch threads the training ran with,
    when not this process's (seeds trained at once in worker processes, one thread each)."""
    info = {
        "cpu": device_name(torch.device("cpu")),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def raw_split(data: DataConfig, *, seed: int) -> Split:
    """The run's split before any deskewing: the run's sizes, and test images as a saved model takes them,
    raw 0-255 pixels (as `evaluate` gives them); a model trained with `data.deskew` deskews them itself."""
    return load_split(dataclasses.replace(data, deskew=False), seed=seed)


def final_config(
    record: dict[str, Any],
    *,
    seed: int,
    epochs: int | None = None,
    train_size: int | None = None,
    device: str | None = None,
    precision: str | None = None,
    ema_decay: float | None = None,
) -> RunConfig:
    """The best trial's config, trained on all 60,000 training images, with the given overrides."""
    if not record.get("config"):
        raise UserError(f"trial #{record['trial_number']} stores no config (not made by mnist-study run?)")
    try:
        cfg = RunConfig.from_dict(record["config"])
    except ConfigError as e:
        raise UserError(f"trial #{record['trial_number']}'s stored config is damaged: {e}") from None
    overrides = {"device": device, "precision": precision, "ema_decay": ema_decay}
    train = dataclasses.replace(cfg.train, seed=seed, **{k: v for k, v in overrides.items() if v is not None})
    # A design trial's stop_margin (stop soon after the plateau, for its measures) would end a final after
    # 100 of its epochs: a final trains its epochs, fixed before the test set is seen.
    train = dataclasses.replace(train.for_epochs(epochs or train.epochs), stop_margin=None)
    # The trial's subsample seed goes with its subsample: a design trial's subset_seed without a train size
    # was refused ("a subset seed needs a train size") for a seed the user never set.
    subset_seed = cfg.data.subset_seed if train_size is not None else None
    data = dataclasses.replace(cfg.data, include_validation=True, train_size=train_size, subset_seed=subset_seed)
    return RunConfig(model=cfg.model, data=data, train=train)


def checkpoint_path(checkpoint_dir: str | Path, seed: int) -> Path:
    """Where `final --checkpoint-dir DIR` keeps seed `seed`'s run."""
    return Path(checkpoint_dir) / f"seed{seed}.ckpt"


def _fit_seed(
    cfg: RunConfig, log_every: int, threads: int | None, checkpoint: Path | None = None, checkpoint_every: int = 1
) -> tuple[TrainResult, dict, Normalizer]:
    """Train one seed (resuming from `checkpoint` if it exists), progress lines on stderr; weights come
    back as numpy arrays (plain pickles)."""
    if threads:
        torch.set_num_threads(threads)
    seed, epochs = cfg.train.seed, cfg.train.epochs

    def log(line: str) -> None:
        print(f"seed {seed}: {line} ({epochs} epochs)", file=sys.stderr, flush=True)

    fitted = fit(
        cfg,
        split=load_split(cfg.data, seed=seed),
        log=log,
        log_every=log_every,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
    )
    state = {k: v.detach().cpu().numpy() for k, v in fitted.model.state_dict().items()}
    return fitted.result, state, fitted.normalizer


def _train_all(
    cfgs: list[RunConfig], *, jobs: int, log_every: int, checkpoints: list[Path | None], checkpoint_every: int
) -> list[tuple[TrainResult, dict, Normalizer]]:
    if jobs == 1 or len(cfgs) == 1:  # in this process, with its threads; else one thread per worker (WORKER_THREADS)
        return [
            _fit_seed(cfg, log_every, None, path, checkpoint_every) for cfg, path in zip(cfgs, checkpoints, strict=True)
        ]
    ctx = multiprocessing.get_context("spawn")  # no forked copies of this process's thread pools
    # Workers stop with this process: a kill -9 of it left them training on, racing its rerun for the
    # same checkpoints; a SIGTERM (the Ctrl-C path here) is passed on to them.
    # A pool worker has no trial to re-queue: its KeyboardInterrupt only ends the seed, so exit soon after.
    watch = functools.partial(interrupt.exit_with_parent, grace_s=5.0)
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(cfgs)), mp_context=ctx, initializer=watch)
    with pool:
        futures = [
            pool.submit(_fit_seed, cfg, log_every, WORKER_THREADS, path, checkpoint_every)
            for cfg, path in zip(cfgs, checkpoints, strict=True)
        ]
        try:
            return [f.result() for f in futures]
        except KeyboardInterrupt:
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reached them already: harmless
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _trained_on(data: DataConfig, n_train: int, digests: dict[str, str]) -> str | dict[str, Any]:
    """What the model was trained on, for its JSON: the official images, or the user's CSVs by content
    (`digests`, from check_same_data; a relative path alone cannot tell which files produced the model)."""
    if data.source != "csv":
        return f"{n_train} official training images (train + validation)"
    return {
        "images": n_train,
        "what": "all rows of the training CSV (train + validation)",
        "train_csv": str(Path(data.train_csv or "").resolve()),
        "train_sha256": digests["train_sha256"],
        "test_csv": str(Path(data.test_csv or "").resolve()),
        "test_sha256": digests["test_sha256"],
    }


def check_same_data(study: optuna.Study, data: DataConfig) -> dict[str, str]:
    """A CSV study's files must still hold the data its trials were chosen on (the SHA-256 that `run`
    recorded): a rewritten or cut file, or another folder's file of the same relative name, would
    retrain and test on other data without a word. Returns the files' digests ({} for the embedded set),
    which the model's JSON records."""
    if data.source != "csv":
        return {}
    recorded = study.user_attrs.get("settings")
    recorded = recorded if isinstance(recorded, dict) else {}
    digests = {}
    for key, path in (("train_sha256", data.train_csv), ("test_sha256", data.test_csv)):
        try:
            now = digests[key] = file_sha256(path or "")
        except DataError as e:
            where = f"a path stored by study {study.study_name!r}: run from the folder it ran in"
            raise UserError(f"{e} ({where})") from None
        if recorded.get(key) not in (None, now):
            raise UserError(
                f"{path}: not the data study {study.study_name!r} was run on (its SHA-256 changed); restore the "
                "file, or run a new study on the new data"
            )
    return digests


def model_stem(name: str | None, study_name: str) -> str:
    """The saved model's file stem: --name, else the study name, which must then be a plain file name
    too (a study named `a/b` or `../x` would write outside --out)."""
    stem = name if name is not None else study_name
    if not stem.strip() or "/" in stem or "\0" in stem or stem in (".", ".."):
        what = f"--name {stem!r}" if name is not None else f"study name {stem!r} (the default --name)"
        raise UserError(f"{what} is not a plain file stem; pass --name, e.g. --name mymodel")
    return stem


def final_retrain(
    *,
    study_name: str = DEFAULT_STUDY_NAME,
    storage: str | None = None,
    seeds: Sequence[int] = FINAL_SEEDS,
    out: str | Path = FINAL_OUT,
    name: str | None = None,
    epochs: int | None = None,
    train_size: int | None = None,
    device: str | None = None,
    precision: str | None = None,
    ema_decay: float | None = None,
    jobs: int = DEFAULT_JOBS,
    log_every: int | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 1,
    command: str | None = None,
    trial: int | None = None,
    echo: Echo = print,
) -> FinalResult:
    """Retrain the best trial's config per seed, test each once, save + export + verify the first seed's model.

    `trial`: retrain this complete trial instead of the best one (a choice made on validation otherwise,
    e.g. the best mean over several pilot seeds).

    `log_every` epochs between progress lines on stderr (None: about FINAL_PROGRESS_LINES per seed, 0: none).
    `checkpoint_dir`: each seed checkpoints to DIR/seed<N>.ckpt every `checkpoint_every` epochs and at its
    end; run again, the same command resumes unfinished seeds and does not retrain finished ones.
    `command`: the command line that made the model, recorded in its JSON so that anyone can rerun it.
    """
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise UserError("give distinct non-negative seeds, e.g. 0,1,2")
    if checkpoint_every < 1:
        raise UserError("--checkpoint-every must be >= 1")
    check_study_name(study_name)
    file_stem = model_stem(name, study_name)  # before the storage is opened
    study = load_study(open_storage(storage or _default_storage(), create=False), study_name)
    record = best_record(study, trial=trial)
    cfgs = [
        final_config(
            record,
            seed=s,
            epochs=epochs,
            train_size=train_size,
            device=device,
            precision=precision,
            ema_decay=ema_decay,
        )
        for s in seeds
    ]
    for cfg in cfgs:
        check_config(cfg)  # --device cuda without a GPU fails here, not after loading 60,000 images
    stem = Path(out) / file_stem
    check_model_outputs(
        stem, storage=storage, data=cfgs[0].data
    )  # never the storage or a CSV; before hours of training
    digests = check_same_data(study, cfgs[0].data)
    split = raw_split(cfgs[0].data, seed=seeds[0])  # bad data fails here, before training
    x_test, y_test, n_train = split.x_test, split.y_test, len(split.x_train)
    n_epochs = cfgs[0].train.epochs
    every = max(1, n_epochs // FINAL_PROGRESS_LINES) if log_every is None else log_every
    check_writable_dir(stem.parent, what="output folder")  # an unwritable --out fails now, not after training
    # One writer per model stem and per checkpoint: two finals with the same --out/--name (or checkpoints)
    # trained for hours and the last to finish replaced the other's files without a word.
    targets: list[tuple[str | Path, str]] = [(stem, "model")]
    if checkpoint_dir is not None:
        targets += [(checkpoint_path(checkpoint_dir, s), "checkpoint") for s in seeds]
    with exclusive(targets):
        checkpoints: list[Path | None] = [None] * len(seeds)
        if checkpoint_dir is not None:
            check_writable_dir(checkpoint_dir, what="checkpoint folder")
            checkpoints = [checkpoint_path(checkpoint_dir, s) for s in seeds]
            for cfg, path in zip(cfgs, checkpoints, strict=True):
                if path is not None and path.exists():  # another config's or a damaged one: refused before training
                    done = int(ckpt.load(path, cfg)["epoch"])
                    what = "finished, not retrained" if done >= cfg.train.epochs else "resuming"
                    echo(f"seed {cfg.train.seed}: checkpoint {path} at epoch {done} of {cfg.train.epochs}; {what}")
        echo(f"training {len(cfgs)} seed(s) on {n_train} images, {n_epochs} epochs each ...")
        trained = _train_all(
            cfgs, jobs=jobs, log_every=every, checkpoints=checkpoints, checkpoint_every=checkpoint_every
        )
        runs: list[dict[str, Any]] = []
        shipped: tuple[PixelNet, RunConfig, TrainResult, np.ndarray] | None = None
        for cfg, (result, state, normalizer) in zip(cfgs, trained, strict=True):
            seed = cfg.train.seed
            if result.diverged:
                raise UserError(f"seed {seed} diverged at epoch {result.epochs}; nothing saved")
            net = FCNet(cfg.model)
            net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
            pixelnet = PixelNet.of(net, normalizer, deskew=cfg.data.deskew)
            # Every seed is scored as it is saved and deployed (fp32 weights, fp32 inference: what `evaluate` and
            # the ONNX file give), so the seeds' mean and the shipped seed are one measure; a bf16-trained run's
            # own end-of-training figure (bf16 autocast) is kept beside it and can differ by an image or two.
            logits = torch_logits(pixelnet, x_test)
            accuracy = float((logits.argmax(1) == y_test).mean())
            trained_as = f"; {result.test_accuracy:.4f} in {result.precision}" if result.precision != "fp32" else ""
            echo(f"seed {seed}: test accuracy {accuracy:.4f} (fp32 inference{trained_as}; {result.seconds:.0f} s)")
            runs.append(
                {
                    "seed": seed,
                    "test_accuracy": accuracy,
                    "test_accuracy_in_training_precision": result.test_accuracy,
                    "seconds": result.seconds,
                    "epochs": result.epochs,
                }
            )
            if shipped is None:
                shipped = (pixelnet, cfg, result, logits)
        assert shipped is not None  # seeds is not empty
        model, cfg0, result0, ref = shipped  # ref: the shipped seed's PyTorch logits, the ONNX file's reference
        accs = [r["test_accuracy"] for r in runs]
        parallel = min(jobs, len(seeds))  # seeds trained at once (_train_all's worker count)
        meta = {
            "config": cfg0.to_dict(),
            "study_name": study_name,
            "trial_number": record["trial_number"],
            "trial_val_accuracy": record["value"],
            "trained_on": _trained_on(cfg0.data, n_train, digests),
            "seed": seeds[0],  # the shipped model's seed: the first listed, fixed before any result
            "seeds": runs,
            "test_accuracy_mean": statistics.fmean(accs),
            "test_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "device": result0.device,
            "precision": result0.precision,
            "hardware": hardware(threads=WORKER_THREADS if parallel > 1 else None),
            "parallel_jobs": parallel,  # seeds trained at once: their seconds share the CPU
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if command:
            meta["command"] = command
        stem.parent.mkdir(parents=True, exist_ok=True)
        echo(f"exporting {stem}.onnx and checking it against PyTorch on {len(x_test)} test images ...")
        # The three files are written into a hidden folder and renamed into place together at the end: a
        # final killed during the ONNX check left a new .onnx beside the previous model's .json/.safetensors.
        with staged(stem.parent) as stage:
            onnx_path = export_onnx(model, with_suffix(stage / stem.name, ".onnx"))
            got = onnx_logits(onnx_path, x_test)
            diff = float(np.abs(ref - got).max())
            if diff > ONNX_ATOL:
                raise UserError(f"ONNX check failed: max |logit difference| {diff:.2e} > {ONNX_ATOL:g}")
            meta["test_accuracy"] = float((got.argmax(1) == y_test).mean())  # what `evaluate` prints for these files
            meta["onnx_check"] = {
                "max_abs_logit_diff": diff,
                "same_predictions": float((ref.argmax(1) == got.argmax(1)).mean()),
                "images": len(x_test),
            }
            meta[ONNX_HASH] = file_sha256(onnx_path)  # `evaluate` checks the ONNX file against it
            save_pixelnet(model, stage / stem.name, meta=meta)
        paths = [with_suffix(stem, ext) for ext in (".safetensors", ".json", ".onnx")]
        return FinalResult(runs=runs, paths=paths, meta=meta)
