"""`mnist-study final`: retrain a study's best configuration on all 60,000 training images.

The configuration is the best trial's by *validation* accuracy; the test set is evaluated once
per seed and only reported. The model of the first listed seed (fixed before any result is
seen) is saved as safetensors + JSON and exported to ONNX, and the ONNX graph is checked
against PyTorch with onnxruntime on the test images.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnist_fc.config import RunConfig
from mnist_fc.data import load_split
from mnist_fc.export import PixelNet, export_onnx, onnx_logits, save_pixelnet, torch_logits
from mnist_fc.minibatch import fit
from mnist_fc.model import FCNet
from mnist_fc.normalize import Normalizer
from mnist_fc.trainer import TrainResult
from study.commands.args import positive_int
from study.defaults import DEFAULT_STORAGE, DEFAULT_STUDY_NAME
from study.errors import UserError
from study.report_text import best_record
from study.safety import check_model_outputs
from study.storage import load_study, open_storage

ONNX_ATOL = 1e-3  # max |logit difference| allowed between onnxruntime and PyTorch (fp32 both)

EXAMPLE = """examples:
  mnist-study final --study-name accuracy --storage sqlite:///studies/accuracy.db \\
      --seeds 0,1,2 --epochs 60 --jobs 3 --device cpu --out models/    # the shipped model
  mnist-study final --study-name mine --storage sqlite:///mine.db --seeds 0 --out /tmp/m/"""


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError("give distinct non-negative seeds, e.g. 0,1,2")
    return seeds


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "final",
        help="retrain a study's best config on all 60,000 training images, test it, save + export ONNX",
        description="Retrain the best trial's configuration (chosen on validation) on train + validation "
        "for each seed, evaluate each once on the test set, save the first seed's model "
        "(safetensors + JSON) and export it to ONNX with the normalisation inside the graph.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--study-name", default=DEFAULT_STUDY_NAME)
    p.add_argument("--storage", default=DEFAULT_STORAGE)
    p.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--out", default="models", help="output folder (default models/)")
    p.add_argument("--name", help="file stem of the saved model (default: the study name)")
    p.add_argument("--epochs", type=positive_int, help="override the trial's epochs (e.g. to fit a time budget)")
    p.add_argument(
        "--train-size", type=positive_int, help="stratified subsample of the 60,000 images (quick checks only)"
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override the trial's device")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="override the trial's precision")
    p.add_argument("--log-every", type=int, default=0, help="print 'Epoch, Loss, Acc' every N epochs (0 = never)")
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="train this many seeds at once, in separate one-thread processes (default 1: in this process)",
    )
    p.set_defaults(func=run)


