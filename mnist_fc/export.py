"""Saving, loading and ONNX export of trained networks, with the input normalisation built in.

A saved model is three files sharing a stem: `<stem>.safetensors` (weights plus the
normaliser's shift and scale, so no training data is needed to use it), `<stem>.json` (the
RunConfig and how the model was made) and `<stem>.onnx`. Every form takes raw pixel values
0-255 as float32, shape (N, 784), and returns (N, 10) logits. Loading uses safetensors only:
never `torch.load`, which can execute code hidden in a pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mnist_fc.config import ModelConfig
from mnist_fc.model import FCNet
from mnist_fc.normalize import Normalizer

SHIFT_KEY, SCALE_KEY = "input_shift", "input_scale"
ONNX_OPSET = 17


class PixelNet(nn.Module):
    """An FCNet behind its input normalisation: raw pixels (0-255) in, logits out."""

    input_shift: torch.Tensor  # buffers registered below (names SHIFT_KEY, SCALE_KEY)
    input_scale: torch.Tensor

    def __init__(self, net: FCNet, shift: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        # Per-pixel (784,) or broadcast scalars; kept as buffers so they travel with the weights.
        self.register_buffer(SHIFT_KEY, shift.detach().float().reshape(-1).expand(784).clone())
        self.register_buffer(SCALE_KEY, scale.detach().float().reshape(-1).expand(784).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.input_shift) / self.input_scale)

    @classmethod
    def of(cls, net: FCNet, normalizer: Normalizer) -> PixelNet:
        return cls(net, torch.as_tensor(normalizer.shift), torch.as_tensor(normalizer.scale)).eval()


def _tensors(model: PixelNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_pixelnet(model: PixelNet, stem: str | Path, *, meta: dict[str, Any]) -> dict[str, Path]:
    """Write `<stem>.safetensors` and `<stem>.json`; `meta` must hold the RunConfig under "config"."""
    from safetensors.torch import save_file

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = {"safetensors": stem.with_suffix(".safetensors"), "json": stem.with_suffix(".json")}
    save_file(_tensors(model), str(paths["safetensors"]), metadata={"format": "mnist-study PixelNet"})
    paths["json"].write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return paths


def export_onnx(model: PixelNet, path: str | Path) -> Path:
    """ONNX graph of pixels (N, 784) float32 -> logits (N, 10), batch size dynamic."""
    path = Path(path)
    model = model.cpu().eval()
    torch.onnx.export(
        model,
        (torch.zeros(2, 784),),
        str(path),
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=ONNX_OPSET,
        dynamo=False,  # the TorchScript exporter needs no onnxscript and handles these few ops
    )
    return path


def _resolve(path: str | Path) -> tuple[Path, Path]:
    """(safetensors, json) for a .safetensors or .json file, a stem, or a folder with one model."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.safetensors"))
        if len(found) != 1:
            raise ValueError(f"{path}: expected exactly one .safetensors model in the folder, found {len(found)}")
        path = found[0]
    weights, config = path.with_suffix(".safetensors"), path.with_suffix(".json")
    for p in (weights, config):
        if not p.is_file():
            raise ValueError(f"{p}: model file not found")
    return weights, config


def load_meta(path: str | Path) -> dict[str, Any]:
    _, config = _resolve(path)
    try:
        return json.loads(config.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{config}: not valid JSON ({e.msg})") from None


def load_pixelnet(path: str | Path) -> tuple[PixelNet, dict[str, Any]]:
    """The saved model and its JSON metadata; weights read with safetensors only."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, _ = _resolve(path)
    meta = load_meta(path)
    try:
        model_cfg = ModelConfig(**meta["config"]["model"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: JSON has no usable config.model ({e})") from None
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{weights}: not a readable safetensors file ({e})") from None
    model = PixelNet(FCNet(model_cfg), torch.zeros(784), torch.ones(784))
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise ValueError(f"{weights}: weights do not fit the JSON config ({str(e).splitlines()[0]})") from None
    return model.eval(), meta


@torch.no_grad()
def torch_logits(model: PixelNet, pixels: np.ndarray, *, chunk: int = 16384) -> np.ndarray:
    model.eval()
    x = torch.from_numpy(np.asarray(pixels, dtype=np.float32))
    return torch.cat([model(x[i : i + chunk]) for i in range(0, len(x), chunk)]).numpy()


def onnx_logits(path: str | Path, pixels: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for unreadable graphs
        raise ValueError(f"{path}: not a loadable ONNX model ({str(e).splitlines()[0]})") from None
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.asarray(pixels, dtype=np.float32)})[0]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, *, n_classes: int = 10) -> np.ndarray:
    """counts[true, predicted]."""
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
