"""On-device augmentation: shapes, labels, identity at strength 0, and that it really moves pixels."""

import numpy as np
import torch

from mnist_fc.augment import Augmentation, augment_images
from mnist_fc.config import TrainConfig
from mnist_fc.minibatch import augmentation_of


def _images(small_split, n=256):
    return torch.from_numpy(np.array(small_split.x_train[:n]))


def test_strength_zero_is_identity(small_split):
    x = _images(small_split)
    out = augment_images(x, Augmentation(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, x)
    assert not augmentation_of(TrainConfig()).active  # the article's defaults augment nothing


def test_keeps_shape_dtype_and_range(small_split):
    x = _images(small_split)
    aug = Augmentation(shift=2, rotate=10, scale=0.1, shear=10, elastic_alpha=34, elastic_sigma=4)
    out = augment_images(x, aug, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 255 + 1e-3  # bilinear mixing cannot leave the pixel range
    changed = (out - x.float()).abs().amax(1) > 1
    assert changed.float().mean() > 0.9  # nearly every image is warped
    # Warps move ink, they neither erase nor invent digits: ink per image stays the same on average.
    ratio = out.sum(1) / x.float().sum(1)
    assert 0.9 < ratio.mean() < 1.1 and ratio.min() > 0.3 and ratio.max() < 3


def test_pure_shift_moves_by_whole_pixels():
    img = torch.zeros(1, 784)
    img[0, 14 * 28 + 14] = 255.0
    aug = Augmentation(shift=3)
    for seed in range(5):
        out = augment_images(img, aug, generator=torch.Generator().manual_seed(seed)).view(28, 28)
        r, c = divmod(int(out.argmax()), 28)
        assert abs(r - 14) <= 3 and abs(c - 14) <= 3
        assert out.sum() > 0.9 * 255  # bilinear spreads, but keeps the mass of an interior pixel


def test_seeded_and_fresh_each_call(small_split):
    x = _images(small_split, 64)
    aug = Augmentation(shift=2, rotate=10)
    a = augment_images(x, aug, generator=torch.Generator().manual_seed(1))
    b = augment_images(x, aug, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    c1, c2 = augment_images(x, aug, generator=g), augment_images(x, aug, generator=g)
    assert torch.equal(a, b) and not torch.equal(c1, c2)


def test_labels_survive_training_on_augmented_images(small_split):
    """A network trained only on warped images still classifies clean validation images."""
    from mnist_fc.config import DataConfig, ModelConfig, RunConfig
    from mnist_fc.trainer import train

    cfg = RunConfig(
        model=ModelConfig(
            n_units_l1=128, n_units_l2=64, activation="relu", init_mean=0, init_std=1.4, init_scaling="sqrt_fan_in"
        ),
        data=DataConfig(normalization="global", train_size=2000),
        train=TrainConfig(
            epochs=4, lr=2e-3, optimizer="adam", batch_size=64, aug_shift=2, aug_rotate=10, eval_every=4, device="cpu"
        ),
    )
    r = train(cfg, split=small_split)
    assert r.val_accuracy > 0.8, r.val_accuracy
