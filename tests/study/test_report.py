"""`mnist-study report` and `export` on a small real study (real SQLite, real training, real Chromium)."""

from __future__ import annotations

import json
import subprocess
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
    # Links where the report writes: replaced, never written through (a figure name linked to the storage
    # used to overwrite the database with a PNG).
    (out / "wall_time.png").symlink_to(tiny_study.removeprefix("sqlite:///"))
    (out.parent / "notes.md").write_text("mine\n")
    (out / "claims.md").symlink_to(out.parent / "notes.md")
    argv = ["report", "--study-name", STUDY, "--storage", tiny_study, "--out", str(out), "--images", "--trials", "0,5"]
    assert main(argv) == 0
    return out


EXPECTED_FIGURES = (
    "optuna_history",
    "wall_time",
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
    "trial_curves",
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
    assert ">Optimization history <" in page and ">Learning curves by learning rate <" in page  # titles, not ids
    for name in EXPECTED_FIGURES:  # the heading and the plot's div have distinct ids (plotly draws by id)
        assert page.count(f"id='{name}'") + page.count(f'id="{name}"') == 1, name
        assert f'id="plot-{name}"' in page, name


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


def test_report_fails_loudly_when_a_configured_browser_cannot_export(
    tiny_study: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """No silent skipping: without a working browser the command fails and writes no index.html."""
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    out = tmp_path / "r"
    assert main(["report", "--study-name", STUDY, "--storage", tiny_study, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot export PNG/SVG" in err and "is not a program" in err
    assert not out.exists()  # not even an empty folder: the report made it, and removed it on failing


def _hide_browsers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH with no Chromium on it (python and the usual tools only) and no BROWSER_PATH."""
    import shutil

    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(shutil.which("python3") or "/usr/bin/python3")
    monkeypatch.setenv("PATH", str(bare))
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    from study.analysis.report import images_possible

    assert not images_possible()


def test_report_without_a_browser_writes_the_page_and_says_images_were_skipped(
    tiny_study: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _hide_browsers(monkeypatch, tmp_path)
    out = tmp_path / "r"
    assert main(["report", "--study-name", STUDY, "--storage", tiny_study, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".report-files.json", "claims.csv", "claims.md", "index.html"]
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "images skipped" in lines[1] and "--images" in lines[1] and "Chromium" in lines[1]


def test_report_images_flag_makes_a_missing_browser_an_error(
    tiny_study: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _hide_browsers(monkeypatch, tmp_path)
    out = tmp_path / "r"
    assert main(["report", "--study-name", STUDY, "--storage", tiny_study, "--out", str(out), "--images"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no Chromium found" in err
    assert not (out / "index.html").exists()


def test_report_of_a_copied_study_has_its_curves_and_compares_studies(tiny_study: str, tmp_path: Path, capsys) -> None:
    """optuna.copy_study carries the curves (trial system attributes): the copy reports like the original."""
    import optuna

    url = f"sqlite:///{tmp_path / 'copy.db'}"
    optuna.copy_study(from_study_name=STUDY, from_storage=tiny_study, to_storage=url, to_study_name="copy")
    optuna.copy_study(from_study_name=STUDY, from_storage=tiny_study, to_storage=url, to_study_name="other")
    out = tmp_path / "r"
    argv = ["report", "--study-name", "copy", "--storage", url, "--out", str(out), "--no-images", "--compare", "other"]
    assert main(argv) == 0
    page = (out / "index.html").read_text()
    assert 'id="plot-compare_wall_time"' in page and 'id="plot-compare_values"' in page
    assert "other (n=" in page


def test_report_refuses_a_study_whose_curves_were_lost(tiny_study: str, tmp_path: Path, capsys) -> None:
    """A copy made without trial system attributes: the curve figures would be empty, so refuse."""
    import optuna

    src = optuna.load_study(study_name=STUDY, storage=tiny_study)
    url = f"sqlite:///{tmp_path / 'lossy.db'}"
    dst = optuna.create_study(study_name="lossy", storage=url, direction="maximize")
    for t in src.get_trials():
        if t.state.is_finished():
            dst.add_trial(
                optuna.trial.create_trial(
                    state=t.state,
                    value=t.value,
                    params=t.params,
                    distributions=t.distributions,
                    user_attrs=t.user_attrs,
                    intermediate_values=t.intermediate_values,
                )
            )
    out = tmp_path / "r"
    assert main(["report", "--study-name", "lossy", "--storage", url, "--out", str(out), "--no-images"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no stored learning curves" in err
    assert not out.exists()


def test_report_trials_flag_rejects_unknown_trials(tiny_study: str, tmp_path: Path, capsys) -> None:
    argv = ["report", "--study-name", STUDY, "--storage", tiny_study, "--out", str(tmp_path / "r"), "--no-images"]
    assert main([*argv, "--trials", "99"]) == 2
    assert "no curves for trial(s) 99" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([*argv, "--trials", "a,b"])
    assert e.value.code == 2


# A probe run in the page by the real browser after plotly drew: the size of every plot, as JSON in the DOM.
PROBE = """<script>
window.addEventListener('load', () => setTimeout(() => {
  const box = (e) => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
  const plots = {};
  document.querySelectorAll('div.plotly-graph-div').forEach((d) => {
    plots[d.id] = {
      div: box(d),
      svgs: [...d.querySelectorAll('.main-svg')].map(box).filter(([w, h]) => w > 0 && h > 0).length,
      containers: [...d.querySelectorAll('.plot-container')].map(box).filter(([w, h]) => w > 0 && h > 0).length,
      marks: d.querySelectorAll('g.trace, g.contour, .parcoords-lines, g.bars path').length,
    };
  });
  const headings = [...document.querySelectorAll('h3')].map((h) => [h.id, h.querySelectorAll('svg').length]);
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({plots, headings, height: document.documentElement.scrollHeight});
  document.body.appendChild(pre);
}, 2000));
</script>"""


def probe_page(index: Path, tmp_path: Path) -> tuple[dict, list[str], Path]:
    """Open `index` in headless Chromium with PROBE appended; return what the page drew (per plot div:
    size, svg/container/mark counts; per heading: svgs inside), the browser command, and the probed page."""
    import html as html_mod
    import re
    import shutil
    import subprocess

    from tests.study.test_dashboard_browser import CHROMIUM_FLAGS

    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("chromium not installed: run bash scripts/setup.sh --with-system-deps")
    page = tmp_path / "index.html"
    page.write_text(index.read_text().replace("</body>", PROBE + "</body>"))
    common = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900"]
    dom = subprocess.run(
        [*common, "--virtual-time-budget=30000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run: the page did not load"
    return json.loads(html_mod.unescape(found.group(1))), common, page


def test_report_page_draws_every_figure_in_a_real_browser(report_dir: Path, tmp_path: Path) -> None:
    """Headless Chromium opens the page: every figure has a drawn plot of non-zero size, no heading
    holds a plot, and a screenshot is saved for a human to look at."""
    probe, common, page = probe_page(report_dir / "index.html", tmp_path)
    assert sorted(probe["plots"]) == sorted(f"plot-{n}" for n in EXPECTED_FIGURES)
    for div, p in probe["plots"].items():
        assert p["div"][0] > 500 and p["div"][1] > 300, (div, p)  # laid out at a readable size
        assert p["svgs"] >= 1 and p["containers"] == 1, (div, p)  # ... and drawn into by plotly
        assert p["marks"] >= 1, (div, p)  # ... with data on it
    assert all(n_svg == 0 for _, n_svg in probe["headings"]), probe["headings"]

    shot = tmp_path / "report.png"
    height = min(int(probe["height"]), 16000)
    subprocess.run(
        [*common, f"--window-size=1280,{height}", "--virtual-time-budget=30000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=180,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    print(f"report screenshot: {shot}")


def test_export_types_an_all_missing_measure_as_a_number(tiny_study: str, tmp_path: Path) -> None:
    """No 30-epoch trial on 300 images reaches 97%: the column is all missing, yet typed double, not null."""
    import pyarrow.parquet as pq

    out = tmp_path / "t.parquet"
    assert main(["export", "--study-name", STUDY, "--storage", tiny_study, "--out", str(out)]) == 0
    types = {f.name: str(f.type) for f in pq.read_schema(out)}
    assert pd.read_parquet(out)["epochs_to_val97"].isna().all()
    assert types["epochs_to_val97"] == "double" and types["epochs_to_val90"] in ("double", "int64")
    assert "null" not in types.values()


def test_extra_sections_plug_into_the_report(tiny_study: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-claim figures (another module) add a section with a hook; the page draws them like the rest."""
    import plotly.graph_objects as go

    from study.analysis import report as rp
    from study.storage import curve_store, load_study, open_storage

    seen = {}

    def hook(study, trials, curves):
        seen["n"] = (len(trials), len(curves))
        return [("claim_1a", "Claim 1a: saturation by width", go.Figure(go.Scatter(x=[1, 2], y=[3, 4])))]

    monkeypatch.setattr(rp, "EXTRA_SECTIONS", [("Per-claim figures", hook)])
    storage = open_storage(tiny_study, create=False)
    report = rp.build_report(load_study(storage, STUDY), curve_store(storage).load(STUDY))
    assert seen["n"] == (8, 8)
    assert list(report.figures)[-1] == "claim_1a" and report.sections["claim_1a"] == "Per-claim figures"
    page = rp.render_html(report)
    assert "<h2>Per-claim figures</h2>" in page and ">Claim 1a: saturation by width <" in page
    assert 'id="plot-claim_1a"' in page


def test_links_in_the_report_folder_are_replaced_not_written_through(report_dir: Path, tiny_study: str) -> None:
    import sqlite3

    png = report_dir / "wall_time.png"
    assert not png.is_symlink() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (report_dir / "claims.md").is_symlink()
    assert (report_dir.parent / "notes.md").read_text() == "mine\n"
    with sqlite3.connect(f"file:{tiny_study.removeprefix('sqlite:///')}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM trials").fetchone() == (8,)
    assert not [p for p in report_dir.iterdir() if p.name.startswith(".") and p.is_dir()]  # no staging folder left


def test_a_study_mixing_measure_versions_is_reported_in_one() -> None:
    """The reference study (version 1) extended by a new run: claim 5b pooled two oscillation definitions."""
    import numpy as np
    import pandas as pd

    from mnist_fc.measures import MEASURES_VERSION
    from mnist_fc.trainer import Curves
    from study.analysis.report import measures_version, one_measures_version

    falling = Curves(
        train_loss=list(np.linspace(2.0, 0.1, 50)),
        train_accuracy=[0.5] * 50,
        eval_epochs=[10, 20, 30, 40, 50],
        val_loss=[1.0] * 5,
        val_accuracy=[0.5] * 5,
    )
    frame = pd.DataFrame(
        {
            "number": [0, 1, 2],
            "plateau_epochs": [5.0, 5.0, None],
            "oscillation": [0.37, 0.0, None],  # 0.37: a version-1 std ratio of a merely curved descent
            "measures_version": [None, MEASURES_VERSION, None],  # trial 2: failed, no measures
        }
    )
    assert measures_version(frame) == MEASURES_VERSION
    fixed = one_measures_version(frame, {0: falling})
    assert fixed.loc[0, "oscillation"] == 0.0 and fixed.loc[0, "measures_version"] == MEASURES_VERSION
    old_only = frame.iloc[[0]]
    assert one_measures_version(old_only, {0: falling}) is old_only and measures_version(old_only) == 1


def test_a_report_into_a_folder_of_another_report_leaves_no_stale_figures(
    tiny_study: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A second report into the same --out left the first one's PNG/SVGs beside the new page (another study's,
    or figures it no longer draws), and they looked current. Only files an earlier report listed go."""
    out = tmp_path / "r"
    out.mkdir()
    (out / "mine.png").write_bytes(b"not the report's")  # the user's own file: never touched
    assert main(["report", "--study-name", STUDY, "--storage", tiny_study, "--out", str(out), "--images"]) == 0
    assert (out / "wall_time.png").is_file() and (out / "wall_time.svg").is_file()
    assert main(["report", "--study-name", STUDY, "--storage", tiny_study, "--out", str(out), "--no-images"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [".report-files.json", "claims.csv", "claims.md", "index.html", "mine.png"], names


def test_a_study_whose_trials_all_score_the_same_is_reported(tiny_study: str, tmp_path: Path) -> None:
    """Nets stuck on the plateau all score one class's share: fANOVA stopped the report with 'zero total variance',
    a bug exit. The page is written and the importance figures say why they are empty."""
    import shutil
    import sqlite3

    db = tmp_path / "same.db"
    shutil.copy(tiny_study.removeprefix("sqlite:///"), db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE trial_values SET value = 0.1135")
    out = tmp_path / "r"
    assert (
        main(["report", "--study-name", STUDY, "--storage", f"sqlite:///{db}", "--out", str(out), "--no-images"]) == 0
    )
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count("fewer than two distinct values among the complete trials") == 2  # fANOVA and PED-ANOVA


def test_the_page_is_utf8_whatever_the_locale(tiny_study: str, tmp_path: Path) -> None:
    """Files were written in the locale's encoding: under LC_ALL=C the page's '→' was a bug exit, and under
    latin-1 a page that says charset utf-8 held latin-1 bytes."""
    from tests.conftest import run_cli

    env = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": "utf-8"}
    r = run_cli("report", "--study-name", STUDY, "--storage", tiny_study, "--out", "r", "--no-images",
                cwd=tmp_path, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    (tmp_path / "r" / "index.html").read_bytes().decode("utf-8")  # raises when not UTF-8
    assert "→" in (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
