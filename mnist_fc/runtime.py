"""What every training loop needs around the model: device, precision, data on the device, evaluation,
and the process-wide torch settings of one run.

Loops (`fullbatch`, `minibatch`, `batched`) import from here; nothing here imports a loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnist_fc.config import N_PIXELS, RunConfig, validate
from mnist_fc.data import Split, check_split, load_split
from mnist_fc.device import resolve_device, resolve_precision
from mnist_fc.errors import DataError
from mnist_fc.normalize import Normalizer, normalizer_for
from mnist_fc.precision import choose_precision, first_layer_shapes

EVAL_CHUNK = 16384  # images per evaluation forward pass: bounds memory on big splits


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype inputs are stored in on the device (cast once, not every epoch)."""
    return torch.bfloat16 if precision == "bf16" else torch.float32


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for the forward pass, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class DeviceData:
    """Normalised tensors on the device, inputs already in the compute dtype (cast once)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    normalizer: Normalizer


def to_device(split: Split, normalizer: Normalizer, device: torch.device, dtype: torch.dtype) -> DeviceData:
    def put(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(normalizer(x)).to(device=device, dtype=dtype)

    def lab(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(y, dtype=np.int64)).to(device)

    return DeviceData(
        put(split.x_train),
        lab(split.y_train),
        put(split.x_val),
        lab(split.y_val),
        put(split.x_test),
        lab(split.y_test),
        normalizer,
    )


@dataclass
class Prepared:
    """A validated run's resolved device and precision, its host split and its data on the device."""

    device: torch.device
    precision: str
    split: Split
    data: DeviceData
    probe: dict[str, Any] | None = None  # with precision "auto": the probe's PrecisionChoice.summary()


def decide_precision(
    cfg: RunConfig, device: torch.device, *, rows: int, widths: Sequence[int] | None = None
) -> tuple[str, dict[str, Any] | None]:
    """(precision, probe summary or None): an explicit precision as given; "auto" by measurement.

    "auto" times this run's own first-layer GEMMs (`rows` x 784 x the summed `widths`, forward and
    weight gradient) in fp32 and bf16 on `device` (mnist_fc.precision; cached per machine and shape,
    so it is measured once) and picks bf16 only where it is faster and `cfg.train.allow_bf16_auto`.
    A batch of trials passes all members' widths: their first layers run as one GEMM, in one precision.
    """
    precision = resolve_precision(cfg.train.precision, device)
    if precision != "auto":
        return precision, None
    widths = list(widths) if widths is not None else [cfg.model.n_units_l1]
    shapes = first_layer_shapes(rows, N_PIXELS, *widths)
    choice = choose_precision(device, shapes, allow_bf16=cfg.train.allow_bf16_auto)
    return choice.precision, choice.summary()


def probe_rows(cfg: RunConfig, n_train: int) -> int:
    """The rows of the run's first-layer GEMMs: the whole training set, or one minibatch."""
    rows = n_train if cfg.train.batch_size is None else min(n_train, cfg.train.batch_size)
    return max(rows, 1)


def prepare(cfg: RunConfig, split: Split | None, *, widths: Sequence[int] | None = None) -> Prepared:
    """Validate `cfg` (once per run), resolve device and precision, put the normalised data on the device.

    `widths`: the first-layer widths of every trial trained together (batched runs), for "auto".
    """
    validate(cfg)
    device = resolve_device(cfg.train.device)
    if split is None:
        split = load_split(cfg.data, seed=cfg.train.seed)  # DataConfig.subset_seed, when set, wins
    else:
        check_split(split, cfg.data)  # a caller's arrays: checked here, not as a torch error mid-epoch
    if cfg.model.batchnorm and len(split.x_train) < 2:
        raise DataError(f"BatchNorm needs at least 2 training images; this run has {len(split.x_train)}")
    precision, probe = decide_precision(cfg, device, rows=probe_rows(cfg, len(split.x_train)), widths=widths)
    data = to_device(split, normalizer_for(cfg.data, split.x_train), device, compute_dtype(precision))
    return Prepared(device, precision, split, data, probe)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    precision: str,
    chunk: int = EVAL_CHUNK,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) in eval mode, in chunks to bound memory; `transform` maps each
    chunk of inputs first (raw pixels -> normalised ones, for batched runs with a folded normalisation)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    with autocast(x.device, precision):
        for i in range(0, len(x), chunk):
            xb = x[i : i + chunk]
            logits = model(xb if transform is None else transform(xb)).float()
            loss_sum += F.cross_entropy(logits, y[i : i + chunk], reduction="sum").double()
            correct += (logits.argmax(1) == y[i : i + chunk]).sum()
    model.train(was_training)
    n = max(len(x), 1)
    return float(loss_sum) / n, float(correct) / n


@contextlib.contextmanager
def run_settings(*, deterministic: bool, device: torch.device, flush_denormals: bool = True) -> Iterator[None]:
    """Process-wide torch settings for one run, restored afterwards (so callers, e.g. tests, keep theirs).

    - deterministic algorithms, when asked;
    - on CUDA, TF32 tensor cores for fp32 matmuls (every loop alike: a minibatch run used to get TF32 or
      not depending on whether a full-batch run had switched it on earlier in the process);
    - denormal floats flushed to zero (unless told not to): saturated sigmoids and tiny learning
      rates produce them, and x86 CPUs compute them ~4x slower (measured: a 683-unit net,
      29 s -> 8 s for 40 epochs).
    """
    previous = torch.are_deterministic_algorithms_enabled()
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if flush_denormals:
        torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flush_denormals:
            torch.set_flush_denormal(False)  # torch's default; it has no getter to restore from
        torch.use_deterministic_algorithms(previous)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def sync(device: torch.device) -> None:
    """Wait for the device: wall times must include the work, not only its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
