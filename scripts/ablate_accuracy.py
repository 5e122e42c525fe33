"""One-factor ablations of a study's best configuration, scored on the VALIDATION split only.

Usage:
  .venv/bin/python scripts/ablate_accuracy.py --storage sqlite:///studies/accuracy.db --study-name accuracy \
      [--seeds 0,1] [--epochs N] [--train-size N]

Each variant changes one thing of the best trial's config (same data, epochs and seeds) and is
trained once per seed; the table shows mean validation accuracy and the change from the best
config. The test set is never looked at here.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics

import optuna

from mnist_fc.config import RunConfig
from mnist_fc.data import load_split
from mnist_fc.trainer import train
from study.report_text import best_record


def variants(cfg: RunConfig) -> dict[str, RunConfig]:
    m, t = cfg.model, cfg.train
    no_aug = dict(aug_shift=0.0, aug_rotate=0.0, aug_scale=0.0, aug_shear=0.0, aug_elastic_alpha=0.0)

    def tr(**kw) -> RunConfig:
        return dataclasses.replace(cfg, train=dataclasses.replace(t, **kw))

    def mo(**kw) -> RunConfig:
        return dataclasses.replace(cfg, model=dataclasses.replace(m, **kw))

    return {
        "best config (study)": cfg,
        "no augmentation": tr(**no_aug),
        "+ elastic distortions (alpha 34, sigma 4)": tr(aug_elastic_alpha=34.0, aug_elastic_sigma=4.0),
        "no BatchNorm": mo(batchnorm=False),
        "no dropout": mo(dropout=0.0),
        "ReLU instead of " + m.activation: mo(activation="relu"),
        "sigmoid instead of " + m.activation: mo(activation="sigmoid", init_std=1.0),
        "no label smoothing": tr(label_smoothing=0.0),
        "no weight decay": tr(weight_decay=0.0),
        "constant lr (no schedule)": tr(schedule="none", warmup_epochs=0.0),
        "Nesterov SGD lr 0.1 instead of " + t.optimizer: tr(optimizer="nesterov", lr=0.1, momentum=0.9),
        "full batch (same optimiser and lr)": tr(batch_size=None),
        f"1024-1024 instead of {m.n_units_l1}-{m.n_units_l2}": mo(n_units_l1=1024, n_units_l2=1024),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--storage", default="sqlite:///studies/accuracy.db")
    p.add_argument("--study-name", default="accuracy")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--epochs", type=int, help="override the trial's epochs")
    p.add_argument("--train-size", type=int, help="override the trial's train size")
    args = p.parse_args()
    study = optuna.load_study(study_name=args.study_name, storage=args.storage)
    base = RunConfig.from_dict(best_record(study)["config"])
    data = dataclasses.replace(base.data, **({"train_size": args.train_size} if args.train_size else {}))
    base = dataclasses.replace(base, data=data, train=base.train.for_epochs(args.epochs or base.train.epochs))
    seeds = [int(s) for s in args.seeds.split(",")]
    splits = {s: load_split(base.data, seed=s) for s in seeds}
    print(f"train size {len(splits[seeds[0]].x_train)}, {base.train.epochs} epochs, seeds {seeds}; validation accuracy")
    ref = None
    for name, cfg in variants(base).items():
        accs, secs = [], []
        for s in seeds:
            r = train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=s)), split=splits[s])
            accs.append(r.val_accuracy if not r.diverged else math.nan)
            secs.append(r.seconds)
        mean = statistics.fmean(accs)
        ref = mean if ref is None else ref
        print(f"{name:<48} {mean:.4f}  {mean - ref:+.4f}  ({statistics.fmean(secs):.1f} s/run)", flush=True)


if __name__ == "__main__":
    main()
