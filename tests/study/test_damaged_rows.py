"""Rows of a study changed inside the database (bytes SQLite's page checks cannot see, or edits by other
tools): every command says which study, trial and attribute in one line, exit 2, instead of a bug."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from study.cli import main

RUN = ["--trials", "2", "--epochs", "3", "--train-size", "200", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("pristine") / "s.db"
    assert main(["run", "--storage", f"sqlite:///{db}", "--study-name", "s", *RUN]) == 0
    return db


def _damaged(pristine: Path, tmp_path: Path, sql: str, *args: object) -> str:
    db = tmp_path / "s.db"
    shutil.copy(pristine, db)
    with sqlite3.connect(db) as conn:
        assert conn.execute(sql, args).rowcount >= 1, sql
    return f"sqlite:///{db}"


def _one_line(argv: list[str], capsys: pytest.CaptureFixture, *words: str) -> None:
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "bug" not in err, err
    assert all(w in err for w in words), err


CHUNK = "UPDATE trial_system_attributes SET value_json = ? WHERE key = 'mnist_study:curves:0'"
COUNT = "UPDATE trial_system_attributes SET value_json = ? WHERE key = 'mnist_study:curves'"


@pytest.mark.parametrize(
    ("sql", "value", "words"),
    [
        (CHUNK, json.dumps(base64.b64encode(b"\x93NUMPY garbage" * 9).decode()), "curves are damaged"),
        (CHUNK, json.dumps("not base64!"), "not base64"),
        (COUNT, "-1", "chunk count -1"),
        (COUNT, "99999999", "chunk count"),
    ],
)
def test_damaged_curves(pristine: Path, tmp_path: Path, capsys, sql: str, value: str, words: str) -> None:
    url = _damaged(pristine, tmp_path, sql, value)
    _one_line(["report", "--storage", url, "--study-name", "s", "--out", str(tmp_path / "r"), "--no-images"],
              capsys, "trial #", words)  # fmt: skip
    assert not (tmp_path / "r").exists()


def test_damaged_settings_refuse_a_resume(pristine: Path, tmp_path: Path, capsys) -> None:
    url = _damaged(pristine, tmp_path, "UPDATE study_user_attributes SET value_json = ? WHERE key = 'settings'",
                   json.dumps("garbage"))  # fmt: skip
    _one_line(["run", "--storage", url, "--study-name", "s", *RUN], capsys, "settings are damaged")
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("SELECT count(*) FROM trials").fetchone() == (2,)


@pytest.mark.parametrize("config", ["garbage", {"model": {"n_units_l1": 3, "wings": 2}}, [1, 2]])
def test_a_damaged_config_refuses_final(pristine: Path, tmp_path: Path, capsys, config: object) -> None:
    url = _damaged(pristine, tmp_path, "UPDATE trial_user_attributes SET value_json = ? WHERE key = 'config'",
                   json.dumps(config))  # fmt: skip
    out = tmp_path / "m"
    _one_line(["final", "--storage", url, "--study-name", "s", "--seeds", "0", "--out", str(out)], capsys, "config")
    assert not out.exists()


def test_a_param_outside_its_space_is_drawn_apart(pristine: Path, tmp_path: Path, capsys) -> None:
    """An lr of 1e9 written by hand made the report's bucket sort crash on a NaN label."""
    url = _damaged(pristine, tmp_path, "UPDATE trial_params SET param_value = 1e9 WHERE param_name = 'lr'")
    assert main(["report", "--storage", url, "--study-name", "s", "--out", str(tmp_path / "r"), "--no-images"]) == 0
    assert "outside the space" in (tmp_path / "r" / "index.html").read_text()


@pytest.mark.parametrize(
    ("sql", "value"),
    [
        ("UPDATE trial_user_attributes SET value_json = ? WHERE key = 'config'", '{"model": [1,2'),  # not JSON
        ("UPDATE trial_values SET value = ?", None),  # a COMPLETE trial without its value
        ("UPDATE trial_params SET distribution_json = ?", "{broken"),
    ],
    ids=["config-not-json", "value-null", "distribution-not-json"],
)
def test_a_damaged_row_refuses_run_in_one_line(pristine: Path, tmp_path: Path, capsys, sql: str, value) -> None:
    """`run` (and `design`) opened the study through Optuna's create_study and ended 'bug: JSONDecodeError' or
    'bug: AssertionError' (exit 1) on rows that best, export, report and final named as damaged."""
    url = _damaged(pristine, tmp_path, sql, value)
    _one_line(["run", "--storage", url, "--study-name", "s", *RUN], capsys, "damaged")
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("SELECT count(*) FROM trials").fetchone() == (2,)  # nothing written


def test_unreadable_curve_attributes_are_not_called_dropped(pristine: Path, tmp_path: Path, capsys) -> None:
    url = _damaged(pristine, tmp_path, COUNT, json.dumps("!!!notbase64"))
    _one_line(["report", "--storage", url, "--study-name", "s", "--out", str(tmp_path / "r"), "--no-images"],
              capsys, "unreadable")  # fmt: skip
