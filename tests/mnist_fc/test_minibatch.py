"""The minibatch loop: dispatch, falling loss, schedules, optimisers and config validation."""

import dataclasses

import pytest
import torch

from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig, validate
from mnist_fc.minibatch import fit
from mnist_fc.optim import build_optimizer, lr_factor
from mnist_fc.trainer import train

SMALL = ModelConfig(
    n_units_l1=64, n_units_l2=32, activation="relu", init_mean=0, init_std=1.4, init_scaling="sqrt_fan_in"
)


def _cfg(**train_kw) -> RunConfig:
    t = dict(epochs=5, lr=1e-3, optimizer="adamw", batch_size=100, eval_every=1, device="cpu")
    t.update(train_kw)
    return RunConfig(model=SMALL, data=DataConfig(normalization="global", train_size=2000), train=TrainConfig(**t))


def test_defaults_stay_on_the_article_loop():
    assert not TrainConfig().uses_minibatch_loop()
    assert TrainConfig(batch_size=32).uses_minibatch_loop()
    assert TrainConfig(optimizer="adam").uses_minibatch_loop()
    assert TrainConfig(aug_shift=1).uses_minibatch_loop()


@pytest.mark.parametrize(
    "kw",
    [
        dict(optimizer="adamw", schedule="onecycle", label_smoothing=0.1),
        dict(optimizer="nesterov", momentum=0.9, lr=0.05, schedule="cosine", warmup_epochs=1),
        dict(optimizer="sgd", lr=0.1, batch_size=None),  # full batch through the same loop
    ],
)
def test_loss_falls_and_learns(small_split, kw):
    r = train(_cfg(**kw), split=small_split)
    assert not r.diverged and r.epochs == 5
    assert r.curves.train_loss[-1] < r.curves.train_loss[0]
    assert len(r.curves.val_accuracy) == 5
    chance = 0.2
    assert r.val_accuracy > chance and 0 <= r.test_accuracy <= 1


def test_minibatch_beats_full_batch_per_epoch(small_split):
    mini = train(_cfg(epochs=3), split=small_split)
    full = train(_cfg(epochs=3, batch_size=None), split=small_split)
    assert mini.val_accuracy > full.val_accuracy + 0.1


def test_repeatable_with_seed(small_split):
    a = train(_cfg(epochs=2, aug_shift=2), split=small_split)
    b = train(_cfg(epochs=2, aug_shift=2), split=small_split)
    assert a.curves.train_loss == b.curves.train_loss


def test_divergence_is_reported(small_split):
    r = train(_cfg(optimizer="sgd", lr=1e6, epochs=3), split=small_split)
    assert r.diverged and r.val_accuracy != r.val_accuracy


def test_fit_returns_model_in_eval_mode(small_split):
    f = fit(_cfg(epochs=1), split=small_split)
    assert not f.model.training and f.normalizer.kind == "global"


def test_bf16_runs(small_split):
    r = train(_cfg(epochs=2, precision="bf16"), split=small_split)
    assert r.precision == "bf16" and not r.diverged and r.curves.train_loss[-1] < r.curves.train_loss[0]


def test_schedules_shape():
    total, warmup = 100, 10
    cos = [lr_factor(s, total=total, warmup=warmup, schedule="cosine") for s in range(total)]
    assert cos[0] == pytest.approx(0.1) and cos[warmup - 1] == pytest.approx(1.0) and cos[-1] < 0.01
    one = [lr_factor(s, total=total, warmup=0, schedule="onecycle") for s in range(total)]
    peak = max(range(total), key=one.__getitem__)
    assert one[0] == pytest.approx(1 / 25) and 25 <= peak <= 35 and one[-1] < 1e-3
    assert lr_factor(50, total=total, warmup=0, schedule="none") == 1.0


def test_optimizers_are_the_named_ones():
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(build_optimizer(p, TrainConfig(optimizer="adamw")), torch.optim.AdamW)
    nest = build_optimizer(p, TrainConfig(optimizer="nesterov", momentum=0.9))
    assert isinstance(nest, torch.optim.SGD) and nest.defaults["nesterov"]


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(optimizer="lbfgs"), "unknown optimizer"),
        (dict(optimizer="nesterov"), "momentum > 0"),
        (dict(batch_size=0), "batch size"),
        (dict(schedule="step"), "unknown schedule"),
        (dict(label_smoothing=1.0), "label smoothing"),
        (dict(aug_rotate=-1), "augmentation"),
        (dict(aug_scale=1.0), "scale"),
    ],
)
def test_bad_values_rejected(kw, msg):
    with pytest.raises(ValueError, match=msg):
        validate(dataclasses.replace(RunConfig(), train=TrainConfig(**kw)))


def test_include_validation_trains_on_60000():
    from mnist_fc.data import load_split

    s = load_split(DataConfig(include_validation=True), seed=0)
    assert len(s.x_train) == 60_000 and len(s.x_val) == 10_000
    assert (s.x_train[50_000:] == s.x_val).all()
