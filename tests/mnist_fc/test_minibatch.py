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
        (dict(aug_clean_epochs=3), "need augmentation"),
        (dict(aug_shift=1, epochs=2, aug_clean_epochs=3), "clean epochs"),
        (dict(aug_shift=1, aug_clean_epochs=-1), "clean epochs"),
        # flags that would be ignored without a word
        (dict(optimizer="adam", momentum=0.9), "momentum applies to sgd and nesterov"),
        (dict(optimizer="adamw", momentum=0.5), "momentum applies to sgd and nesterov"),
        (dict(schedule="none", warmup_epochs=2), "warm-up needs a schedule"),
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


# --- weight averaging (TrainConfig.ema_decay) ---------------------------------------------------


def test_ema_decay_routes_to_the_minibatch_loop_and_is_validated():
    assert TrainConfig(ema_decay=0.999).uses_minibatch_loop() and not TrainConfig(ema_decay=0.0).uses_minibatch_loop()
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"EMA decay|ema_decay must be a finite"):
            validate(dataclasses.replace(RunConfig(), train=TrainConfig(ema_decay=bad)))


def test_weight_average_follows_the_formula_by_hand():
    """avg = live at the first step, then avg <- d * avg + (1 - d) * live; integer buffers copied."""
    from mnist_fc.minibatch import WeightAverage
    from mnist_fc.model import FCNet

    net = FCNet(ModelConfig(n_units_l1=3, n_units_l2=2, batchnorm=True))
    ema = WeightAverage(net, 0.75)
    expected = None
    for step, value in enumerate([1.0, 3.0, 5.0, -2.0]):  # exact in binary: 1, 1.5, 2.375, 1.28125
        with torch.no_grad():
            for t in net.state_dict().values():
                t.fill_(value if t.is_floating_point() else step + 7)
        ema.update()
        expected = value if expected is None else 0.75 * expected + 0.25 * value
        for k, t in ema.model.state_dict().items():
            want = torch.full_like(t, expected if t.is_floating_point() else step + 7)
            assert torch.equal(t, want), (step, k)  # weights, biases and BatchNorm running stats alike
    assert expected == 1.28125 and ema.steps == 4 and not ema.model.training


def test_ema_model_is_the_average_of_the_step_weights(small_split):
    """One full batch per epoch, so the steps' weights are what runs of 1 and 2 epochs return:
    the 2-epoch EMA model must be d * w1 + (1 - d) * w2, and training itself must not change."""
    model = ModelConfig(n_units_l1=16, n_units_l2=8, activation="relu", batchnorm=True, init_mean=0, init_std=1.4)

    def run(epochs: int, ema: float):
        t = TrainConfig(epochs=epochs, lr=1e-2, optimizer="adamw", eval_every=1, device="cpu", precision="fp32")
        cfg = RunConfig(
            model=model, data=DataConfig(normalization="global"), train=dataclasses.replace(t, ema_decay=ema)
        )
        return fit(cfg, split=small_split)

    d = 0.6
    w1, w2, avg = run(1, 0.0), run(2, 0.0), run(2, d)
    s1, s2, sa = w1.model.state_dict(), w2.model.state_dict(), avg.model.state_dict()
    for k in sa:
        if sa[k].is_floating_point():  # weights and BatchNorm statistics
            torch.testing.assert_close(sa[k], d * s1[k] + (1 - d) * s2[k], rtol=1e-6, atol=1e-7)
        else:
            assert torch.equal(sa[k], s2[k])  # the batch counter
    assert not torch.equal(sa["net.0.weight"], s2["net.0.weight"])  # the average is not the last weights
    assert avg.result.curves.train_loss == w2.result.curves.train_loss  # the live weights trained alike
    # Validation and test metrics are the average's, not the live weights'.
    assert avg.result.curves.val_loss[0] == w1.result.curves.val_loss[0]  # after step 1 the average is w1
    assert avg.result.val_loss != w2.result.val_loss
    from mnist_fc.runtime import evaluate

    x_test = torch.from_numpy(avg.normalizer(small_split.x_test)).float()
    _, acc = evaluate(avg.model, x_test, torch.tensor(small_split.y_test), precision="fp32")
    assert acc == pytest.approx(avg.result.test_accuracy, abs=2e-4)  # the returned model is the one tested


def test_clean_epochs_switch_augmentation_off_for_the_last_epochs(small_split):
    """The first epochs are exactly the augmented run's; all-clean is exactly the unaugmented run."""
    aug = dict(epochs=4, aug_shift=2, aug_rotate=10)
    augmented = train(_cfg(**aug), split=small_split)
    tail = train(_cfg(**aug, aug_clean_epochs=2), split=small_split)
    all_clean = train(_cfg(**aug, aug_clean_epochs=4), split=small_split)
    plain = train(_cfg(epochs=4), split=small_split)
    assert tail.curves.train_loss[:2] == augmented.curves.train_loss[:2]
    assert tail.curves.train_loss[2:] != augmented.curves.train_loss[2:]
    assert all_clean.curves.train_loss == plain.curves.train_loss
    assert all_clean.curves.val_accuracy == plain.curves.val_accuracy
    # clean images are easier to fit than fresh warps: the switch shows in the training loss
    assert tail.curves.train_loss[2] < augmented.curves.train_loss[2]


@pytest.mark.parametrize(("n", "batch_size"), [(10, 1), (10, 3), (500, 499)])
def test_every_image_is_trained_on_without_batchnorm(n, batch_size):
    """A trailing batch of one image was dropped even without BatchNorm: batch size 1 trained on 9 of 10
    images per epoch, and n-1 left a random image out of every epoch. Only BatchNorm needs two images."""
    from mnist_fc.minibatch import _batches

    perm = torch.randperm(n)
    kept = torch.cat(_batches(perm, batch_size, batchnorm=False))
    assert sorted(kept.tolist()) == list(range(n))
    with_bn = _batches(perm, batch_size, batchnorm=True) if batch_size > 1 else None
    if with_bn is not None:
        assert all(len(b) >= 2 for b in with_bn)


def test_run_settings_restore_the_tf32_flags():
    """Full-batch runs switched TF32 on for the rest of the process; a later minibatch run on CUDA then got it
    or not depending on what ran before. run_settings sets it for CUDA runs and restores it."""
    from mnist_fc.runtime import run_settings

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with run_settings(deterministic=False, device=torch.device("cuda"), flush_denormals=False):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    with run_settings(deterministic=False, device=torch.device("cpu"), flush_denormals=False):
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
