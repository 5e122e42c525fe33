"""The real `mnist-study` command, run as a subprocess, with real SQLite files."""

import json
import math
import sqlite3

import optuna
import pytest

from study.objective import RESULT_ATTRS

TINY = ("--epochs", "20", "--train-size", "500", "--device", "cpu", "--no-progress")

CURVE_COUNT = "SELECT COUNT(*) FROM trial_system_attributes WHERE key = 'mnist_study:curves'"


def test_help_has_examples(cli):
    for cmd in ("run", "train", "best", "dashboard"):
        r = cli(cmd, "--help")
        assert r.returncode == 0 and "example" in r.stdout, cmd


def test_run_tiny_study_then_extend(cli, tmp_path):
    r = cli("run", "--trials", "3", "--storage", "sqlite:///x.db", "--study-name", "s", "--seed", "1", *TINY)
    assert r.returncode == 0, r.stderr
    assert "best trial #" in r.stdout and "test accuracy" in r.stdout
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'x.db'}")
    assert len(study.trials) == 3
    first_params = [t.params for t in study.trials]
    for t in study.trials:
        assert set(RESULT_ATTRS) <= set(t.user_attrs), t.user_attrs.keys()
        assert t.user_attrs["epochs"] <= 20 and t.user_attrs["device"] == "cpu"
        assert t.user_attrs["config"]["data"]["train_size"] == 500
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.value == t.user_attrs["val_accuracy"] and t.intermediate_values
    # Running again with the same name adds trials and loses nothing.
    r = cli("run", "--trials", "2", "--storage", "sqlite:///x.db", "--study-name", "s", "--seed", "2", *TINY)
    assert r.returncode == 0, r.stderr
    again = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'x.db'}")
    assert len(again.trials) == 5
    assert [t.params for t in again.trials[:3]] == first_params
    with sqlite3.connect(tmp_path / "x.db") as conn:
        rows = conn.execute(CURVE_COUNT).fetchone()[0]  # one set of curves per trial, in its system attributes
    assert rows == 5


def test_best_json_and_text(cli, tmp_path):
    assert cli("run", "--trials", "2", "--storage", "sqlite:///b.db", "--study-name", "b", *TINY).returncode == 0
    r = cli("best", "--storage", "sqlite:///b.db", "--study-name", "b", "--json")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    study = optuna.load_study(study_name="b", storage=f"sqlite:///{tmp_path / 'b.db'}")
    assert rec["trial_number"] == study.best_trial.number and rec["params"] == study.best_trial.params
    assert 0 <= rec["attrs"]["test_accuracy"] <= 1
    text = cli("best", "--storage", "sqlite:///b.db", "--study-name", "b")
    assert f"best trial #{study.best_trial.number}" in text.stdout


def test_train_article_preset_json(cli):
    r = cli("train", "--preset", "article", "--epochs", "30", "--json", "--device", "cpu", "--train-size", "2000")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("train_loss", "train_accuracy", "val_accuracy", "test_accuracy", "epochs", "seconds", "config"):
        assert key in out
    assert out["epochs"] == 30 and abs(out["train_loss"] - math.log(10)) < 0.05
    assert out["config"]["model"]["init_mean"] == 0.01 and out["config"]["train"]["lr"] == 0.1
    assert r.stderr.startswith("Epoch 1, Loss 2.3")  # article-style progress, kept off stdout with --json


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--trials", "0"), "--trials: 0 must be >= 1"),
        (("run", "--trials", "-3"), "--trials"),
        (("run", "--epochs", "ten"), "not a valid int"),
        (("run", "--space", "nope"), "invalid choice"),
        (("run", "--device", "tpu"), "invalid choice"),
        (("train", "--normalization", "zscore"), "invalid choice"),
        (("train", "--lr", "0"), "must be > 0"),
        (("run", "--storage", "nosuchdb://x"), "storage"),
        (("run", "--storage", "sqlite:////no/such/dir/x.db"), "does not exist"),
        (
            ("run", "--storage", "postgresql+psycopg://u:hunter2@127.0.0.1:9/db", "--train-size", "100"),
            "cannot open storage",
        ),
        (("run", "--train-csv", "missing.csv", "--test-csv", "missing2.csv"), "CSV file not found"),
        (("run", "--train-csv", "only.csv"), "go together"),
        (("best", "--storage", "sqlite:///none.db"), "no study database"),
    ],
)
def test_bad_input_one_line_no_traceback(cli, tmp_path, args, message):
    r = cli(*args)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert message in lines[0] and "Traceback" not in r.stderr
    assert "hunter2" not in r.stderr + r.stdout
    assert not list(tmp_path.glob("*.db")) or args[0] == "best"


def test_malformed_csv_leaves_no_study(cli, tmp_path):
    (tmp_path / "train.csv").write_text("5," + ",".join(["0"] * 783) + "\n")
    (tmp_path / "test.csv").write_text("5," + ",".join(["0"] * 784) + "\n")
    r = cli("run", "--train-csv", "train.csv", "--test-csv", "test.csv", "--storage", "sqlite:///c.db", *TINY)
    assert r.returncode == 2 and "784" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c.db").exists()


def test_space_mismatch_refused(cli, tmp_path):
    assert cli("run", "--trials", "1", "--storage", "sqlite:///m.db", "--study-name", "m", *TINY).returncode == 0
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    study = optuna.load_study(study_name="m", storage=storage)
    assert study.user_attrs["space"] == "article"
