"""`mnist-study report` and `export` on a small real study (real SQLite, real training, real Chromium)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mnist_fc.measures import MEASURE_NAMES
from study.analysis import claims as cl
from study.cli import main

STUDY = "tiny"


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real random-sampled study of the article space: 8 trials, 30 epochs, 300 training images."""
    db = tmp_path_factory.mktemp("study") / "tiny.db"
    url = f"sqlite:///{db}"
    argv = ["run", "--study-name", STUDY, "--storage", url, "--sampler", "random", "--trials", "8"]
    argv += ["--epochs", "30", "--train-size", "300", "--seed", "0", "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    return url


@pytest.fixture(scope="module")
def report_dir(tiny_study: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report is written once per session: PNG/SVG export through kaleido costs seconds."""
    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--study-name", STUDY, "--storage", tiny_study, "--out", str(out)]) == 0
    return out


EXPECTED_FIGURES = (
    "optuna_history",
    "importance_fanova",
    "importance_ped_anova",
    "optuna_slice",
    "optuna_contour_top2",
    "optuna_parallel",
    "optuna_intermediate",
    *(f"curves_by_{f}" for f in ("init_std", "n_units_l1", "normalization", "lr", "batchnorm")),
    "plateau_vs_init_std",
    "plateau_vs_hidden_size",
    "oscillation_vs_lr",
    "batchnorm_on_off",
)


def test_report_writes_every_figure_as_png_and_svg(report_dir: Path) -> None:
    for name in EXPECTED_FIGURES:
        png, svg = report_dir / f"{name}.png", report_dir / f"{name}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert png.stat().st_size > 5000, name  # a blank canvas is ~2 KB
        assert b"<svg" in svg.read_bytes()[:500], name


def test_report_html_is_self_contained(report_dir: Path) -> None:
    page = (report_dir / "index.html").read_text()
    assert page.count("Plotly.newPlot") >= len(EXPECTED_FIGURES)
    assert "<script src=" not in page and 'src="http' not in page  # plotly.js is inlined: opens offline
    assert len(page) > 3_000_000  # ... and it is there: plotly.min.js alone is ~3.5 MB
    assert "fANOVA" in page and "PED-ANOVA" in page
    assert f"Study {STUDY}" in page


def test_claims_csv_has_every_claim_with_a_computed_verdict(report_dir: Path) -> None:
    table = pd.read_csv(report_dir / "claims.csv")
    assert list(table["id"].astype(str)) == [c.id for c in cl.CLAIMS]
    assert set(table["verdict"]) <= {cl.SUPPORTED, cl.CONTRADICTED, cl.NOT_ENOUGH}
    assert (table["n"] <= 8).all()
    md = (report_dir / "claims.md").read_text()
    assert md == cl.claims_markdown(pd.read_csv(report_dir / "claims.csv", dtype={"id": str}))


def test_trials_carry_the_measures(tiny_study: str, tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    assert main(["export", "--study-name", STUDY, "--storage", tiny_study, "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    assert len(df) == 8
    for name in MEASURE_NAMES:
        assert name in df.columns
    finished = df[df["state"] == "COMPLETE"]
    assert finished["plateau_epochs"].between(0, 30).all()
    assert finished["saturation_init"].between(0, 1).all()
    assert json.loads(finished["config_json"].iloc[0])["train"]["epochs"] == 30


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_round_trips(tiny_study: str, tmp_path: Path, suffix: str) -> None:
    from study.analysis.frames import trials_frame
    from study.storage import load_study, open_storage

    out = tmp_path / f"trials{suffix}"
    assert main(["export", "--study-name", STUDY, "--storage", tiny_study, "--out", str(out)]) == 0
    back = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    want = trials_frame(load_study(open_storage(tiny_study, create=False), STUDY))
    assert list(back.columns) == list(want.columns)
    numeric = ["number", "value", "n_units_l1", "lr", "init_std", "val_accuracy", "plateau_epochs", "saturation_init"]
    pd.testing.assert_frame_equal(back[numeric], want[numeric], check_dtype=False)
    assert list(back["state"]) == list(want["state"])
    assert list(back["config_json"]) == list(want["config_json"])


def test_export_rejects_unknown_format_in_one_line(tiny_study: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "trials.xlsx"
    assert main(["export", "--study-name", STUDY, "--storage", tiny_study, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and ".csv or .parquet" in err
    assert not out.exists()


def test_report_of_missing_study_fails_in_one_line(tiny_study: str, tmp_path: Path, capsys) -> None:
    assert main(["report", "--study-name", "nope", "--storage", tiny_study, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no study named 'nope'" in err


def test_report_fails_loudly_when_figures_cannot_be_exported(
    tiny_study: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """No silent skipping: without a working browser the command fails and writes no index.html."""
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    out = tmp_path / "r"
    assert main(["report", "--study-name", STUDY, "--storage", tiny_study, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot export PNG/SVG" in err
    assert not (out / "index.html").exists()
