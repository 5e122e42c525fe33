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


@pytest.mark.parametrize("kind", ["article", "global", "per_pixel"])
@pytest.mark.parametrize(("shift", "scale"), [(0.5, 1.0), (0.0, 4.0), (-1.0, 0.25), (2.0, -3.0)])
def test_input_shift_and_scale_apply_after_the_normalisation(x, kind, shift, scale):
    plain = fit_normalizer(kind, x)(x)
    moved = fit_normalizer(kind, x, input_shift=shift, input_scale=scale)
    assert np.allclose(moved(x), plain * scale + shift, atol=2e-5 * max(1.0, abs(scale)))
    assert moved.kind == kind and moved.shift.shape == fit_normalizer(kind, x).shift.shape  # still one affine


def test_input_mean_and_variance_become_the_asked_ones(x):
    z = fit_normalizer("global", x, input_shift=0.7, input_scale=3.0)(x)
    assert abs(z.mean() - 0.7) < 1e-3 and abs(z.std() - 3.0) < 3e-3


def test_normalizer_for_reads_the_data_config(x):
    from mnist_fc.config import DataConfig
    from mnist_fc.normalize import normalizer_for

    n = normalizer_for(DataConfig(normalization="article", input_shift=0.5, input_scale=2.0), x)
    assert np.allclose(n(np.array([[0, 255]], np.uint8)), [[-0.5, 1.5]])


def test_zero_input_scale_is_rejected(x):
    with pytest.raises(ValueError, match="input scale"):
        fit_normalizer("article", x, input_scale=0.0)
