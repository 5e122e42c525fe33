"""The pilots' comparison figure (study/analysis/pilot_figure.py, scripts/pilot_figure.py): its data on
synthetic curves, what the drawing holds, and the script writing a real PNG through kaleido."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from study.analysis.pilot_figure import draw_pilot_curves, final_values, pilot_curve_points
from tests.conftest import REPO


def _curves(final: float, n: int = 6) -> dict[str, list]:
    epochs = [5 * (i + 1) for i in range(n)]
    return {"eval_epochs": epochs, "val_accuracy": [final - 0.001 * (n - 1 - i) for i in range(n)], "val_loss": []}


def test_points_keep_run_order_every_check_and_drop_non_finite():
    a, b = _curves(0.9951), _curves(0.9966)
    b["val_accuracy"][2] = math.nan
    pts = pilot_curve_points({"affine": a, "elastic": b})
    assert list(pts.columns) == ["run", "epoch", "val_accuracy"]
    assert list(pts["run"].unique()) == ["affine", "elastic"]
    assert len(pts) == 11 and 15 not in set(pts[pts["run"] == "elastic"]["epoch"])
    assert final_values(pts) == {"affine": 0.9951, "elastic": 0.9966}


def test_drawing_has_one_line_per_run_with_its_final_value_in_the_legend():
    pts = pilot_curve_points({"affine": _curves(0.9951), "elastic": _curves(0.9966)})
    fig = draw_pilot_curves(pts, title="t", floor=0.99)
    assert [tr.name for tr in fig.data] == ["affine: 99.51%", "elastic: 99.66%"]
    assert list(fig.data[1].y)[-1] == 100 * 0.9966 and list(fig.data[0].x) == [5, 10, 15, 20, 25, 30]
    assert fig.layout.yaxis.range[0] == 99.0 and fig.layout.yaxis.range[1] <= 100.0


def test_script_writes_png_and_svg_and_bad_input_is_one_line(tmp_path):
    for name, final in (("a", 0.995), ("b", 0.996)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "curves.json").write_text(json.dumps(_curves(final)))
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore")
    script = str(REPO / "scripts" / "pilot_figure.py")
    argv = [sys.executable, script, str(tmp_path / "a"), f"elastic={tmp_path / 'b'}", "--out", str(tmp_path / "f")]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "final validation accuracy: a 99.50%, elastic 99.60%" in r.stdout
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "f.svg").stat().st_size > 0
    bad = subprocess.run([*argv[:2], str(tmp_path / "missing"), "--out", str(tmp_path / "g")], env=env,
                         capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    assert not (tmp_path / "g.png").exists()
