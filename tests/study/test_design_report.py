"""`mnist-study report --designs`: real tiny design studies (run by the design machinery), the claims
table over all of them, per-claim figures drawn in a real browser, and the shipping script."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest

from mnist_fc.config import RunConfig, TrainConfig
from study.analysis import design_claims as dc
from study.analysis import design_report as dr
from study.analysis import stats as st
from study.analysis.frames import trials_frame
from study.cli import main
from study.design_spec import Design, Prediction
from study.designs import DESIGNS, spec_json
from study.errors import UserError
from study.runner.designs import open_design_study, run_design
from study.storage import open_storage

ROOT = Path(__file__).resolve().parents[2]

WIDTH = Design(
    name="tiny_width",
    question="tiny: width x lr",
    factors={"n_units_l1": (16, 64), "lr": (0.3, 3.0)},
    seeds=(0, 1, 2),
    epochs=30,
    train_size=200,
    predictions=(
        Prediction(
            "t1", "wider: longer plateau at lr 3", "plateau_epochs", "trend", "n_units_l1", 1, 0.3, where={"lr": 3.0}
        ),
        Prediction("t2", "width effect differs by lr", "plateau_epochs", "interaction", "n_units_l1", 1, 0.3, by="lr"),
        Prediction("t3", "lr 3 beats lr 0.3", "val_accuracy", "mannwhitney", "lr", 1, 0.3, compare=(3.0, 0.3)),
    ),
)
STD = Design(
    name="tiny_std",
    question="tiny: init std",
    factors={"init_std": (0.1, 1.0)},
    seeds=(0, 1, 2),
    epochs=30,
    train_size=200,
    predictions=(
        Prediction(
            "t4",
            "std 1 leaves the plateau sooner",
            "plateau_epochs",
            "logrank",
            "init_std",
            -1,
            0.4,
            compare=(1.0, 0.1),
        ),
        Prediction("t5", "std saturates", "saturation_init", "trend", "init_std", 1, 0.3, primary=False),
    ),
)
FIGURES = [f"claim_t{i}" for i in range(1, 6)]


@pytest.fixture(scope="module")
def storage_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two tiny designs, enqueued and trained by `run_design` (batched), into a real SQLite file."""
    url = f"sqlite:///{tmp_path_factory.mktemp('designs') / 'claims.db'}"
    base = RunConfig(train=TrainConfig(device="cpu", precision="fp32"))
    for design in (WIDTH, STD):
        run_design(design, storage_url=url, prefix="claims_", base=base, batch_trials=4)
    return url


