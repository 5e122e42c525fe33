"""Input normalisation as x' = (x - shift) / scale, with statistics from the training part only.

Keeping every scheme in this one affine form makes it trivial to carry into an exported
graph (ONNX) and to apply identically to validation and test images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mnist_fc.config import NORMALIZATIONS, DataConfig

# Per-pixel std floor (in 0-255 units): border pixels are always 0 in training, and dividing
# by ~0 would turn a stray test pixel into a huge input.
PER_PIXEL_MIN_STD = 1.0


@dataclass(frozen=True)
class Normalizer:
    """Affine input transform; shift and scale are scalars or per-pixel (784,) arrays."""

    kind: str
    shift: np.ndarray
    scale: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x.astype(np.float32) - self.shift) / self.scale).astype(np.float32)


def normalizer_for(cfg: DataConfig, x_train: np.ndarray) -> Normalizer:
    """The input transform a DataConfig asks for: its normalisation, then its input shift and scale."""
    return fit_normalizer(cfg.normalization, x_train, input_shift=cfg.input_shift, input_scale=cfg.input_scale)


def fit_normalizer(kind: str, x_train: np.ndarray, *, input_shift: float = 0.0, input_scale: float = 1.0) -> Normalizer:
    """Build the transform named `kind` from the (uint8) training images, then x' * input_scale + input_shift.

    The extra shift and scale (the article's point 4: the input's mean and variance) are folded into
    the one affine (x - shift) / scale: x' * k + m = (x - (shift - m * scale / k)) / (scale / k).
    """
    f32 = np.float32
    if kind == "article":  # the article's (x - 255/2) / 255: range [-0.5, 0.5]
        shift, scale = np.array(127.5, f32), np.array(255.0, f32)
    elif kind == "raw":  # raw 0-255 pixels (article point 4: the input's scale matters)
        shift, scale = np.array(0.0, f32), np.array(1.0, f32)
    elif kind == "unit":  # x / 255: range [0, 1], mean ~0.13, all positive
        shift, scale = np.array(0.0, f32), np.array(255.0, f32)
    elif kind == "global":  # one mean and std over all training pixels
        xf = x_train.astype(np.float64)
        shift, scale = np.array(xf.mean(), f32), np.array(max(xf.std(), 1e-6), f32)
    elif kind == "per_pixel":  # each pixel standardised on its own
        xf = x_train.astype(np.float64)
        shift = xf.mean(axis=0).astype(f32)
        scale = np.maximum(xf.std(axis=0), PER_PIXEL_MIN_STD).astype(f32)
    else:
        raise ValueError(f"unknown normalization {kind!r} (choose from {', '.join(NORMALIZATIONS)})")
    if input_scale == 0 or not (np.isfinite(input_scale) and np.isfinite(input_shift)):
        raise ValueError("input scale must be finite and not 0, input shift finite")
    if input_shift != 0.0 or input_scale != 1.0:
        k, m = np.float64(input_scale), np.float64(input_shift)
        shift = (shift.astype(np.float64) - m * scale.astype(np.float64) / k).astype(f32)
        scale = (scale.astype(np.float64) / k).astype(f32)
    return Normalizer(kind, shift, scale)
