"""MNIST loading: the embedded IDX files (checksum-verified) or the article's CSV files.

Arrays stay uint8 pixels / int64 labels here (float32 pixels, still 0-255, for a deskewed split);
scaling is `normalize.py`'s job, because its statistics must come from the training part only.

Split (fixed and documented): validation = the LAST 10,000 images of the official
60,000-image training file (indices 50,000-59,999); training = the first 50,000;
test = the official 10,000 test images, only ever reported. With
`DataConfig.include_validation` (final models only) training uses all 60,000.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mnist_fc.config import N_CLASSES, N_PIXELS, DataConfig
from mnist_fc.errors import DataError
from mnist_fc.files import replacing

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


@dataclass(frozen=True)
class Split:
    """Train / validation / test arrays: x is (n, 784) uint8 (float32 if deskewed), y is (n,) int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def check_split(split: Split, cfg: DataConfig) -> None:
    """DataError (one line) unless `split`, built by a caller rather than `load_split`, is what the loops
    need and what `cfg` records: (n, 784) raw 0-255 pixels, integer labels 0-9 of the same count, some
    images in every part, and `cfg.train_size` training rows when it names a size (the result records it)."""
    if not isinstance(split, Split):
        raise DataError(f"split must be a mnist_fc.data.Split, not {type(split).__name__}")
    parts = (
        ("training", split.x_train, split.y_train),
        ("validation", split.x_val, split.y_val),
        ("test", split.x_test, split.y_test),
    )
    for what, x, y in parts:
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
            raise DataError(f"split: {what} images and labels must be numpy arrays, not {type(x).__name__}")
        if x.ndim != 2 or x.shape[1] != N_PIXELS:
            raise DataError(f"split: {what} images must have shape (n, {N_PIXELS}), not {x.shape}")
        if y.shape != (len(x),):
            raise DataError(f"split: {len(x)} {what} images but labels of shape {y.shape}")
        if len(x) == 0:
            raise DataError(f"split: no {what} images")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= N_CLASSES:
            raise DataError(f"split: {what} labels must be whole numbers 0-9")
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise DataError(f"split: {what} pixels must be numbers, not {x.dtype}")
        low, high = float(x.min()), float(x.max())
        if not (np.isfinite(low) and np.isfinite(high) and low >= -1e-3 and high <= 255 + 1e-3):  # deskew rounds
            raise DataError(f"split: {what} pixels must be raw values in 0-255, not {low:g} to {high:g}")
        if np.issubdtype(x.dtype, np.floating) and 0 < high <= 1:  # normalised twice: a silent mis-scaling
            raise DataError(f"split: {what} pixels look scaled to 0-1; mnist_fc expects raw 0-255 values")
    if cfg.train_size is not None and len(split.x_train) != cfg.train_size:
        raise DataError(f"split: {len(split.x_train)} training images, but the config's train_size is {cfg.train_size}")


def embedded_dir() -> Path:
    """Folder of the MNIST files shipped inside the package."""
    return Path(str(resources.files("mnist_fc") / "datasets"))


