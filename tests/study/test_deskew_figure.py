"""study/analysis/deskew_figure.py: the examples' data (tested without rendering) and the drawn figure's parts."""

from __future__ import annotations

import numpy as np

from mnist_fc.data import load_embedded
from study.analysis.deskew_figure import deskew_examples, draw_deskew_examples, slant


def test_examples_are_each_digits_most_slanted_image_and_come_out_upright():
    _, _, x, y = load_embedded()
    x, y = x[:3000], y[:3000]
    ex = deskew_examples(x, y, per_class=2)
    assert ex.labels.tolist() == [d for d in range(10) for _ in range(2)]
    s = np.abs(slant(x))
    for d in range(10):
        assert np.abs(ex.slant_before[ex.labels == d]).min() >= np.sort(s[y == d])[-2] - 1e-12  # the two most slanted
    assert np.abs(ex.slant_before).min() > 0.4 and np.abs(ex.slant_after).max() < 0.1
    assert ex.raw.shape == ex.deskewed.shape == (20, 28, 28)


def test_figure_draws_every_image_in_two_rows_with_its_slant():
    _, _, x, y = load_embedded()
    ex = deskew_examples(x[:1000], y[:1000])
    fig = draw_deskew_examples(ex, title="t")
    assert len(fig.data) == 20 and all(t.type == "heatmap" for t in fig.data)
    np.testing.assert_array_equal(np.asarray(fig.data[10].z), ex.deskewed[0])
    texts = [a.text for a in fig.layout.annotations]
    assert texts[0] == f"0: slant {ex.slant_before[0]:+.2f}" and texts[10].startswith("deskewed: ")
