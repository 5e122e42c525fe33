"""Deskewing: shear each digit upright and centre it, from the image's own moments (LeCun et al. 1998).

A handwritten digit's slant is the largest nuisance variation in MNIST. Deskewing measures it per image
as the regression slope of column on row (second moments of the ink), shears it away and moves the
centre of mass to the image centre. It is a fixed per-image map, with no learned or data-set statistics,
so applying it to the validation and test images is as honest as applying it to the training images.

It is written with plain tensor ops and `grid_sample` so that the same function runs in training (on
the arrays, once), in the saved PyTorch model and in its ONNX export (GridSample, opset >= 16): a model
trained on deskewed images deskews its raw input itself.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SIDE = 28  # MNIST images are 28 x 28
CENTER = SIDE / 2  # where MNIST puts the centre of mass (pixel coordinates 0..27): row and column 14
CHUNK = 10_000  # images per pass in `deskew_array`: bounds the grid's memory


def _moments(img: torch.Tensor, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image of `img` (n, 28, 28): centre of mass (row, column) and slant cov(row, col) / var(row)."""
    rows, cols = img.sum(2), img.sum(1)  # (n, 28): ink per row, per column
    mass = rows.sum(1).clamp_min(1e-6)
    mu_r = (rows * coords).sum(1) / mass
    mu_c = (cols * coords).sum(1) / mass
    var_r = (rows * coords * coords).sum(1) / mass - mu_r * mu_r
    cov_rc = ((img * coords[None, :, None] * coords[None, None, :]).sum((1, 2))) / mass - mu_r * mu_c
    return mu_r, mu_c, cov_rc / var_r.clamp_min(1e-6)


def slant(x: torch.Tensor) -> torch.Tensor:
    """Per flat image of `x` (n, 784): the column shift per row of its ink, which `deskew` removes."""
    img = x.float().reshape(-1, SIDE, SIDE)
    return _moments(img, torch.arange(SIDE, dtype=torch.float32, device=x.device))[2]


def deskew(x: torch.Tensor) -> torch.Tensor:
    """Deskewed copies of flat images `x` (n, 784), pixel units (0-255, background 0); float32 out.

    Output pixel (r, c) samples the input at (mu_r + r - C, mu_c + (c - C) + alpha * (r - C)), where C is
    the image centre, mu the centre of mass and alpha = cov(row, col) / var(row) the slant. An empty
    image (no ink) has no slant or centre and is returned as zeros.
    """
    img = x.float().reshape(-1, SIDE, SIDE)
    coords = torch.arange(SIDE, dtype=torch.float32, device=x.device)
    mu_r, mu_c, alpha = _moments(img, coords)
    d = coords - CENTER  # (28,) output offsets from the centre
    src_c = mu_c[:, None, None] + d[None, None, :] + alpha[:, None, None] * d[None, :, None]  # (n, 28, 28)
    src_r = (mu_r[:, None, None] + d[None, :, None]).expand_as(src_c)
    # grid_sample wants (x, y) = (column, row) in [-1, 1] with align_corners=True: -1 and 1 are pixel centres 0, 27.
    grid = torch.stack((src_c, src_r), dim=-1) * (2.0 / (SIDE - 1)) - 1.0
    out = F.grid_sample(img[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(-1, SIDE * SIDE)


class Deskew(nn.Module):
    """`deskew` as a layer, for the saved model (no parameters, nothing to store)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return deskew(x)


@torch.no_grad()
def deskew_array(x: np.ndarray) -> np.ndarray:
    """`deskew` over a (n, 784) array of pixels (uint8 or float), on the CPU in chunks; float32 (n, 784)."""
    out = np.empty((len(x), SIDE * SIDE), dtype=np.float32)
    for i in range(0, len(x), CHUNK):
        out[i : i + CHUNK] = deskew(torch.from_numpy(np.asarray(x[i : i + CHUNK], dtype=np.float32))).numpy()
    return out
