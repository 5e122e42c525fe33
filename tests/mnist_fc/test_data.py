import dataclasses
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from mnist_fc.config import DataConfig
from mnist_fc.data import (
    IDX_FILES,
    embedded_dir,
    load_csv,
    load_embedded,
    load_split,
    read_idx,
    stratified_subsample,
    write_csv,
)
from mnist_fc.errors import DataError

# From shared/mnist/README.md: the published label counts of the official files.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_embedded_files_verified_and_complete():
    x_tr, y_tr, x_te, y_te = load_embedded()
    assert x_tr.shape == (60000, 784) and x_te.shape == (10000, 784)
    assert x_tr.dtype == np.uint8 and y_tr.dtype == np.int64
    assert np.bincount(y_tr).tolist() == TRAIN_COUNTS
    assert np.bincount(y_te).tolist() == TEST_COUNTS
    assert load_embedded() is load_embedded()  # cached: a second load is free


def test_embedded_uncompressed_checksums_match():
    import hashlib

    lines = (embedded_dir() / "SHA256SUMS.uncompressed").read_text().splitlines()
    sums = {name: digest for digest, name in (line.split() for line in lines)}
    for name in IDX_FILES.values():
        raw = gzip.decompress((embedded_dir() / name).read_bytes())
        assert hashlib.sha256(raw).hexdigest() == sums[name.removesuffix(".gz")]


def _copy_embedded(tmp_path: Path) -> Path:
    dst = tmp_path / "mnist"
    shutil.copytree(embedded_dir(), dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def test_corrupt_file_fails_checksum(tmp_path):
    d = _copy_embedded(tmp_path)
    f = d / IDX_FILES["test_labels"]
    data = bytearray(f.read_bytes())
    data[-5] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        load_embedded(d)


def test_missing_file_is_clear(tmp_path):
    d = _copy_embedded(tmp_path)
    (d / IDX_FILES["train_images"]).unlink()
    with pytest.raises(DataError, match="not found"):
        load_embedded(d)


def test_truncated_idx_and_bad_gzip(tmp_path):
    good = gzip.decompress((embedded_dir() / IDX_FILES["test_labels"]).read_bytes())
    (tmp_path / "short").write_bytes(good[:-10])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(DataError, match="corrupt gzip"):
        read_idx(tmp_path / "bad.gz")
    (tmp_path / "magic").write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "magic")


@pytest.mark.parametrize("header", [False, True])
def test_csv_roundtrip(tmp_path, header):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 784)).astype(np.uint8)
    y = rng.integers(0, 10, size=50)
    path = tmp_path / "mnist_train.csv"
    write_csv(path, x, y, header=header)
    x2, y2 = load_csv(path, use_cache=False)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_csv_cache_second_load(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    x = np.zeros((3, 784), np.uint8)
    y = np.array([1, 2, 3])
    write_csv(tmp_path / "a.csv", x, y)
    load_csv(tmp_path / "a.csv")
    assert len(list((tmp_path / "cache" / "mnist-study").glob("*.npz"))) == 1
    import mnist_fc.data as data_mod

    def no_parse(path):
        raise AssertionError("parsed again despite the cache")

    monkeypatch.setattr(data_mod, "_parse_csv", no_parse)
    x2, y2 = load_csv(tmp_path / "a.csv")
    assert np.array_equal(y2, y) and np.array_equal(x2, x)


def test_a_cache_entry_of_another_file_is_not_trusted(tmp_path, monkeypatch):
    """Another CSV's arrays under this file's cache name (copied by hand, or a bug) were returned as its data."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write_csv(tmp_path / "a.csv", np.zeros((3, 784), np.uint8), np.array([1, 2, 3]))
    write_csv(tmp_path / "b.csv", np.full((5, 784), 7, np.uint8), np.array([4, 4, 4, 4, 4]))
    load_csv(tmp_path / "a.csv")
    load_csv(tmp_path / "b.csv")
    entries = {p.name.split(".")[0]: p for p in (tmp_path / "cache" / "mnist-study").glob("*.npz")}
    from mnist_fc.data import file_sha256

    a, b = entries[file_sha256(tmp_path / "a.csv")], entries[file_sha256(tmp_path / "b.csv")]
    shutil.copy(b, a)  # a's cache entry now holds b's arrays
    x, y = load_csv(tmp_path / "a.csv")
    assert y.tolist() == [1, 2, 3] and not x.any()


def _row(label="3", pixels=None):
    return ",".join([label] + (pixels or ["0"] * 784))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        (_row() + ",5\n", "columns"),
        (_row() + "\n" + ",".join(["1"] * 10) + "\n", "missing|columns|malformed"),
        (_row(pixels=["abc"] + ["0"] * 783) + "\n", "non-numeric"),
        (_row(pixels=["1.5"] + ["0"] * 783) + "\n", "non-integer"),
        (_row(pixels=["256"] + ["0"] * 783) + "\n", "outside 0-255"),
        (_row(pixels=["-1"] + ["0"] * 783) + "\n", "outside 0-255"),
        (_row(label="10") + "\n", "label 10 outside 0-9"),
        (_row(pixels=["nan"] + ["0"] * 783) + "\n", "non-finite|missing"),
        # a first row of names with one number: the number is named, not called non-numeric
        (",".join(["7"] + [f"p{i}" for i in range(784)]) + "\n", r"number '?7'? among names at row 1, column 1"),
        (",".join(["label"] + [f"p{i}" for i in range(783)] + ["9"]) + "\n", "number '?9'? among names.*column 785"),
        (_row(pixels=["0"] * 500 + ["x"] + ["0"] * 283) + "\n", "non-numeric value '?x'? at row 1, column 502"),
    ],
)
def test_malformed_csv(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=match):
        load_csv(path, use_cache=False)


def _quoted(path: Path, *, rows: str) -> None:
    """Rewrite a CSV with double quotes around every value (rows="all") or only the first row's."""
    lines = path.read_text().splitlines()
    quote = lambda line: ",".join(f'"{v}"' for v in line.split(","))  # noqa: E731
    path.write_text("\n".join(quote(li) if rows == "all" or i == 0 else li for i, li in enumerate(lines)) + "\n")


@pytest.mark.parametrize("rows", ["all", "first"])
@pytest.mark.parametrize("header", [False, True])
def test_quoted_values_are_read_and_keep_the_first_image(tmp_path, rows, header):
    """A quoted first data row looked like a header and was dropped: one image lost, silently."""
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 256, size=(20, 784)).astype(np.uint8), rng.integers(0, 10, size=20)
    path = tmp_path / "quoted.csv"
    write_csv(path, x, y, header=header)
    _quoted(path, rows=rows)
    x2, y2 = load_csv(path, use_cache=False)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


