"""The shipped model reproduces the test accuracy its JSON records and the README states."""

import json
from pathlib import Path

import numpy as np
import pytest

from mnist_fc.data import load_embedded
from mnist_fc.export import load_pixelnet, onnx_logits, torch_logits

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "accuracy"


@pytest.mark.skipif(not MODEL.with_suffix(".onnx").is_file(), reason="no shipped model in this checkout")
def test_shipped_model_matches_json_and_readme():
    meta = json.loads(MODEL.with_suffix(".json").read_text())
    _, _, x, y = load_embedded()
    onnx_acc = float((onnx_logits(MODEL.with_suffix(".onnx"), x).argmax(1) == y).mean())
    model, _ = load_pixelnet(MODEL.with_suffix(".safetensors"))
    torch_acc = float((torch_logits(model, x).argmax(1) == y).mean())
    assert onnx_acc == torch_acc == meta["test_accuracy"]
    accs = [s["test_accuracy"] for s in meta["seeds"]]
    assert len(accs) >= 3 and meta["test_accuracy_mean"] == pytest.approx(np.mean(accs))
    readme = (REPO / "README.md").read_text()
    assert f"{100 * onnx_acc:.2f}%" in readme
    assert f"{100 * np.mean(accs):.2f} ± {100 * np.std(accs, ddof=1):.2f}%" in readme
