"""Broken model files, fuzzed: a safetensors/JSON pair or an ONNX graph that does not describe a valid
784 -> h1 -> h2 -> 10 network gives one ModelFileError line naming the file, never a model that
silently evaluates at chance, and never numpy/torch internals (reshape text, truncated state_dict dumps)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from safetensors.torch import load_file, save_file

from mnist_fc.config import ACTIVATIONS, ModelConfig, RunConfig
from mnist_fc.data import file_sha256
from mnist_fc.errors import ModelFileError
from mnist_fc.export import (
    SCALE_KEY,
    SHIFT_KEY,
    WEIGHTS_HASH,
    PixelNet,
    export_onnx,
    load_pixelnet,
    onnx_logits,
    save_pixelnet,
)
from mnist_fc.model import build_model
from study.cli import main

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
_DIR = Path(tempfile.mkdtemp(prefix="mnist-model-fuzz-"))
SMALL = ModelConfig(n_units_l1=8, n_units_l2=6, batchnorm=True)
PIXELS = np.random.default_rng(0).integers(0, 256, (5, 784)).astype(np.float32)
LEAKS = ("reshape", "Traceback", "size mismatch", "Error(s) in loading", "np.float")


def _good(stem: Path) -> Path:
    model = PixelNet(build_model(SMALL, seed=0), torch.full((784,), 127.5), torch.full((784,), 255.0))
    save_pixelnet(model, stem, meta={"config": RunConfig(model=SMALL).to_dict()})
    return stem.with_suffix(".safetensors")


GOOD = _good(_DIR / "good" / "m")


def _copy(name: str) -> Path:
    folder = _DIR / name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(GOOD.parent, folder)
    return folder / "m.safetensors"


def _resave(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write other tensors as a consistent pair: the JSON's recorded SHA-256 follows the new weights, so
    the tensor checks (not the checksum) are what refuses them."""
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta[WEIGHTS_HASH] = file_sha256(path)
    meta_path.write_text(json.dumps(meta))


def _refused(path: Path, *, words: tuple[str, ...] = ()) -> str:
    with pytest.raises(ModelFileError) as info:
        load_pixelnet(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path.parent) in msg, msg
    assert not any(leak in msg for leak in LEAKS), msg
    assert not words or any(w in msg for w in words), msg
    return msg


def test_the_good_model_loads_and_predicts() -> None:
    model, meta = load_pixelnet(GOOD)
    assert meta["config"]["model"]["n_units_l1"] == 8
    assert model(torch.from_numpy(PIXELS)).shape == (5, 10)


# The issue's exact inputs: a weight stored as int8 or bool, a NaN or zero input scale.
@pytest.mark.parametrize(
    ("key", "change", "words"),
    [
        ("net.net.0.weight", lambda t: t.to(torch.int8), ("int8",)),
        ("net.net.0.weight", lambda t: t > 0, ("bool",)),
        (SCALE_KEY, lambda t: torch.full_like(t, float("nan")), ("NaN",)),
        (SCALE_KEY, torch.zeros_like, ("> 0",)),
    ],
)
def test_issue_examples_wrong_weights(key, change, words) -> None:
    path = _copy("issue")
    tensors = load_file(str(path))
    tensors[key] = change(tensors[key]).contiguous()
    _resave(path, tensors)
    _refused(path, words=words)


def test_a_flipped_byte_in_the_weights_is_caught_by_the_recorded_checksum() -> None:
    """safetensors has no checksum: one flipped bit in a weight loaded and ran without a word."""
    path = _copy("flip")
    assert json.loads(path.with_suffix(".json").read_text())[WEIGHTS_HASH] == file_sha256(path)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x01  # inside the last tensor's data: still a valid safetensors file
    path.write_bytes(bytes(raw))
    assert load_file(str(path))  # safetensors itself reads it
    _refused(path, words=("SHA-256 differs",))


def test_save_refuses_meta_that_would_leave_half_a_model(tmp_path: Path) -> None:
    model = PixelNet(build_model(SMALL, seed=0), torch.full((784,), 127.5), torch.full((784,), 255.0))
    cases = [
        ({"config": RunConfig(model=SMALL).to_dict(), "when": object()}, "cannot be written as JSON"),
        ({}, "config"),
        ({"config": RunConfig().to_dict()}, "does not describe this network"),  # the article's 100-30, not SMALL
    ]
    for meta, words in cases:
        with pytest.raises(ModelFileError, match=words):
            save_pixelnet(model, tmp_path / "m", meta=meta)
        assert list(tmp_path.iterdir()) == []  # nothing written, not even the weights
    out = export_onnx(model, tmp_path / "new" / "deeper" / "m.onnx")  # a missing folder is made, as save does
    assert out.is_file()


