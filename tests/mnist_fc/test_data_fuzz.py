"""Bad data files, fuzzed: every broken CSV or IDX file gives one DataError line naming the file and
the problem, never another exception and never silently wrong arrays."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_fc.data import N_PIXELS, load_csv, read_idx, write_csv
from mnist_fc.errors import DataError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_DIR = Path(tempfile.mkdtemp(prefix="mnist-fuzz-"))


def _file(data: bytes | str, name: str = "data.csv") -> Path:
    path = _DIR / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _valid_rows(n: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[str(rng.integers(0, 10))] + [str(v) for v in rng.integers(0, 256, N_PIXELS)] for _ in range(n)]


def _check_result_or_error(path: Path) -> None:
    """load_csv either gives well-formed arrays or one DataError line naming the file."""
    try:
        x, y = load_csv(path, use_cache=False)
    except DataError as e:
        msg = str(e)
        assert str(path) in msg and "\n" not in msg, msg
        return
    assert x.dtype == np.uint8 and x.ndim == 2 and x.shape[1] == N_PIXELS
    assert y.dtype == np.int64 and y.shape == (len(x),) and len(x) > 0
    assert y.min() >= 0 and y.max() <= 9


# (mutation, words the message must contain: any one of them)
MUTATIONS = {
    "missing_column": ("columns",),
    "extra_column": ("columns",),
    "text_cell": ("non-numeric",),
    "nan": ("non-finite", "missing"),
    "inf": ("non-finite",),
    "negative_pixel": ("outside 0-255",),
    "big_pixel": ("outside 0-255",),
    "fraction": ("non-integer",),
    "label_low": ("outside 0-9",),
    "label_high": ("outside 0-9",),
    "short_row": ("missing",),
    "long_row": ("malformed", "columns"),
    "empty_file": ("empty",),
    "blank_lines": ("empty",),
    "header_only": ("no data rows", "empty"),
    "huge_line": ("columns", "longer than"),
    "not_utf8": ("not a UTF-8 text",),
}


@FUZZ
@given(
    mutation=st.sampled_from(sorted(MUTATIONS)),
    n=st.integers(1, 4),
    row=st.integers(0, 3),
    col=st.integers(1, N_PIXELS),
    seed=st.integers(0, 2**16),
    big=st.integers(256, 10**9),
    header=st.booleans(),
)
def test_every_broken_csv_is_named_and_explained(
    mutation: str, n: int, row: int, col: int, seed: int, big: int, header: bool
) -> None:
    rows = _valid_rows(n, seed)
    r = row % n
    if mutation == "missing_column":
        rows = [x[:-1] for x in rows]
    elif mutation == "extra_column":
        rows = [[*x, "0"] for x in rows]
    elif mutation == "text_cell":
        rows[r][col] = "abc"
    elif mutation == "nan":
        rows[r][col] = "nan"
    elif mutation == "inf":
        rows[r][col] = "-inf" if seed % 2 else "1e400"
    elif mutation == "negative_pixel":
        rows[r][col] = str(-1 - seed)
    elif mutation == "big_pixel":
        rows[r][col] = str(big)
    elif mutation == "fraction":
        rows[r][col] = "3.5"
    elif mutation == "label_low":
        rows[r][0] = str(-1 - seed % 100)
    elif mutation == "label_high":
        rows[r][0] = str(10 + seed)
    elif mutation == "short_row":
        rows.append(rows[0][: col % N_PIXELS + 1])
    elif mutation == "long_row":
        rows.append([*rows[0], "1", "2"])
    lines = [",".join(x) for x in rows]
    if header and mutation not in ("missing_column", "extra_column", "long_row"):
        lines.insert(0, ",".join(["label"] + [f"pixel{i}" for i in range(N_PIXELS)]))
    text = "\n".join(lines) + "\n"
    if mutation == "empty_file":
        text = ""
    elif mutation == "blank_lines":
        text = "\n" * (1 + n) + " \n"
    elif mutation == "header_only":
        text = ",".join(["label"] + [f"pixel{i}" for i in range(N_PIXELS)]) + "\n"
    elif mutation == "huge_line":
        fields = 50_000 + big % 100_000 if seed % 2 else 600_000  # ~0.2 MB, or ~1.2 MB: over the line limit
        text = "1," + ",".join(["7"] * fields) + "\n"
    data: bytes = text.encode()
    if mutation == "not_utf8":
        data = text.replace(rows[r][col], "\xe9", 1).encode("latin-1")
    path = _file(data)
    with pytest.raises(DataError) as err:
        load_csv(path, use_cache=False)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg, msg
    assert any(word in msg for word in MUTATIONS[mutation]), (mutation, msg)


@FUZZ
@given(st.one_of(st.binary(max_size=4000), st.text(max_size=4000)))
def test_arbitrary_bytes_never_crash_the_csv_reader(data: bytes | str) -> None:
    _check_result_or_error(_file(data))


@settings(max_examples=60, deadline=None)
@given(
    pixels=st.lists(st.binary(min_size=N_PIXELS, max_size=N_PIXELS), min_size=1, max_size=3),
    labels=st.data(),
    header=st.booleans(),
)
def test_valid_csv_round_trips(pixels: list[bytes], labels: st.DataObject, header: bool) -> None:
    x = np.frombuffer(b"".join(pixels), dtype=np.uint8).reshape(len(pixels), N_PIXELS)
    y = np.array(labels.draw(st.lists(st.integers(0, 9), min_size=len(x), max_size=len(x))), dtype=np.int64)
    path = _DIR / "valid.csv"
    write_csv(path, x, y, header=header)
    x2, y2 = load_csv(path, use_cache=False)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


_IMAGES = _idx(np.random.default_rng(0).integers(0, 256, (3, 28, 28)))
_LABELS = _idx(np.arange(7) % 10)


@FUZZ
@given(
    which=st.sampled_from(["images", "labels"]),
    compress=st.booleans(),
    cut=st.floats(0.0, 0.999),
)
def test_truncated_idx_files_are_reported(which: str, compress: bool, cut: float) -> None:
    raw = _IMAGES if which == "images" else _LABELS
    data = gzip.compress(raw) if compress else raw
    path = _file(data[: int(len(data) * cut)], "cut.idx.gz")
    with pytest.raises(DataError) as err:
        read_idx(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg
    assert any(w in msg for w in ("truncated", "corrupt", "magic", "gzip")), msg


@FUZZ
@given(
    which=st.sampled_from(["images", "labels"]),
    compress=st.booleans(),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
)
def test_corrupt_idx_files_raise_data_error_or_read_consistently(
    which: str, compress: bool, flips: list[tuple[int, int]]
) -> None:
    raw = _IMAGES if which == "images" else _LABELS
    data = bytearray(gzip.compress(raw) if compress else raw)
    for pos, xor in flips:
        data[pos % len(data)] ^= xor
    path = _file(bytes(data), "flip.idx.gz")
    try:
        arr = read_idx(path)
    except DataError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    assert arr.dtype == np.uint8 and arr.ndim in (1, 3)  # e.g. a flipped pixel: still a valid file


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_as_idx(data: bytes) -> None:
    path = _file(data, "random.idx")
    try:
        arr = read_idx(path)
    except DataError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    assert arr.size == int(np.prod(arr.shape))


def test_checksum_mismatch_is_named() -> None:
    path = _file(gzip.compress(_LABELS), "sum.idx.gz")
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        read_idx(path, sha256="0" * 64)


# --- encodings, compression, header detection (issue 12): never drop or change an image -------------

ENCODINGS = st.sampled_from(
    ["plain", "bom", "gzip", "bom+gzip", "crlf", "bom+crlf", "quoted", "bom+quoted", "quoted-first", "gzip+quoted"]
)


def _encoded(rows: list[list[str]], *, header: bool, encoding: str) -> bytes:
    lines = ([["label"] + [f"pixel{i}" for i in range(N_PIXELS)]] if header else []) + rows
    if "quoted" in encoding:  # every value in double quotes, or only the first line's
        lines = [[f'"{v}"' for v in li] if "first" not in encoding or i == 0 else li for i, li in enumerate(lines)]
    lines = [",".join(li) for li in lines]
    text = ("\r\n" if "crlf" in encoding else "\n").join(lines) + "\n"
    data = (b"\xef\xbb\xbf" if "bom" in encoding else b"") + text.encode()
    return gzip.compress(data) if "gzip" in encoding else data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 6), st.integers(0, 2**32), st.booleans(), ENCODINGS)
def test_utf8_bom_gzip_and_line_endings_keep_every_image(n: int, seed: int, header: bool, encoding: str) -> None:
    """The issue's case (a UTF-8 BOM on a header-less CSV dropped the first image) and its family."""
    rows = _valid_rows(n, seed)
    path = _file(_encoded(rows, header=header, encoding=encoding), f"enc-{encoding}.csv")
    x, y = load_csv(path, use_cache=False)
    assert y.tolist() == [int(r[0]) for r in rows]
    assert x.tolist() == [[int(v) for v in r[1:]] for r in rows]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 5), st.integers(0, 2**32), st.integers(0, N_PIXELS), st.sampled_from(["label", "Label", "LABEL"]))
