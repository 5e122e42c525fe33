"""Batched training must give each member the result it would get trained alone."""

import dataclasses
import math

import pytest
import torch

from mnist_fc.batched import _evaluate_members, batch_key, group_by_key, train_batched
from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mnist_fc.errors import ConfigError
from mnist_fc.normalize import normalizer_for
from mnist_fc.runstate import RunState
from mnist_fc.runtime import evaluate, to_device
from mnist_fc.trainer import train

# fp32 named: "auto" is decided by measurement (bf16 on some machines); these tests are about fp32 batching.
BASE = RunConfig(
    data=DataConfig(train_size=2000), train=TrainConfig(device="cpu", precision="fp32", epochs=20, eval_every=10)
)


def _member(h1: int, h2: int, *, lr: float, **model) -> RunConfig:
    return dataclasses.replace(
        BASE,
        model=ModelConfig(n_units_l1=h1, n_units_l2=h2, **model),
        train=dataclasses.replace(BASE.train, lr=lr),
    )


# Different widths, activations, BatchNorm, init and learning rates: all in one batch.
MEMBERS = [
    _member(100, 30, lr=0.1),
    _member(17, 9, lr=1.0, batchnorm=True),
    _member(64, 50, lr=0.3, activation="tanh", init_distribution="uniform", init_scaling="sqrt_fan_in"),
]


def test_batched_equals_alone(small_split):
    alone = [train(cfg, split=small_split) for cfg in MEMBERS]
    batched = train_batched(MEMBERS, split=small_split)
    for a, b in zip(alone, batched, strict=True):
        assert b.epochs == a.epochs == 20 and b.curves.eval_epochs == a.curves.eval_epochs
        assert b.curves.train_loss == pytest.approx(a.curves.train_loss, rel=1e-4, abs=1e-5)
        assert b.curves.train_accuracy == pytest.approx(a.curves.train_accuracy, abs=1e-3)
        assert b.curves.val_loss == pytest.approx(a.curves.val_loss, rel=1e-4, abs=1e-5)
        assert b.val_accuracy == pytest.approx(a.val_accuracy, abs=1e-3)
        assert b.test_accuracy == pytest.approx(a.test_accuracy, abs=1e-3)
        assert b.config == a.config
    # the members really differ from each other (a batch that trained one model k times would fail here)
    assert len({tuple(r.curves.train_loss) for r in batched}) == len(MEMBERS)


def test_member_leaves_batch_on_divergence_or_stop(small_split):
    blowup = _member(32, 16, lr=1e6, activation="relu", init_std=1.0)
    cfgs = [MEMBERS[0], blowup, MEMBERS[1]]
    seen: list[int] = []
    results = train_batched(
        cfgs, split=small_split, on_eval=[None, None, lambda epoch, m: seen.append(epoch) or epoch >= 10]
    )
    assert results[1].diverged and results[1].epochs < 20 and math.isnan(results[1].test_accuracy)
    # NaN logits argmax to class 0: their "accuracy" (the share of zeros) is no result
    assert math.isnan(results[1].train_accuracy)
    assert results[2].stopped_early and results[2].epochs == 10 and seen == [10]
    assert results[0].epochs == 20 and not results[0].diverged
    alone = train(MEMBERS[0], split=small_split)  # the survivor is unaffected by its neighbours
    assert results[0].curves.train_loss == pytest.approx(alone.curves.train_loss, rel=1e-4, abs=1e-5)


def test_grouping_rules():
    other_data = dataclasses.replace(MEMBERS[0], data=dataclasses.replace(BASE.data, train_size=1000))
    dropout = dataclasses.replace(MEMBERS[0], model=ModelConfig(dropout=0.2))
    assert batch_key(dropout) is None  # dropout's RNG stream depends on the batch: trains alone
    minibatch = dataclasses.replace(MEMBERS[0], train=dataclasses.replace(BASE.train, batch_size=128))
    assert batch_key(minibatch) is None  # the minibatch loop is a different trainer
    assert group_by_key([MEMBERS[0], other_data, MEMBERS[1], dropout]) == [[0, 2], [1], [3]]
    with pytest.raises(ConfigError, match="configs 0 and 1 differ in data"):
        train_batched([MEMBERS[0], other_data])
    with pytest.raises(ConfigError, match="config 1 cannot train in a batch"):
        train_batched([MEMBERS[0], dropout])


