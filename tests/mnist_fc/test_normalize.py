import numpy as np
import pytest

from mnist_fc.normalize import fit_normalizer


@pytest.fixture(scope="module")
def x(small_split):
    return small_split.x_train


def test_article_scaling(x):
    z = fit_normalizer("article", x)(np.array([[0, 255]], np.uint8))
    assert np.allclose(z, [[-0.5, 0.5]])


def test_raw_and_unit(x):
    assert fit_normalizer("raw", x)(x).max() == 255.0
    assert fit_normalizer("unit", x)(x).max() == 1.0


def test_global_standardises_training_part(x):
    z = fit_normalizer("global", x)(x)
    assert abs(z.mean()) < 1e-4 and abs(z.std() - 1) < 1e-3


def test_per_pixel_uses_train_stats_and_floors_std(x):
    norm = fit_normalizer("per_pixel", x)
    z = norm(x)
    varying = x.std(axis=0) > 5
    assert np.allclose(z[:, varying].mean(axis=0), 0, atol=1e-4)
    assert np.allclose(z[:, varying].std(axis=0), 1, atol=1e-3)
    assert norm.scale.min() >= 1.0  # constant border pixels are not divided by ~0


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown normalization"):
        fit_normalizer("zscore", np.zeros((2, 784), np.uint8))