KEYS = sorted(load_file(str(GOOD)))
FLOAT_KEYS = [k for k in KEYS if load_file(str(GOOD))[k].is_floating_point()]


@st.composite
def broken_tensors(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(["dtype", "shape", "nonfinite", "scale", "drop", "extra", "variance"]))
    return kind, draw(st.sampled_from(FLOAT_KEYS if kind in ("dtype", "nonfinite", "shape") else KEYS))


@FUZZ
@given(broken_tensors(), st.data())
def test_broken_safetensors_family(case: tuple[str, str], data: st.DataObject) -> None:
    kind, key = case
    path = _copy("fuzz")
    tensors = load_file(str(path))
    t = tensors[key]
    if kind == "dtype":
        dtype = data.draw(st.sampled_from([torch.int8, torch.uint8, torch.int32, torch.int64, torch.bool,
                                           torch.float64, torch.float16, torch.bfloat16]))  # fmt: skip
        tensors[key] = (t > 0) if dtype == torch.bool else t.to(dtype)
    elif kind == "shape":
        extra = data.draw(st.integers(1, 5))
        shape = list(t.shape) or [1]
        axis = data.draw(st.integers(0, len(shape) - 1))
        shape[axis] += extra if data.draw(st.booleans()) or shape[axis] <= extra else -extra
        tensors[key] = torch.zeros(shape, dtype=t.dtype)
    elif kind == "nonfinite":
        bad = data.draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
        flat = t.clone().reshape(-1)
        flat[data.draw(st.integers(0, flat.numel() - 1))] = bad
        tensors[key] = flat.reshape(t.shape)
    elif kind == "scale":
        value = data.draw(st.sampled_from([0.0, -1.0, -255.0, float("nan"), float("inf"), -0.0]))
        scale = tensors[SCALE_KEY].clone()
        scale[data.draw(st.integers(0, 783))] = value
        tensors[SCALE_KEY] = scale
    elif kind == "drop":
        del tensors[key]
    elif kind == "variance":
        var = next(k for k in KEYS if k.endswith("running_var"))
        tensors[var] = -tensors[var].abs() - 1
    else:
        tensors[data.draw(st.text(min_size=1, max_size=200).filter(lambda n: n not in tensors))] = torch.zeros(3)
    _resave(path, tensors)
    _refused(path)


JSON_WIDTHS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v != int(v) if abs(v) < 1e300 else True),
    st.integers(max_value=0),
    st.integers(min_value=(1 << 16) + 1),
    st.booleans(),
    st.text(max_size=20),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def broken_json(draw: st.DrawFn) -> dict:
    meta = {"config": RunConfig(model=SMALL).to_dict()}
    model = meta["config"]["model"]
    kind = draw(st.sampled_from(["width", "activation", "type", "unknown", "shape", "dropout", "missing"]))
    if kind == "width":
        model[draw(st.sampled_from(["n_units_l1", "n_units_l2"]))] = draw(JSON_WIDTHS)
    elif kind == "activation":
        model["activation"] = draw(st.text(max_size=30).filter(lambda a: a not in ACTIVATIONS))
    elif kind == "type":
        key = draw(st.sampled_from(["batchnorm", "fan_in_scaling", "dropout", "init_std"]))
        model[key] = draw(st.one_of(st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2)))
    elif kind == "unknown":
        model[draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in model))] = 1
    elif kind == "missing":  # a missing field took ModelConfig's default: a GELU model ran as sigmoid
        for key in draw(st.lists(st.sampled_from(["n_units_l1", "n_units_l2", "activation", "batchnorm"]),
                                 min_size=1, unique=True)):  # fmt: skip
            del model[key]
    elif kind == "dropout":
        model["dropout"] = draw(st.one_of(st.floats(min_value=1.0, allow_infinity=False), st.floats(max_value=-1e-9)))
    else:
        return draw(st.sampled_from([{}, {"config": 1}, {"config": {"model": []}}, {"config": {}}]))
    return meta


@FUZZ
@given(broken_json())
def test_broken_json_family(meta: dict) -> None:
    path = _copy("json")
    path.with_suffix(".json").write_text(json.dumps(meta))
    _refused(path)


@pytest.mark.parametrize("text", ["[1, 2]", "not json", "\ufeff{", '"a string"', "\xff\xfe", "[" * 100_000])
def test_unreadable_json(text: str) -> None:
    path = _copy("json-text")
    path.with_suffix(".json").write_text(text, encoding="latin-1" if "\xff" in text else "utf-8")
    _refused(path)


