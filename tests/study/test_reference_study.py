"""The shipped reference study: the claims table in docs/analysis.md is exactly what `mnist-study report` computes."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import optuna
import pytest

from study.analysis.claims import claims_markdown, evaluate_claims
from study.analysis.frames import trials_frame
from study.storage import load_study, open_storage

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = "reference"
BEGIN, END = "<!-- claims-table:begin -->", "<!-- claims-table:end -->"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    """The committed studies.db, opened from a copy so that tests never touch the shipped file."""
    copy = tmp_path_factory.mktemp("ref") / "studies.db"
    shutil.copyfile(ROOT / "studies.db", copy)
    return load_study(open_storage(f"sqlite:///{copy}", create=False), REFERENCE)


def test_reference_study_has_200_complete_article_trials(reference: optuna.Study) -> None:
    done = reference.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) >= 200
    assert reference.user_attrs.get("space") == "article"
    assert all("plateau_epochs" in t.user_attrs for t in done)


def test_readme_claims_table_is_what_the_report_computes(reference: optuna.Study) -> None:
    readme = (ROOT / "docs" / "analysis.md").read_text()
    assert BEGIN in readme and END in readme
    shipped = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert shipped == claims_markdown(evaluate_claims(trials_frame(reference))).strip()


def test_studies_db_file_alone_holds_the_trials() -> None:
    """Read with immutable=1 (any -wal file ignored): the checkpointed .db must hold every trial."""
    with sqlite3.connect(f"file:{ROOT / 'studies.db'}?immutable=1", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (n,) = conn.execute(
            "SELECT count(*) FROM trials JOIN studies USING (study_id) WHERE study_name = ? AND state = 'COMPLETE'",
            (REFERENCE,),
        ).fetchone()
    assert n >= 200


def test_export_of_the_reference_extended_by_a_run_writes_what_report_reads(tmp_path, cli) -> None:
    """The reference (measures version 1) extended by one `run` trial: report recomputed every oscillation in
    version 2, while export wrote 240 version-1 values beside one version-2 value in the same column."""
    import pandas as pd

    shutil.copyfile(ROOT / "studies.db", tmp_path / "s.db")
    r = cli("run", "--study-name", REFERENCE, "--storage", "sqlite:///s.db", "--sampler", "random", "--trials", "1",
            "--epochs", "400", "--train-size", "1000", "--eval-every", "20", "--seed", "0", "--device", "cpu",
            "--no-progress", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = cli("export", "--study-name", REFERENCE, "--storage", "sqlite:///s.db", "--out", "t.csv", cwd=tmp_path)
    assert r.returncode == 0 and "recomputed to the current version" in r.stdout, r.stdout + r.stderr
    df = pd.read_csv(tmp_path / "t.csv")
    measured = df[df["plateau_epochs"].notna()]
    assert len(measured) >= 201 and measured["measures_version"].notna().all()
    assert (measured["oscillation"] == 0).sum() > 100  # version 2: 0 for a loss that only fell; version 1 never 0


def test_a_copy_of_the_reference_made_by_optuna_says_where_its_curves_are(tmp_path, cli) -> None:
    """optuna.copy_study of the shipped reference: its curves live in the table mnist_study_curves, which Optuna
    does not copy; report said a tool 'dropped' system attributes the study never had."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    shutil.copyfile(ROOT / "studies.db", tmp_path / "s.db")
    optuna.copy_study(from_study_name=REFERENCE, from_storage=f"sqlite:///{tmp_path / 's.db'}",
                      to_storage=f"sqlite:///{tmp_path / 'copy.db'}")  # fmt: skip
    r = cli("report", "--study-name", REFERENCE, "--storage", "sqlite:///copy.db", "--out", "r", "--no-images",
            cwd=tmp_path)  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
    assert "mnist_study_curves" in r.stderr and "copy_study" in r.stderr
