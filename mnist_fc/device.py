"""Device and precision resolution: the same code path for CPU and CUDA."""

from __future__ import annotations

import torch

from mnist_fc.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; "cuda" without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r} (choose from auto, cpu, cuda)")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """An explicit precision, checked; "auto" stays "auto" (mnist_fc.runtime decides it by measurement).

    Only where no measurement is needed is "auto" answered here: a CUDA GPU without bf16 runs fp32.
    """
    if name not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"unknown precision {name!r} (choose from auto, fp32, bf16)")
    if name == "auto" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "fp32"
    return name
