"""Studies this tool did not make in one storage with its own: a minimised, a multi-objective and a plain
Optuna study are refused in one line by the commands that read results, never read as if they were ours."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import optuna
import pytest

from study.cli import main

QUICK_RUN = ["--trials", "1", "--epochs", "2", "--train-size", "100", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('foreign') / 's.db'}"
    assert main(["run", "--storage", url, "--study-name", "ours", *QUICK_RUN]) == 0
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for name, kw in {
        "minimise": {"direction": "minimize"},
        "multi": {"directions": ["maximize", "minimize"]},
        "plain": {"direction": "maximize"},
    }.items():
        study = optuna.create_study(study_name=name, storage=url, **kw)
        n = len(study.directions)
        study.optimize(lambda t, n=n: (t.suggest_float("x", 0, 1),) * n, n_trials=2)
    return url


@pytest.mark.parametrize("name", ["minimise", "multi", "plain"])
@pytest.mark.parametrize("command", ["best", "final", "report", "export"])
def test_a_foreign_study_is_one_line(
    storage: str, tmp_path: Path, capsys: pytest.CaptureFixture, name: str, command: str
) -> None:
    argv = [command, "--storage", storage, "--study-name", name]
    argv += {"report": ["--out", str(tmp_path / "r")], "export": ["--out", str(tmp_path / "e.csv")]}.get(command, [])
    argv += ["--seeds", "0", "--out", str(tmp_path / "m")] if command == "final" else []
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err.strip()
    if command == "export" and name == "plain":  # a plain Optuna study's trials export like any other
        assert rc == 0 and (tmp_path / "e.csv").is_file(), err
        return
    assert rc == 2 and len(err.splitlines()) == 1 and "bug" not in err, err
    expected = "not made by mnist-study" if name == "plain" else "not a study of mnist-study"
    if name == "plain" and command == "report":
        expected = "lacks the article space's params"
    assert expected in err, err
    assert not any(tmp_path.iterdir())


def test_best_json_is_valid_json_when_a_stored_number_is_not_finite(
    storage: str, capsys: pytest.CaptureFixture
) -> None:
    with sqlite3.connect(storage.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE trial_user_attributes SET value_json = 'Infinity' WHERE key = 'seconds'")
    assert main(["best", "--storage", storage, "--study-name", "ours", "--json"]) == 0
    out = capsys.readouterr().out
    record = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert record["attrs"]["seconds"] is None and 0 <= record["value"] <= 1


@pytest.mark.parametrize("name", ["minimise", "multi"])
def test_run_and_design_refuse_to_add_trials_to_a_foreign_study(
    storage: str, capsys: pytest.CaptureFixture, name: str
) -> None:
    """`run` used to add trials to a minimised study and call its worst trial the best."""
    before = len(optuna.load_study(study_name=name, storage=storage).trials)
    prefix = f"{name}_"  # the design's study is PREFIX + design name: make one of that name foreign too
    optuna.create_study(study_name=f"{prefix}init_mean", storage=storage, direction="minimize")
    runs = [
        ["run", "--study-name", name, *QUICK_RUN, "--storage", storage],
        ["design", "init_mean", "--study-prefix", prefix, "--storage", storage, "--device", "cpu"],
    ]
    for argv in runs:
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and "not a study of mnist-study" in err, err
    assert len(optuna.load_study(study_name=name, storage=storage).trials) == before


def test_parquet_export_of_a_param_with_mixed_choice_types(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """pyarrow refused a column of None / 128 / "full" (a bug exit); such a column is written as text."""
    import pandas as pd

    url = f"sqlite:///{tmp_path / 'm.db'}"
    study = optuna.create_study(study_name="mixed", storage=url, direction="maximize")
    for choice in (None, 128, "full"):
        study.enqueue_trial({"batch": choice})
    study.optimize(lambda t: float(t.suggest_categorical("batch", [None, 128, "full"]) == 128), n_trials=3)
    assert main(["export", "--storage", url, "--study-name", "mixed", "--out", str(tmp_path / "m.parquet")]) == 0
    column = next(c for c in pd.read_parquet(tmp_path / "m.parquet").columns if "batch" in c)
    values = list(pd.read_parquet(tmp_path / "m.parquet")[column])
    assert sorted(v for v in values if isinstance(v, str)) == ["128", "full"] and len(values) == 3


def test_export_keeps_its_own_columns_when_params_or_attributes_share_their_names(tmp_path: Path) -> None:
    """A trial with params `number`, `state`, `value` came out as number 3.5, state "x", value NaN."""
    import pandas as pd

    url = f"sqlite:///{tmp_path / 'n.db'}"
    study = optuna.create_study(study_name="names", storage=url, direction="maximize")
    dists = {
        "number": optuna.distributions.FloatDistribution(0, 10),
        "state": optuna.distributions.CategoricalDistribution(["x", "y"]),
        "value": optuna.distributions.FloatDistribution(0, 1),
    }
    study.add_trial(optuna.trial.create_trial(params={"number": 3.5, "state": "x", "value": 0.25},
                                              distributions=dists, value=0.5,
                                              user_attrs={"config_json": "mine", "number": 7}))  # fmt: skip
    assert main(["export", "--storage", url, "--study-name", "names", "--out", str(tmp_path / "n.csv")]) == 0
    row = pd.read_csv(tmp_path / "n.csv").iloc[0]
    assert (row["number"], row["state"], row["value"]) == (0, "COMPLETE", 0.5)
    assert (row["param_number"], row["param_state"], row["param_value"]) == (3.5, "x", 0.25)
    assert row["attr_config_json"] == "mine" and row["attr_number"] == 7


def test_run_adds_nothing_to_a_maximised_study_made_elsewhere(storage: str, capsys: pytest.CaptureFixture) -> None:
    """`plain` is maximised, so its direction passes; its trials hold no run configuration."""
    db = storage.removeprefix("sqlite:///")
    before = list(sqlite3.connect(db).iterdump())
    assert main(["run", "--storage", storage, "--study-name", "plain", *QUICK_RUN]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "was not made by mnist-study: its trial #0" in err, err
    assert list(sqlite3.connect(db).iterdump()) == before  # not even the space/settings attributes
