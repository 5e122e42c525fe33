"""Outputs are written whole or not at all, and a link at the target is replaced, never written through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mnist_fc.files import replacing, staged, with_suffix, write_text


def test_a_symlink_and_a_hard_link_at_the_target_are_replaced_and_their_files_kept(tmp_path: Path) -> None:
    precious = tmp_path / "study.db"
    precious.write_bytes(b"database")
    (tmp_path / "soft.csv").symlink_to(precious)
    os.link(precious, tmp_path / "hard.csv")
    for name in ("soft.csv", "hard.csv"):
        write_text(tmp_path / name, "export\n")
        assert not (tmp_path / name).is_symlink() and (tmp_path / name).read_text() == "export\n"
    assert precious.read_bytes() == b"database"


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("export broke")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_files_get_the_mode_of_a_plain_open(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
        with staged(tmp_path) as stage:
            (stage / "b.txt").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o644


def test_staged_moves_all_files_or_none(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("old page")
    with pytest.raises(RuntimeError), staged(tmp_path) as stage:
        (stage / "index.html").write_text("new page")
        raise RuntimeError("figure export broke")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html"]
    assert (tmp_path / "index.html").read_text() == "old page"
    with staged(tmp_path) as stage:
        (stage / "index.html").write_text("new page")
        (stage / "claims.md").write_text("table")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims.md", "index.html"]
    assert (tmp_path / "index.html").read_text() == "new page"


@pytest.mark.parametrize(
    ("stem", "suffix", "expected"),
    [("m", ".onnx", "m.onnx"), ("final.v1", ".onnx", "final.v1.onnx"), ("d/final.v2", ".json", "d/final.v2.json")],
)
def test_with_suffix_keeps_dots_in_the_stem(stem: str, suffix: str, expected: str) -> None:
    assert with_suffix(stem, suffix) == Path(expected)


def test_leftovers_of_a_writer_killed_mid_write_are_swept_but_a_live_writers_are_kept(tmp_path) -> None:
    """kill -9 during a write left hidden temporaries behind for good (a checkpoint's is as large as the model)."""
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    stale_file = tmp_path / f".m.json.{dead.pid}.abcdefgh.json"
    stale_dir = tmp_path / f".mnist-study-{dead.pid}.abcdefgh"
    live_file = tmp_path / f".m.json.{os.getpid()}.zyxwvuts.json"
    stale_file.write_text("half")
    stale_dir.mkdir()
    (stale_dir / "m.onnx").write_text("half")
    live_file.write_text("being written")
    write_text(tmp_path / "m.json", "{}")
    assert not stale_file.exists() and live_file.exists()
    with staged(tmp_path) as stage:
        (stage / "r.txt").write_text("r")
    assert not stale_dir.exists() and (tmp_path / "r.txt").read_text() == "r"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live_file.name, "m.json", "r.txt"])
