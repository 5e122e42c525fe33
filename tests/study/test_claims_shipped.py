"""The shipped designed studies: the claims table in docs/claims.md is exactly what `mnist-study report
--designs all` computes from the claims_* studies in studies.db (regenerate: bash scripts/claims_docs.sh)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from study.analysis.design_claims import claims_markdown
from study.analysis.design_report import DesignStudy, load_design_studies, storage_claims
from study.designs import DESIGNS, spec_json
from study.storage import open_storage

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- design-claims:begin -->", "<!-- design-claims:end -->"
PREFIX = "claims_"


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> list[DesignStudy]:
    """The claims_* studies of the committed studies.db, read from a copy (tests never touch the shipped file)."""
    copy = tmp_path_factory.mktemp("shipped") / "studies.db"
    shutil.copyfile(ROOT / "studies.db", copy)
    found = load_design_studies(open_storage(f"sqlite:///{copy}", create=False), prefix=PREFIX)
    if not found:
        pytest.skip(
            "studies.db holds no claims_* design studies yet: ship them with "
            "`python scripts/ship_claims.py sqlite:///out/claims.db sqlite:///studies.db`, then "
            "`bash scripts/claims_docs.sh`"
        )
    return found


def _block() -> str:
    doc = (ROOT / "docs" / "claims.md").read_text()
    assert BEGIN in doc and END in doc, "docs/claims.md lacks the design-claims markers"
    return doc.split(BEGIN, 1)[1].split(END, 1)[0]


def test_every_preregistered_design_is_shipped_finished_and_as_declared(studies: list[DesignStudy]) -> None:
    by_name = {s.design.name: s for s in studies}
    assert sorted(by_name) == sorted(d.name for d in DESIGNS)
    for d in DESIGNS:
        s = by_name[d.name]
        stored = s.design
        assert spec_json(stored) == spec_json(d) and not s.post_hoc, d.name
        assert s.finished == s.planned, (d.name, s.states)  # every cell x seed ran (COMPLETE or PRUNED)
        assert len(s.curves) == s.finished, d.name  # ... and carries its learning curves


def test_docs_claims_table_is_what_the_report_computes(studies: list[DesignStudy]) -> None:
    block = _block()
    table = claims_markdown(storage_claims(studies))
    assert block.strip().startswith(table.strip()), "docs/claims.md is stale: run bash scripts/claims_docs.sh"
    for png in re.findall(r"\]\((claim_[^)]+\.png)\)", block):  # the figures it shows exist
        path = ROOT / "docs" / png
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
