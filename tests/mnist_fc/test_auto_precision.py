"""`precision="auto"` in the trainer follows the probe: outcomes forced by seeding the probe's cache
(MNIST_STUDY_CACHE_DIR) with figures from an injected timer, so no test depends on wall time."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mnist_fc import precision as P
from mnist_fc.batched import batch_key, group_by_key, train_batched
from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mnist_fc.data import load_split
from mnist_fc.device import resolve_precision
from mnist_fc.trainer import train

CPU = torch.device("cpu")
N = 1000
AUTO = RunConfig(data=DataConfig(train_size=N), train=TrainConfig(device="cpu", epochs=6, eval_every=3))


@pytest.fixture(scope="module")
def split():
    return load_split(AUTO.data, seed=0)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(P.CACHE_ENV, str(tmp_path))
    return tmp_path


def seed_cache(rows: int, width: int, *, fp32: float, bf16: float) -> None:
    """Record probe figures for (rows x 784 x width) as if measured: the trainer then reads them."""
    P.choose_precision(
        CPU, P.first_layer_shapes(rows, 784, width), allow_bf16=True, timer=lambda d, *_: fp32 if d == "fp32" else bf16
    )


def _with(cfg: RunConfig, **train) -> RunConfig:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))


def test_cpu_has_no_fixed_auto_rule():
    assert resolve_precision("auto", CPU) == "auto"  # decided by measurement, not "fp32 on CPU"
    assert resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("fp16", CPU)


@pytest.mark.parametrize(("fp32", "bf16", "expected"), [(3.0, 1.0, "bf16"), (1.0, 1.4, "fp32")])
def test_auto_follows_the_probe_and_equals_the_named_precision(cache, split, fp32, bf16, expected):
    seed_cache(N, 100, fp32=fp32, bf16=bf16)
    r = train(AUTO, split=split)
    assert r.precision == expected
    probe = r.precision_probe
    assert probe is not None and probe["precision"] == expected and probe["cache_hit"]
    assert probe["speedup"] == pytest.approx(fp32 / bf16)
    assert [(s["rows"], s["in_features"], s["out_features"]) for s in probe["shapes"]] == [(N, 784, 100)]
    assert r.summary()["precision_probe"] == probe  # in `train --json` and the trial's attrs
    named = train(_with(AUTO, precision=expected), split=split)
    assert named.precision_probe is None
    assert r.curves.train_loss == named.curves.train_loss  # auto really trained in the chosen precision


def test_allow_bf16_auto_false_forces_fp32(cache, split):
    seed_cache(N, 100, fp32=3.0, bf16=1.0)
    r = train(_with(AUTO, allow_bf16_auto=False), split=split)
    assert r.precision == "fp32" and "not allowed" in r.precision_probe["reason"]
    assert train(_with(AUTO, allow_bf16_auto=False, precision="bf16"), split=split).precision == "bf16"


def test_minibatch_probes_its_batch_rows(cache, split):
    seed_cache(128, 100, fp32=3.0, bf16=1.0)  # the minibatch loop's GEMM: 128 rows, not 1000
    seed_cache(N, 100, fp32=1.0, bf16=3.0)
    r = train(_with(AUTO, batch_size=128, epochs=1, eval_every=1), split=split)
    assert r.precision == "bf16" and r.precision_probe["shapes"][0]["rows"] == 128


def test_a_batch_decides_once_for_its_concatenated_first_layer(cache, split):
    members = [dataclasses.replace(AUTO, model=ModelConfig(n_units_l1=h)) for h in (100, 40)]
    seed_cache(N, 140, fp32=3.0, bf16=1.0)  # the batch's one GEMM: bf16 faster
    for h in (100, 40):
        seed_cache(N, h, fp32=1.0, bf16=3.0)  # each member alone: fp32 faster
    results = train_batched(members, split=split)
    assert {r.precision for r in results} == {"bf16"}
    assert all(r.precision_probe["shapes"][0]["out_features"] == 140 for r in results)
    alone = train(_with(members[1], precision="bf16"), split=split)  # equal to alone at the batch's choice
    assert results[1].curves.train_loss == pytest.approx(alone.curves.train_loss, rel=1e-3, abs=1e-4)
    assert train(members[1], split=split).precision == "fp32"  # alone, auto measures its own shape


def test_batch_key_with_auto():
    norm = dataclasses.replace(AUTO, data=dataclasses.replace(AUTO.data, normalization="per_pixel"))
    no_bf16 = _with(AUTO, allow_bf16_auto=False)
    # auto may become bf16, so the normalisation stays in the key; members that may decide differently split
    assert group_by_key([AUTO, norm, no_bf16, AUTO]) == [[0, 3], [1], [2]]
    fp32 = [_with(c, precision="fp32") for c in (AUTO, norm, no_bf16)]
    assert len({batch_key(c) for c in fp32}) == 1  # named fp32: folded normalisation, allow flag irrelevant