@pytest.mark.parametrize("at", [0, 1, 400, 784])
def test_a_header_label_column_is_used_wherever_it_is(tmp_path, at):
    """`pixel0..pixel783,label` made pixel0 the label and the label a pixel, silently."""
    import pandas as pd

    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 256, size=(30, 784)), rng.integers(0, 10, size=30)
    cols = [f"pixel{i}" for i in range(784)]
    values = np.insert(x, at, y, axis=1)
    pd.DataFrame(values, columns=[*cols[:at], "Label", *cols[at:]]).to_csv(tmp_path / "h.csv", index=False)
    x2, y2 = load_csv(tmp_path / "h.csv", use_cache=False)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    values[3, 0 if at else 1] = 300  # errors name the file's own column
    pd.DataFrame(values, columns=[*cols[:at], "label", *cols[at:]]).to_csv(tmp_path / "h.csv", index=False)
    with pytest.raises(DataError, match=f"outside 0-255 at data row 4, column {1 if at else 2}$"):
        load_csv(tmp_path / "h.csv", use_cache=False)


@pytest.mark.parametrize(
    ("names", "match"),
    [
        ([f"pixel{i}" for i in range(785)], "no 'label' column"),
        ([f"{r}x{c}" for r in range(1, 29) for c in range(1, 29)] + ["digit"], "no 'label' column"),
        (["label", *[f"p{i}" for i in range(783)], "LABEL"], "2 columns 'label'"),
    ],
)
def test_a_header_that_does_not_say_where_the_label_is(tmp_path, names, match):
    path = tmp_path / "h.csv"
    path.write_text(",".join(names) + "\n" + _row() + "\n")
    with pytest.raises(DataError, match=match):
        load_csv(path, use_cache=False)


@pytest.mark.parametrize("value", ['"', '"3'])  # 3" is read as the text 3" and named so
def test_an_unbalanced_quote_is_located(tmp_path, value):
    path = tmp_path / "quote.csv"
    path.write_text(_row() + "\n" + _row(pixels=["0"] * 9 + [value] + ["0"] * 774) + "\n" + _row() + "\n")
    with pytest.raises(DataError, match="unbalanced double quote at data row 2, column 11"):
        load_csv(path, use_cache=False)


@pytest.mark.parametrize("value", ["1_0", "٣", " 0x10"])
def test_values_python_reads_but_a_csv_parser_does_not_are_located(tmp_path, value):
    path = tmp_path / "odd.csv"
    path.write_text(_row() + "\n" + _row(pixels=["0"] * 9 + [value] + ["0"] * 774) + "\n")
    with pytest.raises(DataError, match="at data row 2, column 11"):
        load_csv(path, use_cache=False)


