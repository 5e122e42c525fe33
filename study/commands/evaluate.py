"""`mnist-study evaluate`: test accuracy and confusion matrix of a saved or ONNX model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from study.errors import UserError

if TYPE_CHECKING:
    import numpy as np

EXAMPLE = """examples:
  mnist-study evaluate models/accuracy.onnx
  mnist-study evaluate models/accuracy.safetensors --json
  mnist-study evaluate models/ --test-csv mnist_test.csv"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="print the test accuracy and confusion matrix of a saved (.safetensors/.json) or .onnx model",
        description="Evaluate a model on the official MNIST test set (or a test CSV): ONNX files run in "
        "onnxruntime, saved models in PyTorch (weights read with safetensors).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="a .onnx file, a .safetensors or .json file of a saved model, or its folder")
    p.add_argument("--test-csv", help="article-style test CSV instead of the embedded official test set")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def format_confusion(counts: np.ndarray) -> str:
    """Rows: true digit; columns: predicted digit."""
    width = max(5, len(str(int(counts.max()))) + 1)
    head = "true\\pred" + "".join(f"{c:>{width}}" for c in range(counts.shape[1]))
    rows = [f"{r:>9}" + "".join(f"{int(v):>{width}}" for v in counts[r]) for r in range(counts.shape[0])]
    return "\n".join([head, *rows])


def run(args: argparse.Namespace) -> int:
    from mnist_fc.data import load_csv, load_embedded
    from mnist_fc.export import confusion_matrix, load_pixelnet, onnx_logits, torch_logits
    from mnist_fc.files import with_suffix

    path = Path(args.model)
    if not path.exists() and not with_suffix(path, ".safetensors").exists():  # a stem names its two files
        raise UserError(f"{path}: no such model file or folder")
    if args.test_csv:
        x, y = load_csv(args.test_csv)
        source = args.test_csv
    else:
        _, _, x, y = load_embedded()
        source = "official MNIST test set"
    try:
        if path.suffix.lower() == ".onnx":
            logits, engine = onnx_logits(path, x), "onnxruntime"
        else:
            model, _ = load_pixelnet(path)
            logits, engine = torch_logits(model, x), "pytorch"
    except ValueError as e:  # the loaders' messages name the file and what is wrong with it (DataError-to-be)
        raise UserError(str(e)) from None
    pred = logits.argmax(1)
    accuracy = float((pred == y).mean())
    counts = confusion_matrix(y, pred)
    if args.json:
        print(
            json.dumps(
                {
                    "model": str(path),
                    "engine": engine,
                    "images": len(y),
                    "test_accuracy": accuracy,
                    "errors": int((pred != y).sum()),
                    "confusion": counts.tolist(),
                }
            )
        )
    else:
        print(f"{path} ({engine}) on the {source}: {len(y)} images, {int((pred != y).sum())} errors")
        print(f"test accuracy {accuracy:.4f} ({100 * accuracy:.2f}%)")
        print(format_confusion(counts))
    return 0