def test_a_header_label_column_anywhere_keeps_every_image(n: int, seed: int, at: int, name: str) -> None:
    rows = _valid_rows(n, seed)
    moved = [[*r[1 : at + 1], r[0], *r[at + 1 :]] for r in rows]  # the label's value at column `at`
    names = [f"pixel{i}" for i in range(N_PIXELS)]
    text = ",".join([*names[:at], name, *names[at:]]) + "\n" + "\n".join(",".join(r) for r in moved) + "\n"
    x, y = load_csv(_file(text.encode(), "label-anywhere.csv"), use_cache=False)
    assert y.tolist() == [int(r[0]) for r in rows]
    assert x.tolist() == [[int(v) for v in r[1:]] for r in rows]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_are_named(encoding: str) -> None:
    text = "\n".join(",".join(r) for r in _valid_rows(2, 0))
    data = text.encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):  # no mark of their own: add one, as editors do
        data = ("\ufeff" + text).encode(encoding)
    path = _file(data, "utf16.csv")
    with pytest.raises(DataError, match=r"UTF-(16|32)"):
        load_csv(path, use_cache=False)


@pytest.mark.parametrize(("magic", "name"), [(b"PK\x03\x04", "zip"), (b"BZh91AY", "bzip2"), (b"\xfd7zXZ\x00", "xz")])
def test_other_archives_are_named(magic: bytes, name: str) -> None:
    with pytest.raises(DataError, match=name):
        load_csv(_file(magic + b"\x00" * 100, "archive.csv"), use_cache=False)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(2, 4),
    st.data(),
    st.text(alphabet=st.characters(blacklist_characters=",\r\n\x00", blacklist_categories=["Cs"]), min_size=1),
    st.booleans(),
)
def test_a_text_value_is_located_by_row_and_column(n: int, data: st.DataObject, value: str, bom: bool) -> None:
    """A text value anywhere (the first row included): an error naming row and column, never a dropped row."""
    value = value.strip()
    try:
        float(value)
        return  # a number, not text
    except ValueError:
        pass
    if not value:
        return
    rows = _valid_rows(n, 0)
    r = data.draw(st.integers(0, n - 1))
    c = data.draw(st.integers(0, N_PIXELS))
    rows[r][c] = value
    path = _file(_encoded(rows, header=False, encoding="bom" if bom else "plain"), "text.csv")
    with pytest.raises(DataError) as info:
        load_csv(path, use_cache=False)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and len(msg) < len(str(path)) + 300, msg
    assert f"column {c + 1}" in msg and (f"row {r + 1}" in msg), msg


