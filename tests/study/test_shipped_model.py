"""Each shipped model reproduces the test accuracy its JSON records and the README states."""

import json
from pathlib import Path

import numpy as np
import pytest

from mnist_fc.data import load_embedded
from mnist_fc.export import load_pixelnet, onnx_logits, torch_logits

REPO = Path(__file__).resolve().parents[2]
MODELS = sorted(p.with_suffix("") for p in (REPO / "models").glob("*.onnx"))


def test_models_are_shipped():
    assert MODELS, "models/ holds no .onnx model"


@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_shipped_model_matches_json_and_readme(model: Path) -> None:
    meta = json.loads(model.with_suffix(".json").read_text())
    _, _, x, y = load_embedded()
    onnx_acc = float((onnx_logits(model.with_suffix(".onnx"), x).argmax(1) == y).mean())
    net, _ = load_pixelnet(model.with_suffix(".safetensors"))
    torch_acc = float((torch_logits(net, x).argmax(1) == y).mean())
    assert onnx_acc == torch_acc == meta["test_accuracy"]
    accs = [s["test_accuracy"] for s in meta["seeds"]]
    assert len(accs) >= 3 and meta["test_accuracy_mean"] == pytest.approx(np.mean(accs))
    readme = (REPO / "README.md").read_text()
    assert f"{100 * onnx_acc:.2f}%" in readme
    assert f"{100 * np.mean(accs):.2f} ± {100 * np.std(accs, ddof=1):.2f}%" in readme