def test_stop_margin_is_per_member(small_split):
    margin = dataclasses.replace(MEMBERS[1], train=dataclasses.replace(MEMBERS[1].train, stop_margin=2))
    cfgs = [MEMBERS[0], margin]
    assert batch_key(MEMBERS[0]) == batch_key(margin)  # a member's margin does not split the batch
    batched = train_batched(cfgs, split=small_split)
    alone = train(margin, split=small_split)
    assert batched[1].stop_reason == alone.stop_reason == "plateau_margin" and batched[1].epochs == alone.epochs < 20
    assert batched[1].curves.train_loss == pytest.approx(alone.curves.train_loss, rel=1e-4, abs=1e-5)
    assert batched[0].epochs == 20 and batched[0].stop_reason == "epochs"


def test_members_with_different_normalisations_share_one_input(small_split):
    """fp32: each member folds its (x - s) / c into its first layer; results equal training alone."""
    norms = ["article", "per_pixel", "global", "unit"]
    cfgs = [
        dataclasses.replace(m, data=dataclasses.replace(BASE.data, normalization=n))
        for m, n in zip([*MEMBERS, MEMBERS[0]], norms, strict=True)
    ]
    assert len(group_by_key(cfgs)) == 1  # one batch despite four normalisations
    bf16 = [dataclasses.replace(c, train=dataclasses.replace(c.train, precision="bf16")) for c in cfgs[:2]]
    assert len(group_by_key(bf16)) == 2  # bf16 keeps the normalisation in the key
    batched = train_batched(cfgs, split=small_split)
    for cfg, b in zip(cfgs, batched, strict=True):
        a = train(cfg, split=small_split)
        assert b.curves.train_loss == pytest.approx(a.curves.train_loss, rel=1e-4, abs=1e-5)
        assert b.curves.val_loss == pytest.approx(a.curves.val_loss, rel=1e-4, abs=1e-5)
        assert b.val_accuracy == pytest.approx(a.val_accuracy, abs=1e-3)
        assert b.test_accuracy == pytest.approx(a.test_accuracy, abs=1e-3)
        assert b.config == a.config
    assert len({tuple(r.curves.train_loss) for r in batched}) == len(cfgs)


def test_one_pass_validation_equals_each_member_evaluated_alone(small_split):
    """_evaluate_members (all first layers in one GEMM per chunk, one host sync) = runtime.evaluate per
    member: eval mode (BatchNorm uses running statistics), chunked like evaluate, train mode restored."""
    data = to_device(small_split, normalizer_for(BASE.data, small_split.x_train), torch.device("cpu"), torch.float32)
    runs = [RunState(cfg, torch.device("cpu"), None) for cfg in MEMBERS]
    for run in runs:  # a few steps, so BatchNorm's running statistics differ from its batch statistics
        for _ in range(3):
            loss = torch.nn.functional.cross_entropy(run.model(data.x_train), data.y_train)
            run.opt.zero_grad()
            loss.backward()
            run.opt.step()
    firsts = [run.model.linears()[0] for run in runs]
    rests = [run.model.net[1:] for run in runs]
    members = [0, 1, 2]
    # chunk 3000 over 10,000 validation images: 4 chunks, the last one short
    got = _evaluate_members(runs, firsts, rests, members, data.x_val, data.y_val, "fp32", chunk=3000)
    for i in members:
        assert runs[i].model.training  # restored
        want = evaluate(runs[i].model, data.x_val, data.y_val, precision="fp32")
        assert got[i][0] == pytest.approx(want[0], rel=1e-5)
        assert got[i][1] == pytest.approx(want[1], abs=2e-4)  # an argmax tie may flip on a rounding difference
    assert len({got[i] for i in members}) == len(members)
    # a subset of members (the others left the batch) gets the same numbers
    assert _evaluate_members(runs, firsts, rests, [2], data.x_val, data.y_val, "fp32")[2] == pytest.approx(got[2])
