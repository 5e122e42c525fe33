"""Deskewing (mnist_fc/deskew.py): it straightens and centres digits, on every split, and inside the saved model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mnist_fc.config import DataConfig, ModelConfig
from mnist_fc.data import load_embedded, load_split
from mnist_fc.deskew import CENTER, deskew, deskew_array
from mnist_fc.errors import ModelFileError
from mnist_fc.export import PixelNet, export_onnx, load_pixelnet, onnx_logits, save_pixelnet, torch_logits
from mnist_fc.model import build_model


def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per image: centre of mass (row, column), slant cov(row, col) / var(row), and ink mass; in float64."""
    img = np.asarray(x, dtype=np.float64).reshape(-1, 28, 28)
    c = np.arange(28.0)
    mass = img.sum((1, 2))
    mu_r = (img.sum(2) * c).sum(1) / mass
    mu_c = (img.sum(1) * c).sum(1) / mass
    var_r = (img.sum(2) * c * c).sum(1) / mass - mu_r**2
    cov = (img * c[None, :, None] * c[None, None, :]).sum((1, 2)) / mass - mu_r * mu_c
    return mu_r, mu_c, cov / var_r, mass


def stroke(r0: float, c0: float, r1: float, c1: float) -> np.ndarray:
    """A 2-pixel-wide straight stroke from (r0, c0) to (r1, c1), as a flat 0-255 image."""
    img = np.zeros((28, 28), np.float32)
    for t in np.linspace(0, 1, 200):
        r, c = round(r0 + t * (r1 - r0)), round(c0 + t * (c1 - c0))
        img[r, c : c + 2] = 255
    return img.reshape(1, 784)


@pytest.mark.parametrize("c_top,c_bottom", [(18, 9), (9, 18), (12, 14)])
def test_a_slanted_stroke_comes_out_upright_and_centred(c_top, c_bottom):
    x = stroke(5, c_top, 22, c_bottom)
    out = deskew(torch.from_numpy(x)).numpy()
    mu_r, mu_c, slant, mass = moments(out)
    assert abs(moments(x)[2][0] - (c_bottom - c_top) / 17) < 0.05  # the stroke's slant, as drawn
    assert abs(slant[0]) < 0.02  # ... sheared away
    assert abs(mu_r[0] - CENTER) < 0.05 and abs(mu_c[0] - CENTER) < 0.05  # centre of mass moved to the centre
    assert mass[0] == pytest.approx(moments(x)[3][0], rel=0.02)  # no ink lost at the borders
    assert out.min() >= 0 and out.max() <= 255


def test_an_upright_centred_digit_is_left_as_it_is():
    img = np.zeros((28, 28), np.float32)
    img[7:22, 13:16] = 200  # a "1": rows 7-21, columns 13-15: centre of mass (14, 14), no slant
    out = deskew(torch.from_numpy(img.reshape(1, 784))).numpy()
    np.testing.assert_allclose(out, img.reshape(1, 784), atol=1e-3)


def test_empty_and_one_pixel_images_give_finite_output():
    one = np.zeros((1, 784), np.float32)
    one[0, 14 * 28 + 14] = 255
    out = deskew(torch.from_numpy(np.concatenate([np.zeros((1, 784), np.float32), one]))).numpy()
    assert np.isfinite(out).all()
    assert (out[0] == 0).all()  # no ink: nothing to straighten
    assert out[1].sum() == pytest.approx(255, rel=1e-4)


def test_real_digits_lose_their_slant_and_keep_their_ink():
    x = load_embedded()[2][:2000]  # official test images, as read
    before, after = moments(x), moments(deskew_array(x))
    assert np.abs(before[2]).mean() > 0.15  # MNIST digits do slant...
    assert np.abs(after[2]).mean() < 0.02  # ...and deskewed ones do not
    assert np.abs(after[0] - CENTER).max() < 0.3 and np.abs(after[1] - CENTER).max() < 0.3
    assert np.median(np.abs(after[3] / before[3] - 1)) < 0.01


def test_deskew_is_per_image_so_the_batch_does_not_matter():
    x = load_embedded()[2][:300].astype(np.float32)
    whole = deskew(torch.from_numpy(x)).numpy()
    parts = np.concatenate([deskew(torch.from_numpy(x[i : i + 7])).numpy() for i in range(0, 300, 7)])
    np.testing.assert_allclose(whole, parts, atol=1e-4)


def test_load_split_deskews_every_split_and_only_when_asked():
    raw = load_split(DataConfig(train_size=200), seed=0)
    desk = load_split(DataConfig(train_size=200, deskew=True), seed=0)
    assert raw.x_train.dtype == np.uint8  # unchanged without the flag
    for name in ("train", "val", "test"):
        got, want = getattr(desk, f"x_{name}"), deskew_array(getattr(raw, f"x_{name}"))
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(getattr(desk, f"y_{name}"), getattr(raw, f"y_{name}"))


def _net(deskew_input: bool) -> PixelNet:
    net = build_model(ModelConfig(n_units_l1=32, n_units_l2=16, activation="gelu", batchnorm=True), seed=0)
    return PixelNet(net, torch.tensor(33.0), torch.tensor(78.0), deskew=deskew_input).eval()


def test_the_saved_model_deskews_its_raw_input_in_pytorch_and_onnx(tmp_path):
    x = load_embedded()[2][:500].astype(np.float32)
    model = _net(True)
    want = model.net((torch.from_numpy(deskew_array(x)) - 33.0) / 78.0).detach().numpy()
    got = torch_logits(model, x)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert not np.allclose(got, torch_logits(_net(False), x), atol=1e-3)  # deskewing changes what the net sees
    onnx = export_onnx(model, tmp_path / "m.onnx")
    for batch in (x[:1], x[:5], x):
        np.testing.assert_allclose(onnx_logits(onnx, batch), got[: len(batch)], atol=1e-4, rtol=1e-4)
    config = {"model": {"n_units_l1": 32, "n_units_l2": 16, "activation": "gelu", "batchnorm": True}}
    save_pixelnet(model, tmp_path / "m", meta={"config": {**config, "data": {"deskew": True}}})
    loaded, _ = load_pixelnet(tmp_path / "m.safetensors")
    np.testing.assert_allclose(torch_logits(loaded, x), got, atol=1e-6)
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["config"]["data"]["deskew"] = "yes"
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"config\.data\.deskew must be true or false"):
        load_pixelnet(tmp_path / "m.safetensors")
    del meta["config"]["data"]  # models saved before the field existed: no deskewing
    (tmp_path / "m.json").write_text(json.dumps(meta))
    assert load_pixelnet(tmp_path / "m.safetensors")[0].deskew is None
