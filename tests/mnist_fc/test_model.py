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
    m = build_model(ModelConfig(n_units_l1=400, init_mean=0.0, init_std=1.0, init_scaling="sqrt_fan_in"), seed=0)
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


def test_fan_in_init_scaling_divides_by_fan_in():
    """The article's rule: each layer's drawn weights divided by its number of input units."""
    m = build_model(ModelConfig(n_units_l1=400, init_mean=0.5, init_std=1.0, init_scaling="fan_in"), seed=0)
    w1, w2, w3 = (lin.weight for lin in m.linears())
    assert abs(w1.mean().item() - 0.5 / 784) < 0.05 / 784 and abs(w1.std().item() - 1 / 784) < 0.02 / 784
    assert abs(w2.std().item() - 1 / 400) < 0.05 / 400
    assert abs(w3.std().item() - 1 / 30) < 0.2 / 30  # 300 weights only


def test_init_scalings_are_the_same_draw_rescaled():
    cfgs = {s: ModelConfig(init_scaling=s) for s in ("none", "sqrt_fan_in", "fan_in")}
    w = {s: build_model(c, seed=5).linears()[1].weight for s, c in cfgs.items()}
    assert torch.allclose(w["sqrt_fan_in"], w["none"] / 10.0) and torch.allclose(w["fan_in"], w["none"] / 100.0)


def test_all_positive_uniform_is_uniform_with_mean_half_a_and_std_a_over_sqrt12():
    """U(0, a) as a design level: init_distribution uniform, mean a/2, std a/sqrt(12)."""
    a = 0.2
    m = build_model(ModelConfig(init_distribution="uniform", init_mean=a / 2, init_std=a / math.sqrt(12)), seed=1)
    w = m.linears()[0].weight
    assert w.min().item() >= -1e-7 and w.max().item() <= a + 1e-7
    assert w.min().item() < 0.001 and w.max().item() > a - 0.001  # fills the whole interval


def test_std_zero_makes_every_weight_of_a_layer_equal():
    m = build_model(ModelConfig(init_mean=0.01, init_std=0.0), seed=2)
    for lin in m.linears():
        assert torch.all(lin.weight == 0.01)


def test_old_fan_in_scaling_bool_loads_from_stored_configs():
    from mnist_fc.config import RunConfig

    on = RunConfig.from_dict({"model": {"fan_in_scaling": True, "n_units_l1": 50}})
    off = RunConfig.from_dict({"model": {"fan_in_scaling": False}})
    assert on.model.init_scaling == "sqrt_fan_in" and on.model.n_units_l1 == 50
    assert off.model.init_scaling == "none"
    assert RunConfig.from_dict(on.to_dict()) == on


def test_unknown_init_scaling_is_rejected():
    from mnist_fc.config import RunConfig, validate

    with pytest.raises(ValueError, match="unknown init scaling"):
        validate(RunConfig(model=ModelConfig(init_scaling="fan_out")))