def _read_sums(path: Path) -> dict[str, str]:
    """`sha256sum` output: one "DIGEST  NAME" per line; DataError if missing or not that."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else "not a text file"
        raise DataError(f"{path}: cannot read the checksums ({reason})") from None
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            parts = line.split()
            if len(parts) != 2 or len(parts[0]) != 64:
                raise DataError(f"{path}: line {number} is not 'SHA256  FILE' (sha256sum's format)")
            digest, name = parts
            sums[name.lstrip("*")] = digest.lower()
    return sums


def read_idx(path: str | Path, *, sha256: str | None = None) -> np.ndarray:
    """Read a gzip-compressed (or plain) IDX file; verify its SHA-256 first when given."""
    path = Path(path)
    check_regular_file(path, "data file")
    try:
        raw = path.read_bytes()
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
def _load_idx_dir(
    folder: str, verify: bool, signature: tuple[tuple[int, int], ...] = ()
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
    base = Path(folder) if folder is not None else embedded_dir()
    if not base.is_dir():
        raise DataError(f"{base}: no such data folder")
    base = base.resolve()
    return _load_idx_dir(str(base), True, _signature(base))


def _signature(base: Path) -> tuple[tuple[int, int], ...]:
    """Size and mtime of each file: part of the cache key, so a file replaced in this process is read
    (and verified) again rather than served from the cache."""
    out = []
    for name in ("SHA256SUMS", *IDX_FILES.values()):
        try:
            st = (base / name).stat()
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((-1, -1))  # missing: the load says so
    return tuple(out)


def _csv_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "mnist-study"


MAX_LINE_BYTES = 1 << 20  # a valid row is ~3 KB; a longer first line is not this format
MAX_SHOWN = 40  # characters of a bad value quoted in an error: never echo a 10 MB line

UTF8_BOM = b"\xef\xbb\xbf"
# Byte-order marks of encodings this reader does not take (UTF-32 first: its LE mark starts like UTF-16's).
_OTHER_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
# Compressed files by their magic bytes: gzip is read, the others are named so the user can unpack them.
_ARCHIVES = ((b"PK\x03\x04", "zip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"(\xb5/\xfd", "zstd"))
GZIP_MAGIC = b"\x1f\x8b"


def shown(value: object) -> str:
    """A value quoted for an error message, cut to MAX_SHOWN characters."""
    text = value if isinstance(value, str) else str(value)
    return repr(text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "...")


def _number(value: float) -> str:
    """12.5, not np.float64(12.5)."""
    return f"{float(value):g}"


def check_regular_file(path: Path, what: str) -> None:
    """DataError unless `path` is a readable regular file: a folder or FIFO is not "not found"."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    import stat

    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"{path}: is a folder, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: not a regular file (a pipe, socket or device?); give a {what}")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: cannot read {what} (permission denied)")


def _sniff(path: Path) -> str:
    """ "gzip" or "plain"; DataError for UTF-16/32 text and other archives, named as such."""
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    for magic, name in _ARCHIVES:
        if head.startswith(magic):
            raise DataError(f"{path}: is a {name} archive, not a CSV file; unpack it first")
    for bom, name in _OTHER_BOMS:
        if head.startswith(bom):
            raise DataError(f"{path}: is {name} text; save it as UTF-8 (or ASCII) CSV")
    return "plain"


def _open_text_bytes(path: Path, kind: str) -> BinaryIO:
    return gzip.open(path, "rb") if kind == "gzip" else path.open("rb")  # type: ignore[return-value]  # GzipFile is a BinaryIO at run time


def _first_row(path: Path, kind: str = "plain") -> list[str] | None:
    """Fields of the first non-blank line (UTF-8 BOM removed), read with a bounded buffer; None if blank.

    Checked before pandas sees the file: a runaway line (a file with no newlines, the wrong
    delimiter, a 100,000-column row) would otherwise cost pandas seconds and gigabytes
    before the column count could be reported.
    """
    try:
        with _open_text_bytes(path, kind) as f:
            first = True
            while True:
                line = f.readline(MAX_LINE_BYTES + 1)
                if first and line.startswith(UTF8_BOM):
                    line = line[len(UTF8_BOM) :]
                first = False
                if not line:
                    return None
                if b"\r" in line.rstrip(b"\r\n"):  # "CSV (Macintosh)": rows run together as one line
                    raise DataError(
                        f"{path}: its lines end in CR only (old Mac format); save it with LF or CRLF line ends"
                    )
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
                    return [_unquote(field) for field in text.split(",")]
    except (OSError, EOFError, zlib.error) as e:
        if kind == "gzip":
            raise DataError(f"{path}: corrupt gzip-compressed CSV ({shown(str(e))})") from None
        raise


def _unquote(field: str) -> str:
    """A CSV field as pandas reads it: blanks and one pair of double quotes around it removed."""
    field = field.strip()
    if len(field) >= 2 and field[0] == field[-1] == '"':
        field = field[1:-1].replace('""', '"').strip()
    return field