def test_the_training_csv_as_test_csv_is_refused(tmp_path):
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 256, size=(120, 784)), rng.integers(0, 10, size=120)
    write_csv(tmp_path / "train.csv", x, y)
    shutil.copy(tmp_path / "train.csv", tmp_path / "copy.csv")
    (tmp_path / "link.csv").symlink_to("train.csv")
    # The same data in other forms: gzipped, CRLF line ends, with a header line (a helper's probe).
    (tmp_path / "train.csv.gz").write_bytes(gzip.compress((tmp_path / "train.csv").read_bytes()))
    (tmp_path / "crlf.csv").write_bytes((tmp_path / "train.csv").read_bytes().replace(b"\n", b"\r\n"))
    write_csv(tmp_path / "header.csv", x, y, header=True)
    for test in ("train.csv", "copy.csv", "link.csv", "train.csv.gz", "crlf.csv", "header.csv"):
        cfg = DataConfig(source="csv", train_csv=str(tmp_path / "train.csv"), test_csv=str(tmp_path / test),
                         validation_size=20)  # fmt: skip
        with pytest.raises(DataError, match=r"120 of its 120 rows also occur in the training data"):
            load_split(cfg)
    # Shuffled rows, or the training CSV's own validation rows: training accuracy under another name too.
    write_csv(tmp_path / "shuffled.csv", x[::-1], y[::-1])
    write_csv(tmp_path / "val_rows.csv", x[-20:], y[-20:])
    for test, n in (("shuffled.csv", 120), ("val_rows.csv", 20)):
        cfg = DataConfig(source="csv", train_csv=str(tmp_path / "train.csv"), test_csv=str(tmp_path / test),
                         validation_size=20)  # fmt: skip
        with pytest.raises(DataError, match=rf"{n} of its {n} rows also occur"):
            load_split(cfg)
    x_new, y_new = rng.integers(0, 256, size=(10, 784)), rng.integers(0, 10, size=10)
    write_csv(tmp_path / "test.csv", x_new, y_new)
    cfg = DataConfig(source="csv", train_csv=str(tmp_path / "train.csv"), test_csv=str(tmp_path / "test.csv"),
                     validation_size=20)  # fmt: skip
    assert len(load_split(cfg).x_test) == 10


def test_split_validation_is_last_10000_and_test_untouched():
    s = load_split(DataConfig(), seed=0)
    x_tr, y_tr, x_te, _ = load_embedded()
    assert len(s.x_train) == 50000 and len(s.x_val) == 10000
    assert np.array_equal(s.x_val, x_tr[50000:]) and np.array_equal(s.y_val, y_tr[50000:])
    assert np.array_equal(s.x_test, x_te)


def test_stratified_subsample_keeps_proportions_and_seed():
    _, y, _, _ = load_embedded()
    idx = stratified_subsample(y[:50000], 5000, seed=1)
    assert len(idx) == 5000 and len(np.unique(idx)) == 5000
    full = np.bincount(y[:50000]) / 50000
    assert np.abs(np.bincount(y[idx]) / 5000 - full).max() < 0.001
    assert np.array_equal(idx, stratified_subsample(y[:50000], 5000, seed=1))
    assert not np.array_equal(idx, stratified_subsample(y[:50000], 5000, seed=2))


def test_a_csv_sorted_by_label_is_refused_not_validated_on_unseen_digits(tmp_path):
    """The last rows are the validation rows: a label-sorted CSV gave a validation set of 9s that training never
    saw ('val acc 0.0000', exit 0), and a study would have chosen hyperparameters on it."""
    x_tr, y_tr, x_te, y_te = load_embedded()
    order = np.argsort(y_tr[:3000], kind="stable")
    write_csv(tmp_path / "sorted.csv", x_tr[:3000][order], y_tr[:3000][order])
    write_csv(tmp_path / "test.csv", x_te[:100], y_te[:100])
    cfg = DataConfig(source="csv", train_csv=str(tmp_path / "sorted.csv"), test_csv=str(tmp_path / "test.csv"),
                     validation_size=500)  # fmt: skip
    with pytest.raises(DataError, match=r"hold digit\(s\) 9 that the training rows never show: is the file sorted"):
        load_split(cfg)
    final = dataclasses.replace(cfg, include_validation=True)  # trains on every row: nothing held out to check
    assert len(load_split(final).x_train) == 3000


def test_a_csv_with_cr_only_line_ends_is_named(tmp_path):
    """'CSV (Macintosh)' files: rows ran together and were refused as '156801 columns' or 'first line is longer
    than 1024 KiB'."""
    rng = np.random.default_rng(5)
    for rows in (200, 600):
        write_csv(tmp_path / "lf.csv", rng.integers(0, 256, size=(rows, 784)), rng.integers(0, 10, size=rows))
        (tmp_path / "cr.csv").write_bytes((tmp_path / "lf.csv").read_bytes().replace(b"\n", b"\r"))
        with pytest.raises(DataError, match="lines end in CR only"):
            load_csv(tmp_path / "cr.csv", use_cache=False)