# --- ONNX graphs ------------------------------------------------------------------------------------


def _graph(inputs: list, outputs: list, nodes: list, inits: list | None = None) -> Path:
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits or [])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = _DIR / "bad.onnx"
    onnx.save(model, str(path))
    return path


def _matmul_graph(batch, n_in: int, n_out, *, in_type=TensorProto.FLOAT, out_dims=None) -> Path:
    w = helper.make_tensor("w", TensorProto.FLOAT, [n_in, n_out], np.zeros(n_in * n_out, np.float32).tolist())
    x = helper.make_tensor_value_info("pixels", in_type, [batch, n_in])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_dims or [batch, n_out])
    nodes = [helper.make_node("MatMul", ["pixels", "w"], ["logits"])]
    if in_type != TensorProto.FLOAT:
        cast = helper.make_node("Cast", ["pixels"], ["xf"], to=TensorProto.FLOAT)
        nodes = [cast, helper.make_node("MatMul", ["xf", "w"], ["logits"])]
    return _graph([x], [y], nodes, [w])


def _onnx_refused(path: Path, words: tuple[str, ...] = ()) -> str:
    with pytest.raises(ModelFileError) as info:
        onnx_logits(path, PIXELS)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and not any(leak in msg for leak in LEAKS), msg
    assert not words or any(w in msg for w in words), msg
    return msg


def test_onnx_good_graph_runs() -> None:
    out = onnx_logits(_matmul_graph("N", 784, 10), PIXELS)
    assert out.shape == (5, 10)
    path = export_onnx(load_pixelnet(GOOD)[0], _DIR / "real.onnx")
    assert onnx_logits(path, PIXELS).shape == (5, 10)


@FUZZ
@given(st.sampled_from(["inputs", "type", "batch", "width", "outshape"]), st.integers(1, 20))
def test_broken_onnx_family(kind: str, n: int) -> None:
    if kind == "inputs":  # two inputs
        x = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 784])
        x2 = helper.make_tensor_value_info("extra", TensorProto.FLOAT, ["N", 784])
        y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 784])
        path = _graph([x, x2], [y], [helper.make_node("Add", ["pixels", "extra"], ["logits"])])
        _onnx_refused(path, ("2 inputs",))
    elif kind == "type":
        in_type = [TensorProto.INT64, TensorProto.DOUBLE, TensorProto.UINT8, TensorProto.INT32][n % 4]
        _onnx_refused(_matmul_graph("N", 784, 10, in_type=in_type), ("tensor(",))
    elif kind == "batch":
        _onnx_refused(_matmul_graph(n if n != 5 else 1, 784, 10), ("fixed batch",))
    elif kind == "width":
        _onnx_refused(_matmul_graph("N", 784 + n, 10), ("784",))
    else:  # any output that is not (N, 10) logits: (N, k) or (N, 10, 1)-like
        k = 10 + n if n % 2 else max(1, 10 - n)
        _onnx_refused(_matmul_graph("N", 784, k), ("output",))


def test_onnx_garbage_and_missing(tmp_path: Path) -> None:
    garbage = tmp_path / "g.onnx"
    garbage.write_bytes(b"\x00garbage" * 100)
    _onnx_refused(garbage, ("not a loadable ONNX",))
    with pytest.raises(ModelFileError, match="not found"):
        onnx_logits(tmp_path / "missing.onnx", PIXELS)


def test_evaluate_cli_exits_2_on_a_broken_model(capsys: pytest.CaptureFixture) -> None:
    path = _copy("cli")
    tensors = load_file(str(path))
    tensors[SHIFT_KEY] = tensors[SHIFT_KEY].to(torch.float64)
    _resave(path, tensors)
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "float64" in err, err
    assert main(["evaluate", str(_matmul_graph(3, 784, 10))]) == 2
    assert "fixed batch" in capsys.readouterr().err


def test_model_file_names_in_other_cases_and_with_dots(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`M.ONNX` went to the PyTorch loader ("M.safetensors not found"); a stem with a dot lost its tail."""
    shipped = Path(__file__).resolve().parents[2] / "models"
    shutil.copy(shipped / "accuracy.onnx", tmp_path / "M.ONNX")
    assert main(["evaluate", str(tmp_path / "M.ONNX"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["engine"] == "onnxruntime"
    for ext in ("safetensors", "json"):
        shutil.copy(shipped / f"accuracy.{ext}", tmp_path / f"model.v2.{ext}")
    for name in ("model.v2", "model.v2.json", "model.v2.safetensors"):
        assert main(["evaluate", str(tmp_path / name), "--json"]) == 0, name
        assert json.loads(capsys.readouterr().out)["engine"] == "pytorch"