def _label_column(names: list[str], path: Path) -> int:
    """Which column of a header row holds the label: the one named `label` (any case), else the first,
    unless the first is named like a pixel, which would silently make a pixel the label."""
    lowered = [n.lower() for n in names]
    if lowered.count("label") > 1:
        raise DataError(f"{path}: the header names {lowered.count('label')} columns 'label'; keep one")
    if "label" in lowered:
        return lowered.index("label")
    if _is_number(names[0]) or re.fullmatch(r"(pixel|px)?_?[0-9]+(x[0-9]+)?", lowered[0]):
        raise DataError(
            f"{path}: the header has no 'label' column and its first column {shown(names[0])} names a pixel; "
            "name the label's column 'label' (or put the label first)"
        )
    return 0


def _is_header(fields: list[str], path: Path) -> bool:
    """A header is a row of names (or the column numbers 0..783 / 1..784 after a name); a data row
    is all numbers. Anything else is neither: taking it for a header would silently drop an image,
    so it is an error naming the first odd field."""
    numeric = [_is_number(f) for f in fields]
    if all(numeric):
        return False
    if not any(numeric):
        return True
    rest = fields[1:]
    if not numeric[0] and all(numeric[1:]):
        numbers = [float(f) for f in rest]
        if numbers in ([float(i) for i in range(N_PIXELS)], [float(i + 1) for i in range(N_PIXELS)]):
            return True
    mostly_numbers = sum(numeric) * 2 > len(numeric)
    odd = [i for i, ok in enumerate(numeric) if ok != mostly_numbers]
    c = odd[0] if odd else 0
    what = f"non-numeric value {shown(fields[c])}" if mostly_numbers else f"number {shown(fields[c])} among names"
    raise DataError(
        f"{path}: {what} at row 1, column {c + 1}; a first row is either a header of names or label + "
        f"{N_PIXELS} numbers"
    )


NOT_LOCATED = "(not located)"


def _unbalanced_quote(raw: str, value: str) -> bool:
    return raw.count('"') % 2 == 1


def _not_a_number(raw: str, value: str) -> bool:
    return bool(value) and not _is_number(value)


def _locate_text(path: Path, kind: str, header: bool, *, odd: Callable[[str, str], bool] = _not_a_number) -> str:
    """Where the first odd value is (only called after pandas refused the file): by default one that is
    not a number; `odd(raw_field, unquoted_value)` says what is odd."""
    with _open_text_bytes(path, kind) as f:
        row = 0
        for i, raw in enumerate(f):
            if i == 0 and raw.startswith(UTF8_BOM):
                raw = raw[len(UTF8_BOM) :]
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            if header:  # the first non-blank line is the header
                header = False
                continue
            row += 1
            for c, field in enumerate(text.split(",")):
                if odd(field, _unquote(field)):
                    return f"at data row {row}, column {c + 1}: {shown(field.strip())}"
    return NOT_LOCATED


_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)


def _is_number(text: str) -> bool:
    """A number as pandas' C parser reads one (Python's float() also takes `1_0` and ` nan `)."""
    return bool(_NUMBER.fullmatch(text))


