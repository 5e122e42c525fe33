"""On-device data augmentation: random affine maps and elastic distortions, drawn per image.

Everything runs in batch on the training device (one `affine_grid` + `grid_sample` per chunk),
so a fresh distortion of the whole training set each epoch costs a fraction of an epoch's
matmuls. Images are warped in pixel units (0-255, background 0) *before* normalisation, so
the zero padding that `grid_sample` brings in at the borders is true background.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SIDE = 28  # MNIST images are 28 x 28
CHUNK = 8192  # images warped at once: bounds the grid's memory (CHUNK x 28 x 28 x 2 floats)


@dataclass(frozen=True)
class Augmentation:
    """Maximum amounts of each random transform; all zero = identity."""

    shift: float = 0.0  # pixels, each axis, uniform in [-shift, shift]
    rotate: float = 0.0  # degrees, uniform +-
    scale: float = 0.0  # relative zoom, uniform in [1 - scale, 1 + scale]
    shear: float = 0.0  # degrees, uniform +-
    elastic_alpha: float = 0.0  # pixels: strength of the smoothed random displacement field
    elastic_sigma: float = 4.0  # pixels: Gaussian smoothing of that field (Simard et al. 2003)

    @property
    def active(self) -> bool:
        return any(v > 0 for v in (self.shift, self.rotate, self.scale, self.shear, self.elastic_alpha))


def _uniform(n: int, half_width: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=generator, device=device) * 2 - 1) * half_width


def affine_thetas(n: int, aug: Augmentation, *, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n, 2, 3) matrices for `F.affine_grid`, mapping output to input coordinates in [-1, 1] units."""
    rot = torch.deg2rad(_uniform(n, aug.rotate, generator, device))
    shear = torch.deg2rad(_uniform(n, aug.shear, generator, device))
    zoom = 1 + _uniform(n, aug.scale, generator, device)
    shift = _uniform(2 * n, aug.shift, generator, device).view(n, 2) * (2.0 / SIDE)  # pixels -> [-1, 1] units
    cos, sin, tan = torch.cos(rot), torch.sin(rot), torch.tan(shear)
    # Input coordinates = (R(rot) @ Shear_x(shear) / zoom) @ output + shift: a zoom > 1 enlarges the digit.
    a11, a12 = cos / zoom, (cos * tan - sin) / zoom
    a21, a22 = sin / zoom, (sin * tan + cos) / zoom
    return torch.stack([torch.stack([a11, a12, shift[:, 0]], 1), torch.stack([a21, a22, shift[:, 1]], 1)], 1)


def _blur_matrix(sigma: float, device: torch.device) -> torch.Tensor:
    """(28, 28) row-normalised Gaussian weights: K @ field @ K.T blurs both axes.

    Two matmuls are far cheaper on a CPU than a 2-D convolution of single-channel
    images; renormalising each row keeps the border from fading.
    """
    t = torch.arange(SIDE, device=device, dtype=torch.float32)
    k = torch.exp(-0.5 * ((t[:, None] - t[None, :]) / sigma) ** 2)
    return k / k.sum(1, keepdim=True)


def elastic_field(n: int, aug: Augmentation, *, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n, 28, 28, 2) displacements in [-1, 1] units: uniform noise, Gaussian-smoothed, times alpha."""
    noise = torch.rand(n, 2, SIDE, SIDE, generator=generator, device=device) * 2 - 1
    k = _blur_matrix(aug.elastic_sigma, device)
    # Blur along x, then along y, each as one (n*2*28, 28) @ (28, 28) matmul.
    smooth = (noise.view(-1, SIDE) @ k.T).view(n, 2, SIDE, SIDE).transpose(-1, -2).reshape(-1, SIDE) @ k.T
    smooth = smooth.view(n, 2, SIDE, SIDE).transpose(-1, -2)
    return (smooth.permute(0, 2, 3, 1) * (aug.elastic_alpha * 2.0 / SIDE)).contiguous()


def augment_images(x: torch.Tensor, aug: Augmentation, *, generator: torch.Generator) -> torch.Tensor:
    """Randomly warp flat images `x` (n, 784), pixel units; returns a new (n, 784) float32 tensor.

    Labels are untouched (the transforms are small enough to keep every digit's class), and
    an inactive `aug` returns `x` itself, so strength 0 is exactly the identity.
    """
    if not aug.active:
        return x
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    for i in range(0, len(x), CHUNK):
        img = x[i : i + CHUNK].float().view(-1, 1, SIDE, SIDE)
        n = len(img)
        grid = F.affine_grid(
            affine_thetas(n, aug, generator=generator, device=x.device), [n, 1, SIDE, SIDE], align_corners=False
        )
        if aug.elastic_alpha > 0:
            grid = grid + elastic_field(n, aug, generator=generator, device=x.device)
        warped = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out[i : i + n] = warped.view(n, -1)
    return out
