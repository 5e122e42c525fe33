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
