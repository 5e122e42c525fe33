"""Saving, loading and ONNX export of trained networks, with the input normalisation built in.

A saved model is three files sharing a stem: `<stem>.safetensors` (weights plus the
normaliser's shift and scale, so no training data is needed to use it), `<stem>.json` (the
RunConfig and how the model was made) and `<stem>.onnx`. Every form takes raw pixel values
0-255 as float32, shape (N, 784), and returns (N, 10) logits. Loading uses safetensors only:
never `torch.load`, which can execute code hidden in a pickle.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mnist_fc.config import (
    ACTIVATIONS,
    INIT_DISTRIBUTIONS,
    INIT_SCALINGS,
    MAX_UNITS,
    ModelConfig,
    model_config_from_dict,
)
from mnist_fc.data import file_sha256
from mnist_fc.deskew import Deskew
from mnist_fc.errors import ModelFileError
from mnist_fc.files import replacing, with_suffix, write_text
from mnist_fc.model import FCNet
from mnist_fc.normalize import Normalizer

SHIFT_KEY, SCALE_KEY = "input_shift", "input_scale"
ONNX_OPSET = 17
# SHA-256 of the weights file (and of the ONNX file, when `final` wrote one beside it), kept in the JSON:
# safetensors and ONNX carry no checksum, so a flipped byte in a weight would load and run without a word.
WEIGHTS_HASH, ONNX_HASH = "weights_sha256", "onnx_sha256"


class PixelNet(nn.Module):
    """An FCNet behind its input normalisation: raw pixels (0-255) in, logits out."""

    input_shift: torch.Tensor  # buffers registered below (names SHIFT_KEY, SCALE_KEY)
    input_scale: torch.Tensor

    def __init__(self, net: FCNet, shift: torch.Tensor, scale: torch.Tensor, *, deskew: bool = False) -> None:
        super().__init__()
        self.net = net
        # A model trained on deskewed images (DataConfig.deskew) deskews its raw input first; no weights.
        self.deskew = Deskew() if deskew else None
        # Per-pixel (784,) or broadcast scalars; kept as buffers so they travel with the weights.
        self.register_buffer(SHIFT_KEY, shift.detach().float().reshape(-1).expand(784).clone())
        self.register_buffer(SCALE_KEY, scale.detach().float().reshape(-1).expand(784).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deskew is not None:
            x = self.deskew(x)
        return self.net((x - self.input_shift) / self.input_scale)

    @classmethod
    def of(cls, net: FCNet, normalizer: Normalizer, *, deskew: bool = False) -> PixelNet:
        shift, scale = torch.as_tensor(normalizer.shift), torch.as_tensor(normalizer.scale)
        return cls(net, shift, scale, deskew=deskew).eval()


def _tensors(model: PixelNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_pixelnet(model: PixelNet, stem: str | Path, *, meta: dict[str, Any]) -> dict[str, Path]:
    """Write `<stem>.safetensors` and `<stem>.json`; `meta` must hold the RunConfig under "config"."""
    from safetensors.torch import save_file

    stem = Path(stem)
    paths = {"safetensors": with_suffix(stem, ".safetensors"), "json": with_suffix(stem, ".json")}
    # Both checks before either file is written: the pair is whole, or nothing is written.
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{paths['json']}: meta cannot be written as JSON ({e})") from None
    described = model_config(meta, paths["json"])
    if tuple(getattr(described, k) for k in INFERENCE_FIELDS) != tuple(
        getattr(model.net.cfg, k) for k in INFERENCE_FIELDS
    ):
        raise ModelFileError(f"{paths['json']}: meta's config.model does not describe this network")
    stem.parent.mkdir(parents=True, exist_ok=True)
    with replacing(paths["safetensors"]) as tmp:
        save_file(_tensors(model), str(tmp), metadata={"format": "mnist-study PixelNet"})
        digest = file_sha256(tmp)
    meta = dict(meta, **{WEIGHTS_HASH: digest})
    write_text(paths["json"], json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return paths


def export_onnx(model: PixelNet, path: str | Path) -> Path:
    """ONNX graph of pixels (N, 784) float32 -> logits (N, 10), batch size dynamic."""
    path = Path(path)
    model = model.cpu().eval()
    path.parent.mkdir(parents=True, exist_ok=True)  # as save_pixelnet does
    with replacing(path) as tmp:
        torch.onnx.export(
            model,
            (torch.zeros(2, 784),),
            str(tmp),
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
            raise ModelFileError(f"{path}: expected exactly one .safetensors model in the folder, found {len(found)}")
        path = found[0]
    if path.suffix.lower() in (".safetensors", ".json"):
        path = path.with_suffix("")  # else the whole name is the stem: `final.v1` is not `final`
    weights, config = with_suffix(path, ".safetensors"), with_suffix(path, ".json")
    for p in (weights, config):
        if not p.exists():
            raise ModelFileError(f"{p}: model file not found")
        if not p.is_file():
            raise ModelFileError(f"{p}: not a regular file (a folder, pipe or device?)")
    return weights, config


def load_meta(path: str | Path) -> dict[str, Any]:
    _, config = _resolve(path)
    try:
        meta = json.loads(config.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{config}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except RecursionError:  # thousands of nested brackets
        raise ModelFileError(f"{config}: JSON nested too deeply to be a model file") from None
    except UnicodeDecodeError:
        raise ModelFileError(f"{config}: not UTF-8 text") from None
    except OSError as e:
        raise ModelFileError(f"{config}: cannot read ({e.strerror})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{config}: expected a JSON object, found {type(meta).__name__}")
    return meta


_MODEL_TYPES: dict[str, tuple[type, ...]] = {
    "n_units_l1": (int,),
    "n_units_l2": (int,),
    "activation": (str,),
    "batchnorm": (bool,),
    "dropout": (int, float),
    "init_distribution": (str,),
    "init_mean": (int, float),
    "init_std": (int, float),
    "init_scaling": (str,),
    "fan_in_scaling": (bool,),  # models saved before init_scaling existed (model_config_from_dict maps it)
}


INFERENCE_FIELDS = ("n_units_l1", "n_units_l2", "activation", "batchnorm")


def model_config(meta: dict[str, Any], where: Path) -> ModelConfig:
    """The ModelConfig in a model's JSON, every field type- and range-checked (a one-line error otherwise)."""
    raw = meta.get("config", {}).get("model") if isinstance(meta.get("config"), dict) else None
    if not isinstance(raw, dict):
        raise ModelFileError(f"{where}: JSON has no config.model object")
    for key, value in raw.items():
        if key not in _MODEL_TYPES:
            raise ModelFileError(f"{where}: unknown config.model field {key!r}")
        types = _MODEL_TYPES[key]
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise ModelFileError(
                f"{where}: config.model.{key} must be {types[0].__name__}, not {json.dumps(value)[:40]}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ModelFileError(f"{where}: config.model.{key} is not finite")
    # The fields that decide what a loaded model computes must be stated: a missing one would silently take
    # ModelConfig's default, e.g. a GELU model evaluated as sigmoid (init and dropout do not matter here).
    missing = [k for k in INFERENCE_FIELDS if k not in raw]
    if missing:
        raise ModelFileError(f"{where}: config.model has no {', '.join(repr(k) for k in missing)}")
    cfg = model_config_from_dict(raw)
    for key in ("n_units_l1", "n_units_l2"):
        width = getattr(cfg, key)
        if not 1 <= width <= MAX_UNITS:
            raise ModelFileError(f"{where}: config.model.{key} is {width}; expected 1 to {MAX_UNITS}")
    if cfg.activation not in ACTIVATIONS:
        raise ModelFileError(f"{where}: unknown activation {cfg.activation[:40]!r} (one of {', '.join(ACTIVATIONS)})")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ModelFileError(f"{where}: config.model.dropout {cfg.dropout:g} outside [0, 1)")
    for key, allowed in (("init_scaling", INIT_SCALINGS), ("init_distribution", INIT_DISTRIBUTIONS)):
        value = getattr(cfg, key)
        if value not in allowed:
            raise ModelFileError(f"{where}: unknown config.model.{key} {value[:40]!r} (one of {', '.join(allowed)})")
    return cfg


def deskews(meta: dict[str, Any], where: Path) -> bool:
    """Whether the model in a JSON was trained on deskewed images (config.data.deskew; absent = no)."""
    data = meta.get("config", {}).get("data", {}) if isinstance(meta.get("config"), dict) else {}
    value = data.get("deskew", False) if isinstance(data, dict) else False
    if not isinstance(value, bool):
        raise ModelFileError(f"{where}: config.data.deskew must be true or false, not {json.dumps(value)[:40]}")
    return value


def check_tensors(tensors: dict[str, torch.Tensor], model: PixelNet, where: Path) -> None:
    """Names, dtypes, shapes and finiteness of loaded weights against the model the JSON describes.

    load_state_dict would copy an int8 or bool tensor into float weights without a word, and
    NaN weights or a zero input scale give a model that "works" at chance accuracy.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first {missing[0]!r})")
        if extra:
            parts.append(f"{len(extra)} unexpected (first {extra[0][:60]!r})")
        raise ModelFileError(f"{where}: tensors do not match the JSON's model: {', '.join(parts)}")
    for name, want in expected.items():
        got = tensors[name]
        if got.dtype != want.dtype:
            raise ModelFileError(
                f"{where}: tensor {name!r} is {got.dtype}, expected {want.dtype}".replace("torch.", "")
            )
        if tuple(got.shape) != tuple(want.shape):
            raise ModelFileError(
                f"{where}: tensor {name!r} has shape {tuple(got.shape)}, the JSON's model needs {tuple(want.shape)}"
            )
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise ModelFileError(f"{where}: tensor {name!r} holds NaN or infinite values")
    if not bool((tensors[SCALE_KEY] > 0).all()):
        raise ModelFileError(f"{where}: {SCALE_KEY} must be > 0 for every pixel (found zero or negative)")
    for name, t in tensors.items():
        if name.endswith("running_var") and not bool((t >= 0).all()):
            raise ModelFileError(f"{where}: tensor {name!r} (a variance) holds negative values")


def check_hash(path: Path, recorded: object, where: Path) -> None:
    """ModelFileError unless `path` has the SHA-256 its JSON (`where`) recorded; files saved before the
    hash was recorded (no entry) are not checked."""
    if recorded is None:
        return
    if not isinstance(recorded, str):
        raise ModelFileError(f"{where}: the recorded SHA-256 of {path.name} is not a string")
    try:
        actual = file_sha256(path)
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read ({e.strerror})") from None
    if actual != recorded.lower():
        raise ModelFileError(f"{path}: SHA-256 differs from the one recorded in {where.name} (corrupt or replaced)")


def onnx_meta(path: str | Path) -> tuple[dict[str, Any], Path]:
    """(the JSON beside an ONNX file, its path): what `final` recorded for it; {} when there is none or it is
    not readable (an ONNX file from elsewhere)."""
    path = Path(path)
    config = with_suffix(path.with_suffix(""), ".json")
    try:
        meta = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
    except (OSError, ValueError, RecursionError):
        return {}, config  # not this model's JSON, or not readable: nothing recorded
    return (meta if isinstance(meta, dict) else {}), config


def check_onnx(path: str | Path) -> dict[str, Any]:
    """The ONNX file against the SHA-256 that `final` recorded in the JSON beside it, when there is one;
    returns that JSON ({} without one)."""
    meta, config = onnx_meta(path)
    if meta:
        check_hash(Path(path), meta.get(ONNX_HASH), config)
    return meta


def load_pixelnet(path: str | Path) -> tuple[PixelNet, dict[str, Any]]:
    """The saved model and its JSON metadata; weights read with safetensors only, then checked."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, config = _resolve(path)
    meta = load_meta(path)
    model_cfg = model_config(meta, config)
    check_hash(weights, meta.get(WEIGHTS_HASH), config)
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as e:
        detail = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{weights}: not a readable safetensors file ({detail})") from None
    model = PixelNet(FCNet(model_cfg), torch.zeros(784), torch.ones(784), deskew=deskews(meta, config))
    check_tensors(tensors, model, weights)
    model.load_state_dict(tensors)
    return model.eval(), meta


@torch.no_grad()
def torch_logits(model: PixelNet, pixels: np.ndarray, *, chunk: int = 16384) -> np.ndarray:
    model.eval()
    x = torch.from_numpy(np.asarray(pixels, dtype=np.float32))
    return torch.cat([model(x[i : i + chunk]) for i in range(0, len(x), chunk)]).numpy()


def _onnx_session(path: Path) -> Any:  # an onnxruntime.InferenceSession (untyped package)
    import onnxruntime as ort

    if not path.is_file():
        raise ModelFileError(f"{path}: ONNX model file not found" if not path.exists() else f"{path}: not a file")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for unreadable graphs
        detail = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{path}: not a loadable ONNX model ({detail})") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ModelFileError(f"{path}: ONNX model has {len(inputs)} inputs; expected one, pixels (N, 784) float32")
    x = inputs[0]
    if x.type != "tensor(float)":
        raise ModelFileError(f"{path}: ONNX input {x.name!r} is {x.type}; expected tensor(float) pixels (N, 784)")
    shape = list(x.shape or [])
    if len(shape) != 2 or (shape[1] not in (784, None) and not isinstance(shape[1], str)):
        raise ModelFileError(f"{path}: ONNX input {x.name!r} has shape {shape}; expected (N, 784)")
    if isinstance(shape[0], int):
        raise ModelFileError(
            f"{path}: ONNX input {x.name!r} has a fixed batch size {shape[0]}; export it with a dynamic batch axis"
        )
    if not outputs:
        raise ModelFileError(f"{path}: ONNX model has no outputs")
    return session


def onnx_logits(path: str | Path, pixels: np.ndarray) -> np.ndarray:
    """(N, 10) logits from an ONNX model taking pixels (N, 784); one-line errors for any other graph."""
    path = Path(path)
    session = _onnx_session(path)
    name = session.get_inputs()[0].name
    x = np.asarray(pixels, dtype=np.float32)
    try:
        out = session.run(None, {name: x})[0]
    except Exception as e:  # onnxruntime's own error types: a graph that cannot run on this input
        detail = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{path}: ONNX model failed on pixels of shape {x.shape} ({detail})") from None
    out = np.asarray(out)
    if out.shape != (len(x), 10):
        raise ModelFileError(f"{path}: ONNX output has shape {out.shape}; expected ({len(x)}, 10) logits")
    if not np.issubdtype(out.dtype, np.number) or not np.isfinite(out).all():
        raise ModelFileError(f"{path}: ONNX output holds non-numeric, NaN or infinite values")
    return out


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, *, n_classes: int = 10) -> np.ndarray:
    """counts[true, predicted]."""
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
