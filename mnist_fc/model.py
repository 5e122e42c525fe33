"""The fully connected network: a pure nn.Module built from a ModelConfig."""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from mnist_fc.config import N_CLASSES, N_PIXELS, ModelConfig

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def init_weight_(w: torch.Tensor, cfg: ModelConfig, *, generator: torch.Generator | None = None) -> None:
    """Draw `w` from the configured distribution (mean, std), then scale it by `init_scale(cfg, fan_in)`.

    "uniform" means U(mean - sqrt(3) std, mean + sqrt(3) std): same mean and std as the normal, so
    the article's all-positive U(0, a) is uniform with mean a/2 and std a/sqrt(12). Scaling multiplies
    every drawn weight (so both mean and std): 1/sqrt(fan_in) keeps the spread of w.x independent of
    the layer width; 1/fan_in (the article's "divide by the number of units") shrinks it with the width.
    """
    with torch.no_grad():
        if cfg.init_distribution == "normal":
            w.normal_(cfg.init_mean, cfg.init_std, generator=generator)
        else:
            half = math.sqrt(3.0) * cfg.init_std
            w.uniform_(cfg.init_mean - half, cfg.init_mean + half, generator=generator)
        scale = init_scale(cfg.init_scaling, w.shape[1])
        if scale != 1.0:
            w.mul_(scale)


def init_scale(scaling: str, fan_in: int) -> float:
    """The factor every drawn weight of a layer with `fan_in` inputs is multiplied by."""
    if scaling == "none":
        return 1.0
    if scaling == "sqrt_fan_in":
        return 1.0 / math.sqrt(fan_in)
    if scaling == "fan_in":
        return 1.0 / fan_in
    raise ValueError(f"unknown init scaling {scaling!r}")


class FCNet(nn.Module):
    """N_PIXELS -> n_units_l1 -> n_units_l2 -> N_CLASSES, activation after each hidden layer.

    Optional BatchNorm1d sits between each hidden Linear and its activation; biases start at 0.
    """

    def __init__(self, cfg: ModelConfig, *, n_inputs: int = N_PIXELS, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.cfg = cfg
        act = _ACTIVATIONS[cfg.activation]
        layers: list[nn.Module] = []
        widths = [n_inputs, cfg.n_units_l1, cfg.n_units_l2]
        for fan_in, fan_out in itertools.pairwise(widths):
            layers.append(nn.Linear(fan_in, fan_out))
            if cfg.batchnorm:
                layers.append(nn.BatchNorm1d(fan_out))
            layers.append(act())
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
        layers.append(nn.Linear(cfg.n_units_l2, n_classes))
        self.net = nn.Sequential(*layers)

    def linears(self) -> list[nn.Linear]:
        return [m for m in self.net if isinstance(m, nn.Linear)]

    def reset_parameters(self, *, generator: torch.Generator | None = None) -> None:
        for lin in self.linears():
            init_weight_(lin.weight, self.cfg, generator=generator)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def hidden_preactivations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Inputs to each hidden activation (after BN when present): used to measure saturation."""
        out, h = [], x
        for m in self.net:
            if isinstance(m, tuple(_ACTIVATIONS.values())):
                out.append(h)
            h = m(h)
        return out


def build_model(cfg: ModelConfig, *, seed: int = 0) -> FCNet:
    """A freshly initialised model; the same seed gives the same weights on any device."""
    model = FCNet(cfg)
    model.reset_parameters(generator=torch.Generator().manual_seed(seed))
    return model