def test_a_10mb_line_is_not_echoed() -> None:
    rows = _valid_rows(2, 0)
    rows[1][5] = "x" * 10_000_000
    path = _file("\n".join(",".join(r) for r in rows), "huge.csv")
    with pytest.raises(DataError) as info:
        load_csv(path, use_cache=False)
    assert len(str(info.value)) < 400 and "row 2" in str(info.value)


def test_non_integer_values_print_as_numbers() -> None:
    rows = _valid_rows(2, 0)
    rows[1][3] = "12.5"
    with pytest.raises(DataError) as info:
        load_csv(_file("\n".join(",".join(r) for r in rows), "frac.csv"), use_cache=False)
    assert "12.5" in str(info.value) and "np." not in str(info.value)


def test_folder_and_fifo_are_not_called_missing(tmp_path: Path) -> None:
    import os

    with pytest.raises(DataError, match="folder"):
        load_csv(tmp_path, use_cache=False)
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        load_csv(fifo, use_cache=False)
    with pytest.raises(DataError, match="not found"):
        load_csv(tmp_path / "missing.csv", use_cache=False)


def test_train_size_larger_than_the_csv_is_an_error(tmp_path: Path) -> None:
    """The issue: --train-size 5000 on a smaller CSV trained on what there was and recorded 5000."""
    from mnist_fc.config import DataConfig
    from mnist_fc.data import load_split

    rng = np.random.default_rng(0)
    n = 10_000 + 1_000  # 1,000 training rows after the 10,000 validation rows
    x, y = rng.integers(0, 256, (n, N_PIXELS)), np.arange(n) % 10
    path, test = tmp_path / "small.csv", tmp_path / "test.csv"
    write_csv(path, x, y)
    write_csv(test, rng.integers(0, 256, (100, N_PIXELS)), np.arange(100) % 10)  # held out: not training rows
    cfg = DataConfig(source="csv", train_csv=str(path), test_csv=str(test), train_size=5000)
    with pytest.raises(DataError, match="5000 is more than the 1000"):
        load_split(cfg)
    split = load_split(DataConfig(source="csv", train_csv=str(path), test_csv=str(test), train_size=1000))
    assert len(split.x_train) == 1000
