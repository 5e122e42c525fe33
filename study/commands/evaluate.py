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
  mnist-study evaluate out/ --test-csv mnist_test.csv     # the one model `final --out out/` wrote"""


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


def _unnamed_onnx(path: Path) -> bool:
    """An ONNX file under another suffix (model.bin): its protobuf starts with field 1, ir_version (0x08).
    Saved models are .safetensors/.json; any other file that is not ONNX is refused by the loader."""
    if path.suffix.lower() in (".safetensors", ".json"):
        return False
    try:
        with path.open("rb") as f:
            return f.read(1) == b"\x08"
    except OSError:
        return False


def check_not_training_data(meta: dict, test_csv: str, x: np.ndarray, y: np.ndarray) -> None:
    """A --test-csv holding the model's own training rows scored training accuracy as test accuracy. The
    model's JSON says what it was trained on: the official images (compared row by row), or CSV files
    (by SHA-256, and row by row when the file is still there)."""
    from mnist_fc.data import check_held_out, file_sha256, load_csv, load_embedded

    trained_on = meta.get("trained_on")
    if isinstance(trained_on, str) and "official" in trained_on:
        x_tr, y_tr, _, _ = load_embedded()
        check_held_out(x_tr, y_tr, x, y, train="the official training images", test=test_csv)
    elif isinstance(trained_on, dict) and isinstance(trained_on.get("train_sha256"), str):
        train_csv = str(trained_on.get("train_csv", "the training CSV"))
        if file_sha256(test_csv) == trained_on["train_sha256"]:
            raise UserError(f"{test_csv}: this is the model's training CSV ({train_csv}); its accuracy would be "
                            "training accuracy: give the held-out test set")  # fmt: skip
        if Path(train_csv).is_file() and file_sha256(train_csv) == trained_on["train_sha256"]:
            x_tr, y_tr = load_csv(train_csv)
            check_held_out(x_tr, y_tr, x, y, train=train_csv, test=test_csv)


def run(args: argparse.Namespace) -> int:
    from mnist_fc.data import load_csv, load_embedded
    from mnist_fc.export import check_onnx, confusion_matrix, load_pixelnet, onnx_logits, torch_logits
    from mnist_fc.files import with_suffix

    if not args.model.strip():  # an unset shell variable: not the current folder
        raise UserError("the model path is empty: give a .onnx, .safetensors or .json file, or its folder")
    if args.test_csv is not None and not args.test_csv.strip():  # never the official test set instead
        raise UserError("--test-csv is empty: give a CSV file")
    path = Path(args.model)
    if not path.exists() and not with_suffix(path, ".safetensors").exists():  # a stem names its two files
        raise UserError(f"{path}: no such model file or folder")
    onnx = path.suffix.lower() == ".onnx" or (path.is_file() and _unnamed_onnx(path))
    if path.is_file() and not onnx and path.suffix.lower() not in (".safetensors", ".json"):
        raise UserError(f"{path}: not a model file: give a .onnx, .safetensors or .json file, or its folder")
    if args.test_csv is not None:
        x, y = load_csv(args.test_csv)
        source = args.test_csv
    else:
        _, _, x, y = load_embedded()
        source = "official MNIST test set"
    try:
        if onnx:  # meta: the JSON final wrote beside it (what it was trained on), or {}
            meta, engine = check_onnx(path), "onnxruntime"
        else:
            model, meta = load_pixelnet(path)
            engine = "pytorch"
        if args.test_csv is not None:
            check_not_training_data(meta, args.test_csv, x, y)
        logits = onnx_logits(path, x) if onnx else torch_logits(model, x)
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