@pytest.fixture(scope="module")
def report_dir(storage_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--designs", "all", "--storage", storage_url, "--out", str(out), "--images"]) == 0
    return out


def _expected_table(storage_url: str) -> pd.DataFrame:
    """The table computed apart from the report: the test's own Design objects and trials_frame."""
    frames = {
        d.name: trials_frame(optuna.load_study(study_name=f"claims_{d.name}", storage=storage_url))
        for d in (WIDTH, STD)
    }
    return dc.claims_table([WIDTH, STD], frames)


def test_claims_csv_and_md_are_the_claims_table_over_every_design_study(report_dir: Path, storage_url: str) -> None:
    want = _expected_table(storage_url)
    got = pd.read_csv(report_dir / "claims.csv", keep_default_na=False, na_values=[""])
    assert got["claim"].tolist() == ["t1", "t2", "t3", "t4", "t5"]
    assert got["verdict"].tolist() == want["verdict"].tolist()
    assert got["n"].tolist() == want["n"].tolist() and (got["n"] > 0).all()
    assert got["p_holm"].to_numpy() == pytest.approx(want["p_holm"].to_numpy(), nan_ok=True)
    primary = want["primary"].astype(bool)
    assert want.loc[primary, "p_holm"].to_numpy() == pytest.approx(
        st.holm(want.loc[primary, "p_value"].to_numpy()), nan_ok=True
    )  # one Holm family across both designs
    assert (report_dir / "claims.md").read_text() == dc.claims_markdown(want)


def test_page_has_the_claims_table_and_every_claim_figure_as_png_and_svg(report_dir: Path) -> None:
    page = (report_dir / "index.html").read_text()
    assert "<script src=" not in page and page.count("Plotly.newPlot") == len(FIGURES)
    for header in ("p Holm", "effect [95% CI]", "verdict", "the article says"):
        assert f"<th>{header}</th>" in page, header
    for name in FIGURES:
        assert f'id="plot-{name}"' in page and f"id='{name}'" in page, name
        png = report_dir / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, name
        assert b"<svg" in (report_dir / f"{name}.svg").read_bytes()[:500], name
    assert "Design tiny_width (claims_tiny_width)" in page and "12 of 12 trials finished" in page
    assert "p Holm" in page.split("id='claim_t4'")[1][:600]  # the row's verdict line under its figure


def test_a_design_study_named_with_study_name_reports_its_figures_and_the_whole_table(
    storage_url: str, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "r"
    argv = ["report", "--study-name", "claims_tiny_std", "--storage", storage_url, "--out", str(out), "--no-images"]
    assert main(argv) == 0
    page = (out / "index.html").read_text()
    assert 'id="plot-claim_t4"' in page and 'id="plot-claim_t5"' in page and 'id="plot-claim_t1"' not in page
    assert len(pd.read_csv(out / "claims.csv")) == 5  # the Holm family is not narrowed by what is shown
    assert "report of 2 design studies" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--designs", "nope"], "no design study for nope"),
        (["--designs", "all", "--study-name", "claims_tiny_std"], "exclude each other"),
        (["--designs", "all", "--compare", "x"], "ordinary studies"),
        (["--designs", "all", "--study-prefix", "other_"], "no design studies"),
        (["--designs", "all", "--study-prefix", "claims_w"], "no design studies"),  # not claims_width_lr's prefix
    ],
)
def test_bad_design_report_requests_fail_in_one_line(
    storage_url: str, tmp_path: Path, capsys, extra: list[str], message: str
) -> None:
    out = tmp_path / "r"
    assert main(["report", "--storage", storage_url, "--out", str(out), "--no-images", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err
    assert not (out / "index.html").exists()


def test_every_preregistered_design_round_trips_through_its_stored_declaration() -> None:
    for design in DESIGNS:
        assert dr.design_from_spec(spec_json(design)) == design, design.name


def test_one_preregistered_study_brings_the_whole_preregistered_family_and_flags_a_changed_declaration(
    tmp_path: Path,
) -> None:
    """A storage with only a changed `init_std` study: judged as stored, flagged post hoc, and every other
    pre-registered design still counts in Holm (rows 'no data')."""
    storage = open_storage(f"sqlite:///{tmp_path / 'p.db'}")
    changed = dataclasses.replace(DESIGNS[1], seeds=(0, 1))
    open_design_study(storage, changed, "claims_")
    studies = dr.load_design_studies(storage, prefix="claims_")
    assert [s.design for s in studies] == [changed] and studies[0].post_hoc
    table = dr.storage_claims(studies)
    assert len(table) == sum(len(d.predictions) for d in DESIGNS)
    assert (table["verdict"] == st.NO_DATA).all()
    marked = table["note"].fillna("").str.startswith("post hoc")  # the Markdown/CSV the docs paste say it too
    assert set(table.loc[marked, "design"]) == {changed.name} and marked.sum() == len(changed.predictions)
    assert "post hoc" in dc.claims_markdown(table)
    with pytest.raises(UserError, match="no design study for width_lr"):
        dr.build_design_report(storage, designs=["width_lr"])
    report = dr.build_design_report(storage)
    assert not report.figures.figures  # nothing finished: nothing to draw ...
    assert any("differs from study/designs.py" in w for w in report.warnings)  # ... and the page says why
    assert any("0 of 6 trials finished" in w for w in report.warnings)


def test_design_report_page_draws_every_figure_in_a_real_browser(report_dir: Path, tmp_path: Path) -> None:
    from tests.study.test_report import probe_page

    probe, _, _ = probe_page(report_dir / "index.html", tmp_path)
    assert sorted(probe["plots"]) == sorted(f"plot-{n}" for n in FIGURES)
    for div, p in probe["plots"].items():
        assert p["div"][0] > 500 and p["div"][1] > 300, (div, p)
        assert p["svgs"] >= 1 and p["containers"] == 1, (div, p)
        assert p["marks"] >= 4, (div, p)  # median lines and bands of several levels
    assert all(n_svg == 0 for _, n_svg in probe["headings"]), probe["headings"]


def _ship(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ship_claims.py"), *args], capture_output=True, text=True, timeout=300
    )


def test_ship_claims_copies_every_design_study_with_its_curves_and_refuses_to_overwrite(
    storage_url: str, tmp_path: Path
) -> None:
    dst = f"sqlite:///{tmp_path / 'shipped.db'}"
    done = _ship(storage_url, dst)
    assert done.returncode == 0, done.stderr
    assert "claims_tiny_std" in done.stdout and "claims_tiny_width" in done.stdout
    again = _ship(storage_url, dst)
    assert again.returncode == 2 and again.stderr.strip().count("\n") == 0 and "--replace" in again.stderr
    assert _ship(storage_url, dst, "--replace").returncode == 0
    # The copy reports exactly like the original (curves travelled with the trials).
    original = dr.build_design_report(open_storage(storage_url, create=False))
    copy = dr.build_design_report(open_storage(dst, create=False))
    pd.testing.assert_frame_equal(original.claims, copy.claims)
    assert list(copy.figures.figures) == FIGURES
    assert all(len(s.curves) == s.finished for s in copy.studies)


def test_ship_claims_refuses_unfinished_studies_and_writes_nothing(tmp_path: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    storage = open_storage(src)
    study = open_design_study(storage, STD, "claims_")
    study.enqueue_trial({"init_std": 0.1, "seed": 0})
    dst_file = tmp_path / "dst.db"
    done = _ship(src, f"sqlite:///{dst_file}")
    assert done.returncode == 2 and "still waiting or running" in done.stderr and not dst_file.exists()
