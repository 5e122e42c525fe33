"""Golden training runs: exact curves and metrics recorded once, so a refactor of the training core
can prove it changed nothing (tests/mnist_fc/test_golden_runs.py compares against them).

Regenerate only when a change of results is intended, and say so in the commit:
    python -m tests.mnist_fc.golden_runs --write

Floats are stored as JSON numbers (Python's repr round-trips float64 exactly). Exact equality holds on
the machine and torch version that wrote the file; the `machine` entry records which one that was.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnist_fc.batched import train_batched
from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig, article_preset
from mnist_fc.minibatch import fit
from mnist_fc.precision import device_name
from mnist_fc.trainer import train

GOLDEN = Path(__file__).with_name("golden_runs.json")
SMALL = DataConfig(train_size=1000)


def machine() -> dict[str, str]:
    """What exact float results depend on: the CPU's kernels and the torch build."""
    return {"cpu": device_name(torch.device("cpu")), "arch": platform.machine(), "torch": torch.__version__}


def _record(result: Any) -> dict[str, Any]:
    summary = {k: v for k, v in result.summary().items() if k != "seconds"}  # wall time is not a result
    return {"summary": summary, "curves": result.curves.to_dict()}


def _weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(t.detach().cpu().numpy()).tobytes())
    return h.hexdigest()


def _stop_at(epoch: int):
    return lambda ep, metrics: ep >= epoch


def fullbatch_configs() -> dict[str, RunConfig]:
    article = article_preset(epochs=40, device="cpu", precision="fp32", eval_every=10)
    article = dataclasses.replace(article, data=SMALL)
    moving = RunConfig(
        model=ModelConfig(n_units_l1=48, n_units_l2=24, batchnorm=True),
        data=dataclasses.replace(SMALL, normalization="per_pixel"),
        train=TrainConfig(
            device="cpu", precision="fp32", epochs=30, lr=1.0, momentum=0.5, weight_decay=1e-4, eval_every=7, seed=3
        ),
    )
    diverging = RunConfig(
        model=ModelConfig(activation="relu", init_std=1.0),
        data=dataclasses.replace(SMALL, normalization="raw"),
        train=TrainConfig(device="cpu", precision="fp32", epochs=50, lr=1e6, eval_every=5),
    )
    return {
        "article": article,
        "article_bf16": dataclasses.replace(article, train=dataclasses.replace(article.train, precision="bf16")),
        "bn_momentum_per_pixel": moving,
        "diverging": diverging,
    }


def batched_members() -> list[RunConfig]:
    base = RunConfig(data=SMALL, train=TrainConfig(device="cpu", precision="fp32", epochs=20, eval_every=5, seed=1))

    def member(h1: int, h2: int, lr: float, **model: Any) -> RunConfig:
        return dataclasses.replace(
            base, model=ModelConfig(n_units_l1=h1, n_units_l2=h2, **model), train=dataclasses.replace(base.train, lr=lr)
        )

    return [
        member(100, 30, 0.1),
        member(17, 9, 1.0, batchnorm=True),
        member(64, 50, 0.3, activation="tanh", init_distribution="uniform", init_scaling="sqrt_fan_in"),
        member(32, 16, 1e6, activation="relu", init_std=1.0),  # diverges and leaves the batch
    ]


def minibatch_configs() -> dict[str, RunConfig]:
    model = ModelConfig(
        n_units_l1=64, n_units_l2=32, activation="relu", init_mean=0, init_std=1.4, init_scaling="sqrt_fan_in"
    )
    data = dataclasses.replace(SMALL, normalization="global")
    adamw = TrainConfig(
        device="cpu",
        epochs=4,
        eval_every=2,
        optimizer="adamw",
        lr=2e-3,
        batch_size=128,
        schedule="onecycle",
        label_smoothing=0.1,
        aug_shift=2.0,
        aug_rotate=5.0,
        seed=2,
        precision="fp32",
    )
    nesterov = TrainConfig(
        device="cpu",
        precision="fp32",
        epochs=4,
        eval_every=1,
        optimizer="nesterov",
        momentum=0.9,
        lr=0.05,
        batch_size=100,
    )
    return {
        "adamw_onecycle_aug": RunConfig(model=dataclasses.replace(model, dropout=0.1), data=data, train=adamw),
        "nesterov_cosine": RunConfig(
            model=model, data=data, train=dataclasses.replace(nesterov, schedule="cosine", warmup_epochs=1)
        ),
    }


def golden_runs() -> dict[str, Any]:
    """Run every golden configuration on the CPU and return its exact results."""
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    out: dict[str, Any] = {"machine": machine(), "fullbatch": {}, "batched": [], "minibatch": {}, "final_fit": {}}
    for name, cfg in fullbatch_configs().items():
        out["fullbatch"][name] = _record(train(cfg))
    stopped = train(fullbatch_configs()["bn_momentum_per_pixel"], on_eval=_stop_at(14))
    out["fullbatch"]["stopped_by_callback"] = _record(stopped)
    members = batched_members()
    results = train_batched(members, on_eval=[None, _stop_at(10), None, None])
    out["batched"] = [_record(r) for r in results]
    for name, cfg in minibatch_configs().items():
        out["minibatch"][name] = _record(train(cfg))
    # The final-model path (study/commands/final.py): the minibatch loop's fit, model kept.
    for name, cfg in {"fullbatch_cfg": fullbatch_configs()["bn_momentum_per_pixel"]}.items():
        fitted = fit(cfg)
        out["final_fit"][name] = {**_record(fitted.result), "weights_sha256": _weights_digest(fitted.model)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help=f"overwrite {GOLDEN.name} (else print)")
    args = p.parse_args()
    from tests.mnist_fc.test_golden_runs import _strip_additions  # the file keeps the original format

    runs = _strip_additions(json.loads(json.dumps(golden_runs())))
    text = json.dumps(runs, indent=1, sort_keys=True)
    if args.write:
        GOLDEN.write_text(text + "\n")
        print(f"wrote {GOLDEN}")
    else:
        print(text)


if __name__ == "__main__":
    main()