def _parse_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    header = False
    kind = "plain"
    try:
        kind = _sniff(path)
        first = _first_row(path, kind)
        if first is None:
            raise DataError(f"{path}: CSV file is empty")
        if len(first) != N_PIXELS + 1:
            raise DataError(f"{path}: {len(first)} columns, expected {N_PIXELS + 1} (label + {N_PIXELS} pixels)")
        header = _is_header(first, path)
        label_col = _label_column(first, path) if header else 0
        df = pd.read_csv(
            path,
            header=0 if header else None,
            dtype=np.float64,
            engine="c",
            skip_blank_lines=True,
            encoding="utf-8-sig",  # a UTF-8 byte-order mark is not part of the first value
            compression="gzip" if kind == "gzip" else None,
        )
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: CSV file not found") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: CSV file is empty") from None
    except pd.errors.ParserError as e:
        quote = _locate_text(path, kind, header, odd=_unbalanced_quote)
        if quote != NOT_LOCATED:
            raise DataError(f"{path}: unbalanced double quote {quote}") from None
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else "parser error"
        msg = msg if len(msg) <= 200 else msg[:200] + "..."
        raise DataError(f"{path}: malformed CSV ({msg}); expected label + {N_PIXELS} pixels per row") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text CSV file") from None
    except (ValueError, TypeError):
        raise DataError(f"{path}: non-numeric value {_locate_text(path, kind, header)}") from None
    except (OSError, EOFError, zlib.error) as e:
        if kind == "gzip":
            raise DataError(f"{path}: corrupt gzip-compressed CSV ({shown(str(e))})") from None
        raise DataError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    values = df.to_numpy()
    if values.ndim != 2 or values.shape[1] != N_PIXELS + 1:
        raise DataError(
            f"{path}: {values.shape[1] if values.ndim == 2 else 0} columns, expected {N_PIXELS + 1} "
            f"(label + {N_PIXELS} pixels)"
        )
    # The file's column of each value (1-based) for messages, once the label's column is moved first.
    order = [label_col, *(c for c in range(N_PIXELS + 1) if c != label_col)]
    values = values[:, order]
    column = [c + 1 for c in order]
    if values.shape[0] == 0:
        raise DataError(f"{path}: CSV file has no data rows")
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{path}: missing or non-finite value at data row {r + 1}, column {column[c]}")
    frac = values != np.round(values)
    if frac.any():
        r, c = np.argwhere(frac)[0]
        raise DataError(f"{path}: non-integer value {_number(values[r, c])} at data row {r + 1}, column {column[c]}")
    labels, pixels = values[:, 0], values[:, 1:]
    if labels.min() < 0 or labels.max() > N_CLASSES - 1:
        r = int(np.argmax((labels < 0) | (labels > 9)))
        raise DataError(f"{path}: label {_number(labels[r])} outside 0-9 at data row {r + 1}, column {column[0]}")
    if pixels.min() < 0 or pixels.max() > 255:
        r, c = np.argwhere((pixels < 0) | (pixels > 255))[0]
        raise DataError(
            f"{path}: pixel value {_number(pixels[r, c])} outside 0-255 at data row {r + 1}, column {column[c + 1]}"
        )
    return pixels.astype(np.uint8), labels.astype(np.int64)


_DIGESTS: dict[tuple, str] = {}
# Bumped whenever parsing changes what a file means: v2 reads a UTF-8 BOM file's first row (v1 dropped it);
# v3 reads a quoted first data row (v2 took it for a header) and a header's `label` column wherever it is.
CACHE_VERSION = "v3"


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, remembered per (inode, size, mtime) so a run hashes each file once."""
    path = Path(path)
    check_regular_file(path, "data file")
    st = path.stat()
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        try:
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror})") from None
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def load_csv(path: str | Path, *, use_cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) from an article-style CSV: label, then 784 pixels 0-255; header row optional.

    Plain or gzip-compressed UTF-8 (a byte-order mark is fine). Parsed with pandas' C engine;
    the arrays are cached on disk keyed by the file's SHA-256, so a second load skips parsing.
    """
    path = Path(path)
    check_regular_file(path, "CSV file")
    digest = file_sha256(path) if use_cache else ""
    cache = _csv_cache_dir() / f"{digest}.{CACHE_VERSION}.npz"
    if use_cache and cache.is_file():
        try:
            with np.load(cache) as z:  # a cache entry names the file it was parsed from: never another's arrays
                if str(z["sha256"]) == digest and len(z["x"]) == len(z["y"]):
                    return z["x"], z["y"]
        except (OSError, ValueError, KeyError, EOFError):
            pass  # unreadable or foreign cache entry: parse again
    x, y = _parse_csv(path)
    if use_cache:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with replacing(cache) as tmp:  # ends in .npz: np.savez adds no suffix
                np.savez(tmp, x=x, y=y, sha256=np.array(digest))
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


MAX_SHARED_ROWS = 0.01  # share of test rows allowed to repeat training rows: official MNIST has none (0 of
# 10,000); a few duplicates in a user's own CSVs (blank images) pass, a copy or a part of the training data not


