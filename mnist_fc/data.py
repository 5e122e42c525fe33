"""MNIST loading: the embedded IDX files (checksum-verified) or the article's CSV files.

Arrays stay uint8 pixels / int64 labels here; scaling is `normalize.py`'s job, because
its statistics must come from the training part only.

Split (fixed and documented): validation = the LAST 10,000 images of the official
60,000-image training file (indices 50,000-59,999); training = the first 50,000;
test = the official 10,000 test images, only ever reported. With
`DataConfig.include_validation` (final models only) training uses all 60,000.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from mnist_fc.config import N_CLASSES, N_PIXELS, DataConfig
from mnist_fc.errors import DataError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


@dataclass(frozen=True)
class Split:
    """Train / validation / test arrays: x is (n, 784) uint8, y is (n,) int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def embedded_dir() -> Path:
    """Folder of the MNIST files shipped inside the package."""
    return Path(str(resources.files("mnist_fc") / "datasets"))


def _read_sums(path: Path) -> dict[str, str]:
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name.lstrip("*")] = digest
    return sums


def read_idx(path: str | Path, *, sha256: str | None = None) -> np.ndarray:
    """Read a gzip-compressed (or plain) IDX file; verify its SHA-256 first when given."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: data file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        raise DataError(f"{path}: SHA-256 mismatch (file corrupt or replaced)")
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt gzip data ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    if ndim not in (1, 3) or len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: IDX header truncated or has {ndim} dimensions (expected 1 or 3)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != expected:
        raise DataError(f"{path}: IDX body has {body.size} bytes, header says {expected} (truncated?)")
    return body.reshape(dims)


@lru_cache(maxsize=4)
def _load_idx_dir(folder: str, verify: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    base = Path(folder)
    sums = _read_sums(base / "SHA256SUMS") if verify else {}
    arrays = {}
    for key, name in IDX_FILES.items():
        if verify and name not in sums:
            raise DataError(f"{base / 'SHA256SUMS'}: no checksum for {name}")
        arrays[key] = read_idx(base / name, sha256=sums.get(name))
    x_tr = arrays["train_images"].reshape(-1, N_PIXELS)
    x_te = arrays["test_images"].reshape(-1, N_PIXELS)
    y_tr = arrays["train_labels"].astype(np.int64)
    y_te = arrays["test_labels"].astype(np.int64)
    for x, y, what in ((x_tr, y_tr, "training"), (x_te, y_te, "test")):
        if len(x) != len(y):
            raise DataError(f"{base}: {what} images ({len(x)}) and labels ({len(y)}) differ in count")
        if y.size and y.max() >= N_CLASSES:
            raise DataError(f"{base}: {what} labels outside 0-9")
    for a in (x_tr, x_te, y_tr, y_te):
        a.flags.writeable = False
    return x_tr, y_tr, x_te, y_te


def load_embedded(folder: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) of the official MNIST files, SHA-256 verified.

    Cached in-process: a second call costs nothing.
    """
    return _load_idx_dir(str(folder or embedded_dir()), True)


def _csv_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "mnist-study"


MAX_LINE_BYTES = 1 << 20  # a valid row is ~3 KB; a longer first line is not this format


def _first_row(path: Path) -> list[str] | None:
    """Fields of the first non-blank line, read with a bounded buffer; None if the file is blank.

    Checked before pandas sees the file: a runaway line (a file with no newlines, the wrong
    delimiter, a 100,000-column row) would otherwise cost pandas seconds and gigabytes
    before the column count could be reported.
    """
    with path.open("rb") as f:
        while True:
            line = f.readline(MAX_LINE_BYTES + 1)
            if not line:
                return None
            if len(line) > MAX_LINE_BYTES:
                raise DataError(
                    f"{path}: first line is longer than {MAX_LINE_BYTES // 1024} KiB; "
                    f"expected rows of label + {N_PIXELS} comma-separated pixels"
                )
            try:
                text = line.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise DataError(f"{path}: not a UTF-8 text CSV file") from None
            if text:
                return [field.strip() for field in text.split(",")]


def _is_header(fields: list[str]) -> bool:
    try:
        float(fields[0])
    except ValueError:
        return True
    return False


