import math

import pytest
import torch
from torch import nn

from mnist_fc.config import ModelConfig
from mnist_fc.model import build_model


def test_shapes_and_exactly_two_hidden_layers():
    m = build_model(ModelConfig(n_units_l1=64, n_units_l2=32))
    assert m(torch.zeros(5, 784)).shape == (5, 10)
    assert [(lin.in_features, lin.out_features) for lin in m.linears()] == [(784, 64), (64, 32), (32, 10)]
    assert all(torch.count_nonzero(lin.bias) == 0 for lin in m.linears())


def test_batchnorm_and_dropout_optional():
    plain = build_model(ModelConfig())
    assert not any(isinstance(x, (nn.BatchNorm1d, nn.Dropout)) for x in plain.modules())
    bn = build_model(ModelConfig(batchnorm=True, dropout=0.2))
    assert sum(isinstance(x, nn.BatchNorm1d) for x in bn.modules()) == 2
    assert sum(isinstance(x, nn.Dropout) for x in bn.modules()) == 2


@pytest.mark.parametrize("dist", ["normal", "uniform"])
def test_init_mean_and_std(dist):
    m = build_model(ModelConfig(n_units_l1=512, init_distribution=dist, init_mean=0.05, init_std=0.2), seed=3)
    w = m.linears()[0].weight
    assert abs(w.mean().item() - 0.05) < 0.003
    assert abs(w.std().item() - 0.2) < 0.003
    if dist == "uniform":
        half = math.sqrt(3) * 0.2
        assert w.min().item() >= 0.05 - half - 1e-6 and w.max().item() <= 0.05 + half + 1e-6


def test_fan_in_scaling_divides_by_sqrt_fan_in():
    m = build_model(ModelConfig(n_units_l1=400, init_mean=0.0, init_std=1.0, fan_in_scaling=True), seed=0)
    w1, w2 = m.linears()[0].weight, m.linears()[1].weight
    assert abs(w1.std().item() - 1 / math.sqrt(784)) < 0.002
    assert abs(w2.std().item() - 1 / math.sqrt(400)) < 0.003


def test_same_seed_same_weights():
    a, b = build_model(ModelConfig(), seed=7), build_model(ModelConfig(), seed=7)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_preactivations_are_inputs_to_activations():
    m = build_model(ModelConfig(n_units_l1=20, n_units_l2=10))
    x = torch.randn(4, 784)
    pre = m.hidden_preactivations(x)
    assert [p.shape for p in pre] == [(4, 20), (4, 10)]
    assert torch.allclose(pre[0], m.linears()[0](x))