def _row_keys(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One comparable key per row: its 784 pixels and its label, as bytes."""
    rows = np.ascontiguousarray(np.c_[np.asarray(x).reshape(len(x), -1).astype(np.uint8), np.asarray(y, np.uint8)])
    return rows.view(np.dtype((np.void, rows.shape[1]))).ravel()


def shared_rows(x_a: np.ndarray, y_a: np.ndarray, x_b: np.ndarray, y_b: np.ndarray) -> int:
    """How many rows (image and label) of b also occur among a's rows, in any order."""
    return int(np.isin(_row_keys(x_b, y_b), _row_keys(x_a, y_a)).sum())


def check_held_out(
    x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray, *, train: str, test: str
) -> None:
    """DataError when the test rows are largely training rows: the same file, a link, a copy, the rows
    shuffled, gzipped, with CRLF or a header, or the training CSV's validation rows. Their accuracy would be
    training (or validation) accuracy reported as test accuracy. Compared as parsed rows, in any order."""
    n = shared_rows(x_tr, y_tr, x_te, y_te)
    if n > MAX_SHARED_ROWS * len(x_te):
        raise DataError(
            f"{test}: {n} of its {len(x_te)} rows also occur in the training data {train}; its accuracy would "
            "be training accuracy: give the held-out test set (e.g. mnist_test.csv)"
        )


def _check_validation_classes(where: str, y_train: np.ndarray, y_val: np.ndarray) -> None:
    """The validation rows are the file's last rows: in a CSV sorted by label they are all 9s and training
    never sees a 9 (val accuracy 0, and a study would choose its hyperparameters on that)."""
    unseen = sorted(set(np.unique(y_val).tolist()) - set(np.unique(y_train).tolist()))
    if unseen:
        raise DataError(
            f"{where}the validation rows (the last {len(y_val)}) hold digit(s) {', '.join(map(str, unseen))} that the "
            "training rows never show: is the file sorted by label? Shuffle its rows"
        )


def load_split(cfg: DataConfig, *, seed: int = 0) -> Split:
    """The train/validation/test split described in this module's docstring."""
    if cfg.source == "csv":
        x_tr, y_tr = load_csv(cfg.train_csv)  # type: ignore[arg-type]  # validate() requires both paths with source="csv"
        x_te, y_te = load_csv(cfg.test_csv)  # type: ignore[arg-type]  # (same)
        check_held_out(x_tr, y_tr, x_te, y_te, train=str(cfg.train_csv), test=str(cfg.test_csv))
    else:
        x_tr, y_tr, x_te, y_te = load_embedded()
    n_val = cfg.validation_size
    where = f"{cfg.train_csv}: " if cfg.source == "csv" else ""
    if not 0 < n_val < len(x_tr):
        raise DataError(
            f"{where}{len(x_tr)} training rows; the last {n_val} are held out for validation, "
            f"so at least {n_val + 1} rows are needed (a smaller --validation-size fits a smaller file)"
        )
    cut = len(x_tr) - n_val
    # include_validation: the final model trains on all official training images (train + val).
    x_train, y_train = (x_tr, y_tr) if cfg.include_validation else (x_tr[:cut], y_tr[:cut])
    if not cfg.include_validation:
        _check_validation_classes(where, y_train, y_tr[cut:])
    if cfg.train_size is not None and cfg.train_size > len(x_train):
        # Asking for more than exists is a mistake; silently training on fewer would record a false size.
        raise DataError(
            f"{where}--train-size {cfg.train_size} is more than the {len(x_train)} training images available "
            f"({len(x_tr)} rows{'' if cfg.include_validation else f' minus {n_val} for validation'})"
        )
    if cfg.train_size is not None and cfg.train_size < len(x_train):
        seed = cfg.subset_seed if cfg.subset_seed is not None else seed  # its own seed, when set
        idx = stratified_subsample(y_train, cfg.train_size, seed=seed)
        x_train, y_train = x_train[idx], y_train[idx]
    x_val = x_tr[cut:]
    if cfg.deskew:  # per image, so the same map on every split; float32 pixels from here on
        from mnist_fc.deskew import deskew_array  # torch: only for runs that ask for it

        x_train, x_val, x_te = deskew_array(x_train), deskew_array(x_val), deskew_array(x_te)
    return Split(x_train, y_train, x_val, y_tr[cut:], x_te, y_te)