def _parse_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    try:
        first = _first_row(path)
        if first is None:
            raise DataError(f"{path}: CSV file is empty")
        if len(first) != N_PIXELS + 1:
            raise DataError(f"{path}: {len(first)} columns, expected {N_PIXELS + 1} (label + {N_PIXELS} pixels)")
        header = 0 if _is_header(first) else None
        df = pd.read_csv(path, header=header, dtype=np.float64, engine="c", skip_blank_lines=True)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: CSV file not found") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: CSV file is empty") from None
    except pd.errors.ParserError as e:
        msg = str(e).strip().splitlines()[-1]
        raise DataError(f"{path}: malformed CSV ({msg}); expected label + {N_PIXELS} pixels per row") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text CSV file") from None
    except (ValueError, TypeError) as e:
        raise DataError(f"{path}: non-numeric value in CSV ({str(e).splitlines()[0]})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    values = df.to_numpy()
    if values.ndim != 2 or values.shape[1] != N_PIXELS + 1:
        raise DataError(
            f"{path}: {values.shape[1] if values.ndim == 2 else 0} columns, expected {N_PIXELS + 1} "
            f"(label + {N_PIXELS} pixels)"
        )
    if values.shape[0] == 0:
        raise DataError(f"{path}: CSV file has no data rows")
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{path}: missing or non-finite value at data row {r + 1}, column {c + 1}")
    frac = values != np.round(values)
    if frac.any():
        r, c = np.argwhere(frac)[0]
        raise DataError(f"{path}: non-integer value {values[r, c]!r} at data row {r + 1}, column {c + 1}")
    labels, pixels = values[:, 0], values[:, 1:]
    if labels.min() < 0 or labels.max() > N_CLASSES - 1:
        r = int(np.argmax((labels < 0) | (labels > 9)))
        raise DataError(f"{path}: label {labels[r]:g} outside 0-9 at data row {r + 1}")
    if pixels.min() < 0 or pixels.max() > 255:
        r, c = np.argwhere((pixels < 0) | (pixels > 255))[0]
        raise DataError(f"{path}: pixel value {pixels[r, c]:g} outside 0-255 at data row {r + 1}, column {c + 2}")
    return pixels.astype(np.uint8), labels.astype(np.int64)


def load_csv(path: str | Path, *, use_cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) from an article-style CSV: label, then 784 pixels 0-255; header row optional.

    Parsed with pandas' C engine; the arrays are cached on disk keyed by the file's SHA-256,
    so a second load skips parsing.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CSV file not found")
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if use_cache else ""
    cache = _csv_cache_dir() / f"{digest}.npz"
    if use_cache and cache.is_file():
        try:
            with np.load(cache) as z:
                return z["x"], z["y"]
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache entry: parse again
    x, y = _parse_csv(path)
    if use_cache:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, x=x, y=y)
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only cache is not an error
    return x, y


def write_csv(path: str | Path, x: np.ndarray, y: np.ndarray, *, header: bool = False) -> None:
    """Write arrays in the article's CSV format (used by tests and to hand data to other tools)."""
    import pandas as pd

    df = pd.DataFrame(np.column_stack([y.astype(np.int64), x.astype(np.int64)]))
    cols = ["label"] + [f"pixel{i}" for i in range(N_PIXELS)]
    df.to_csv(path, header=cols if header else False, index=False)


def stratified_subsample(y: np.ndarray, size: int, *, seed: int) -> np.ndarray:
    """Indices of `size` items whose class proportions match `y`'s, chosen with `seed`."""
    if size >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * size / len(y)
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take), kind="stable")[: size - take.sum()]] += 1
    perm = rng.permutation(len(y))
    chosen = [perm[y[perm] == c][:k] for c, k in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(chosen))


def load_split(cfg: DataConfig, *, seed: int = 0) -> Split:
    """The train/validation/test split described in this module's docstring."""
    if cfg.source == "csv":
        x_tr, y_tr = load_csv(cfg.train_csv)  # type: ignore[arg-type]  # validate() requires both paths with source="csv"
        x_te, y_te = load_csv(cfg.test_csv)  # type: ignore[arg-type]  # (same)
    else:
        x_tr, y_tr, x_te, y_te = load_embedded()
    n_val = cfg.validation_size
    if not 0 < n_val < len(x_tr):
        raise DataError(f"validation size {n_val} must be between 1 and {len(x_tr) - 1} training rows")
    cut = len(x_tr) - n_val
    # include_validation: the final model trains on all official training images (train + val).
    x_train, y_train = (x_tr, y_tr) if cfg.include_validation else (x_tr[:cut], y_tr[:cut])
    if cfg.train_size is not None and cfg.train_size < len(x_train):
        seed = cfg.subset_seed if cfg.subset_seed is not None else seed  # its own seed, when set
        idx = stratified_subsample(y_train, cfg.train_size, seed=seed)
        x_train, y_train = x_train[idx], y_train[idx]
    return Split(x_train, y_train, x_tr[cut:], y_tr[cut:], x_te, y_te)
