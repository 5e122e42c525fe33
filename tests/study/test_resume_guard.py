"""The resume guard: a study is only extended with trials trained alike on the same data. Studies made
before settings were recorded (the shipped `reference`) get them derived from their trials' configs;
a CSV study is tied to its files' content, not their names. The shipped studies.db is only copied."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest

from mnist_fc.data import N_PIXELS, write_csv
from study.cli import main
from study.errors import UserError
from study.safety import check_study_settings
from study.storage import open_storage

REPO = Path(__file__).resolve().parents[2]
FAST = ["--trials", "1", "--epochs", "2", "--eval-every", "1", "--train-size", "100", "--device", "cpu"]


@pytest.fixture
def reference(tmp_path: Path) -> str:
    shutil.copy(REPO / "studies.db", tmp_path / "ref.db")
    return f"sqlite:///{tmp_path / 'ref.db'}"


def _attrs(url: str) -> dict:
    return optuna.load_study(study_name="reference", storage=open_storage(url, create=False)).user_attrs


def test_issue_reference_study_refuses_epochs_2(reference: str, capsys: pytest.CaptureFixture) -> None:
    before = _attrs(reference)
    rc = main(["run", "--storage", reference, "--study-name", "reference", "--epochs", "2", "--trials", "1",
               "--device", "cpu", "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "epochs 400 (this run: 2)" in err and len(err.strip().splitlines()) == 1, err
    assert _attrs(reference) == before  # no settings recorded by the refused run
    n = len(optuna.load_study(study_name="reference", storage=open_storage(reference, create=False)).trials)
    assert n == 240


SETTINGS = {"epochs": 400, "eval_every": 20, "train_size": 1000, "validation_size": 10_000, "data": "embedded"}


@pytest.mark.parametrize(
    ("change", "seed"),
    [
        ({"epochs": 401}, 0),
        ({"eval_every": 10}, 0),
        ({"train_size": 2000}, 0),
        ({"data": "csv"}, 0),
        ({}, 1),
        ({"validation_size": 5000}, 0),
    ],
)
def test_derived_settings_refuse_any_difference(reference: str, change: dict, seed: int) -> None:
    from mnist_fc.config import DataConfig, RunConfig

    study = optuna.load_study(study_name="reference", storage=open_storage(reference))
    cfg = RunConfig(data=DataConfig(train_size=1000))
    with pytest.raises(UserError, match="reference"):
        check_study_settings(study, {**SETTINGS, **change}, cfg=cfg, seed=seed)
    assert "settings" not in study.user_attrs
    check_study_settings(study, SETTINGS, cfg=cfg, seed=0)  # the original command still works ...
    recorded = optuna.load_study(study_name="reference", storage=open_storage(reference)).user_attrs["settings"]
    assert recorded["epochs"] == 400 and recorded["dataset"] == "mnist-embedded"  # ... and is now recorded


def _csv(path: Path, *, bump: int = 0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n = 10_000 + 200
    x = rng.integers(0, 2, (n, N_PIXELS))
    x[0, 0] += bump
    write_csv(path, x, np.arange(n) % 10)
    return path


def test_csv_study_refuses_other_training_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    a, test = _csv(tmp_path / "a.csv"), _csv(tmp_path / "test.csv", seed=1)
    base = ["run", "--storage", url, "--study-name", "c", *FAST, "--no-progress", "--test-csv", str(test)]
    assert main([*base, "--train-csv", str(a)]) == 0
    capsys.readouterr()
    copy = shutil.copy(a, tmp_path / "same-content.csv")  # another name, same bytes: the same data
    assert main([*base, "--train-csv", str(copy)]) == 0
    capsys.readouterr()
    _csv(a, bump=1)  # one pixel changed under the same name
    assert main([*base, "--train-csv", str(a)]) == 2
    err = capsys.readouterr().err
    assert "train_sha256" in err and len(err.strip().splitlines()) == 1, err
    b = _csv(tmp_path / "b.csv", bump=1)
    assert main([*base, "--train-csv", str(b)]) == 2
    trials = optuna.load_study(study_name="c", storage=open_storage(url, create=False)).trials
    assert len(trials) == 2


def test_old_csv_study_without_hashes_refuses_another_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A CSV study recorded by the version before hashes: its trials' configs still name the file."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    a, test = _csv(tmp_path / "a.csv"), _csv(tmp_path / "test.csv", seed=1)
    base = ["run", "--storage", url, "--study-name", "c", *FAST, "--no-progress", "--test-csv", str(test)]
    assert main([*base, "--train-csv", str(a)]) == 0
    study = optuna.load_study(study_name="c", storage=open_storage(url))
    old = {k: study.user_attrs["settings"][k] for k in ("epochs", "eval_every", "train_size", "data")}
    study.set_user_attr("settings", old)
    capsys.readouterr()
    b = _csv(tmp_path / "b.csv", bump=1)
    assert main([*base, "--train-csv", str(b)]) == 2
    assert "training CSV" in capsys.readouterr().err


def test_a_small_csv_with_its_own_validation_size(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A CSV of fewer than 10,001 rows needs a smaller held-out part; the study keeps the size it ran with."""
    rng = np.random.default_rng(0)
    small, test = tmp_path / "small.csv", tmp_path / "test.csv"
    write_csv(small, rng.integers(0, 256, (1200, N_PIXELS)), np.arange(1200) % 10)
    write_csv(test, rng.integers(0, 256, (100, N_PIXELS)), np.arange(100) % 10)
    url = f"sqlite:///{tmp_path / 's.db'}"
    base = ["run", "--storage", url, "--study-name", "small", "--trials", "1", "--epochs", "2", "--eval-every", "1",
            "--device", "cpu", "--no-progress", "--train-csv", str(small), "--test-csv", str(test)]  # fmt: skip
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "1200 training rows" in err and "--validation-size" in err and len(err.strip().splitlines()) == 1, err
    assert main([*base, "--validation-size", "200"]) == 0
    capsys.readouterr()
    study = optuna.load_study(study_name="small", storage=open_storage(url, create=False))
    (trial,) = study.trials
    assert trial.user_attrs["config"]["data"]["validation_size"] == 200
    assert study.user_attrs["settings"]["validation_size"] == 200 and study.user_attrs["settings"]["train_size"] == 1000
    assert main([*base, "--validation-size", "300"]) == 2  # another split: refused, nothing added
    err = capsys.readouterr().err
    assert "validation_size 200 (this run: 300)" in err, err
    assert main([*base, "--validation-size", "200"]) == 0  # the same split resumes
    assert len(optuna.load_study(study_name="small", storage=open_storage(url, create=False)).trials) == 2
