import dataclasses
import math

from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig, article_preset
from mnist_fc.trainer import train


def _cfg(**train):
    return RunConfig(
        model=ModelConfig(n_units_l1=64, n_units_l2=32, batchnorm=True),
        data=DataConfig(normalization="per_pixel"),
        train=TrainConfig(device="cpu", **{"epochs": 40, "lr": 1.0, "eval_every": 10, **train}),
    )


def test_loss_falls_on_small_subset(small_split):
    r = train(_cfg(), split=small_split)
    c = r.curves
    assert len(c.train_loss) == 40 and c.eval_epochs == [10, 20, 30, 40]
    assert c.train_loss[-1] < 0.5 * c.train_loss[0]
    assert r.val_accuracy > 0.7 and not r.diverged
    assert 0 <= r.test_accuracy <= 1 and math.isfinite(r.seconds)


def test_absurd_lr_is_flagged_diverged(small_split):
    cfg = RunConfig(
        model=ModelConfig(activation="relu", init_std=1.0),
        data=DataConfig(normalization="raw"),
        train=TrainConfig(device="cpu", epochs=200, lr=1e6, eval_every=5),
    )
    r = train(cfg, split=small_split)
    assert r.diverged
    assert r.epochs < 200  # stopped at the next check, not run to the end
    assert math.isnan(r.test_accuracy)


def test_article_preset_starts_on_the_ln10_plateau(small_split):
    """With N(0.01, 0.1) init and (x-127.5)/255 the article's loss sits near ln 10 = 2.30 at first."""
    cfg = article_preset(epochs=30, device="cpu", eval_every=10)
    r = train(cfg, split=small_split)
    assert all(abs(v - math.log(10)) < 0.06 for v in r.curves.train_loss)
    assert max(r.curves.train_accuracy) < 0.3  # no real learning yet: the plateau


def test_deterministic_on_cpu(small_split):
    a = train(_cfg(epochs=20, seed=5), split=small_split)
    b = train(_cfg(epochs=20, seed=5), split=small_split)
    c = train(_cfg(epochs=20, seed=6), split=small_split)
    assert a.curves.train_loss == b.curves.train_loss and a.val_accuracy == b.val_accuracy
    assert a.curves.train_loss != c.curves.train_loss


def test_on_eval_can_stop_early(small_split):
    seen = []
    r = train(_cfg(), split=small_split, on_eval=lambda ep, m: seen.append(ep) or ep >= 20)
    assert seen == [10, 20] and r.stopped_early and r.epochs == 20


def test_bf16_runs_and_learns(small_split):
    r = train(dataclasses.replace(_cfg(precision="bf16")), split=small_split)
    assert r.precision == "bf16" and r.val_accuracy > 0.7
