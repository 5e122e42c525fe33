"""The figure that shows what deskewing does: official test digits as read (top row) and deskewed (bottom).

The data (`deskew_examples`: which images, their slants before and after) is computed apart from the
drawing (`draw_deskew_examples`) so that it is tested without rendering.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from mnist_fc.deskew import deskew_array
from mnist_fc.deskew import slant as deskew_slant


@dataclass(frozen=True)
class DeskewExamples:
    """`n` images as read and deskewed ((n, 28, 28) each), their labels and slants (column shift per row)."""

    labels: np.ndarray
    raw: np.ndarray
    deskewed: np.ndarray
    slant_before: np.ndarray
    slant_after: np.ndarray


def slant(x: np.ndarray) -> np.ndarray:
    """Per image: cov(row, column) / var(row) of the ink, the column shift per row that deskewing removes."""
    with torch.no_grad():
        return deskew_slant(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()


def deskew_examples(x: np.ndarray, y: np.ndarray, *, per_class: int = 1) -> DeskewExamples:
    """The most slanted `per_class` images of each digit 0-9 (ties: the first), as read and deskewed."""
    s = slant(x)
    picked = [
        i for d in range(10) for i in np.flatnonzero(y == d)[np.argsort(-np.abs(s[y == d]), kind="stable")][:per_class]
    ]
    raw = np.asarray(x[picked], dtype=np.float32)
    desk = deskew_array(raw)
    return DeskewExamples(y[picked], raw.reshape(-1, 28, 28), desk.reshape(-1, 28, 28), s[picked], slant(desk))


def draw_deskew_examples(ex: DeskewExamples, *, title: str) -> go.Figure:
    n = len(ex.labels)
    titles = [f"{int(d)}: slant {s:+.2f}" for d, s in zip(ex.labels, ex.slant_before, strict=True)]
    titles += [f"deskewed: {s:+.2f}" for s in ex.slant_after]
    fig = make_subplots(rows=2, cols=n, subplot_titles=titles, horizontal_spacing=0.01, vertical_spacing=0.08)
    for row, images in ((1, ex.raw), (2, ex.deskewed)):
        for col, img in enumerate(images, start=1):
            fig.add_trace(go.Heatmap(z=img, colorscale="Greys", zmin=0, zmax=255, showscale=False), row=row, col=col)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    fig.update_annotations(font_size=10)
    fig.update_layout(title=title, height=330, margin={"l": 10, "r": 10, "t": 70, "b": 10}, plot_bgcolor="white")
    return fig