def hardware() -> dict[str, Any]:
    """Where the model was trained, for the JSON record."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def final_config(record: dict[str, Any], args: argparse.Namespace, seed: int) -> RunConfig:
    """The best trial's config, trained on all 60,000 training images, with the CLI's overrides."""
    if not record.get("config"):
        raise UserError(f"best trial #{record['trial_number']} stores no config (not made by mnist-study run?)")
    cfg = RunConfig.from_dict(record["config"])
    train = dataclasses.replace(
        cfg.train,
        seed=seed,
        **{k: getattr(args, k) for k in ("epochs", "device", "precision") if getattr(args, k) is not None},
    )
    data = dataclasses.replace(cfg.data, include_validation=True, train_size=args.train_size)
    return RunConfig(model=cfg.model, data=data, train=train)


def _fit_seed(cfg: RunConfig, log_every: int, threads: int | None) -> tuple[TrainResult, dict, Normalizer]:
    """Train one seed; weights come back as numpy arrays (plain pickles across processes)."""
    if threads:
        torch.set_num_threads(threads)
    seed = cfg.train.seed
    split = load_split(cfg.data, seed=seed)
    fitted = fit(cfg, split=split, log=lambda line: print(f"seed {seed}: {line}", flush=True), log_every=log_every)
    state = {k: v.detach().cpu().numpy() for k, v in fitted.model.state_dict().items()}
    return fitted.result, state, fitted.normalizer


def _train_all(cfgs: list[RunConfig], args: argparse.Namespace) -> list[tuple[TrainResult, dict, Normalizer]]:
    if args.jobs == 1 or len(cfgs) == 1:
        return [_fit_seed(cfg, args.log_every, None) for cfg in cfgs]
    ctx = multiprocessing.get_context("spawn")  # no forked copies of this process's thread pools
    with ProcessPoolExecutor(max_workers=min(args.jobs, len(cfgs)), mp_context=ctx) as pool:
        futures = [pool.submit(_fit_seed, cfg, args.log_every, 1) for cfg in cfgs]
        return [f.result() for f in futures]


def run(args: argparse.Namespace) -> int:
    study = load_study(open_storage(args.storage, create=False), args.study_name)
    record = best_record(study)
    out = Path(args.out)
    stem = out / (args.name or args.study_name)
    runs: list[dict[str, Any]] = []
    shipped: PixelNet | None = None
    cfgs = [final_config(record, args, seed) for seed in args.seeds]
    check_model_outputs(stem, storage=args.storage, data=cfgs[0].data)  # before hours of training
    split = load_split(cfgs[0].data, seed=args.seeds[0])
    x_test, y_test, n_train = split.x_test, split.y_test, len(split.x_train)
    print(f"training {len(cfgs)} seed(s) on {n_train} images, {cfgs[0].train.epochs} epochs each ...", flush=True)
    for cfg, (result, state, normalizer) in zip(cfgs, _train_all(cfgs, args), strict=True):
        seed = cfg.train.seed
        if result.diverged:
            raise UserError(f"seed {seed} diverged at epoch {result.epochs}; nothing saved")
        print(f"seed {seed}: test accuracy {result.test_accuracy:.4f} ({result.seconds:.0f} s)", flush=True)
        runs.append(
            {"seed": seed, "test_accuracy": result.test_accuracy, "seconds": result.seconds, "epochs": result.epochs}
        )
        if shipped is None:
            net = FCNet(cfg.model)
            net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
            shipped, cfg0, device, precision = PixelNet.of(net, normalizer), cfg, result.device, result.precision
    assert shipped is not None
    accs = [r["test_accuracy"] for r in runs]
    meta = {
        "config": cfg0.to_dict(),
        "study_name": args.study_name,
        "trial_number": record["trial_number"],
        "trial_val_accuracy": record["value"],
        "trained_on": f"{n_train} official training images (train + validation)",
        "seed": args.seeds[0],  # the shipped model's seed: the first listed, fixed before any result
        "seeds": runs,
        "test_accuracy_mean": statistics.fmean(accs),
        "test_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "device": device,
        "precision": precision,
        "hardware": hardware(),
        "parallel_jobs": min(args.jobs, len(args.seeds)),  # seeds trained at once: their seconds share the CPU
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    stem.parent.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx(shipped, stem.with_suffix(".onnx"))
    ref = torch_logits(shipped, x_test)
    got = onnx_logits(onnx_path, x_test)
    diff = float(np.abs(ref - got).max())
    if diff > ONNX_ATOL:
        raise UserError(f"ONNX check failed: max |logit difference| {diff:.2e} > {ONNX_ATOL:g}")
    # What `mnist-study evaluate` will print for the shipped files (fp32, raw pixels in).
    meta["test_accuracy"] = float((got.argmax(1) == y_test).mean())
    meta["onnx_check"] = {
        "max_abs_logit_diff": diff,
        "same_predictions": float((ref.argmax(1) == got.argmax(1)).mean()),
        "images": len(x_test),
    }
    paths = save_pixelnet(shipped, stem, meta=meta)
    print(
        json.dumps(
            {
                "test_accuracy_mean": meta["test_accuracy_mean"],
                "test_accuracy_std": meta["test_accuracy_std"],
                "seeds": runs,
                "saved": [str(paths["safetensors"]), str(paths["json"]), str(onnx_path)],
                "onnx_max_abs_logit_diff": diff,
            }
        )
    )
    return 0
