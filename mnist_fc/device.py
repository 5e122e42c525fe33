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
    """ "auto" -> bf16 on CUDA GPUs that support it; fp32 on CPU.

    On CPU, whether bf16 beats fp32 is a property of the machine (it was slower on one CPU
    without AMX and faster on others; bench/speed.py measures it per machine), so bf16 on CPU
    is opt-in with --precision bf16.
    """
    if name != "auto":
        if name not in ("fp32", "bf16"):
            raise ConfigError(f"unknown precision {name!r} (choose from auto, fp32, bf16)")
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"
