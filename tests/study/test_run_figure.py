"""The long-run figure (study/analysis/run_figure.py, scripts/run_figure.py): its data on synthetic
curves, and the script drawing a real PNG through kaleido."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from study.analysis.run_figure import MAX_POINTS, draw_run_curves, first_epoch_above, run_curve_points

REPO = Path(__file__).resolve().parents[2]


def _curves(n: int, every: int) -> dict[str, list]:
    epochs = np.arange(1, n + 1)
    acc = 1 - 0.9 * np.exp(-epochs / (n / 5))
    checked = list(range(every, n + 1, every))
    return {
        "train_loss": list(2.3 * np.exp(-epochs / (n / 5))),
        "train_accuracy": list(acc),
        "eval_epochs": checked,
        "val_loss": [float("nan")] + [2.0] * (len(checked) - 1),  # a diverged check is dropped, not drawn
        "val_accuracy": [0.5] * len(checked),
    }


def test_first_epoch_above_is_one_based_and_none_when_never():
    assert first_epoch_above([0.5, 0.99, 0.991, 0.2], 0.99) == 3
    assert first_epoch_above([0.5, 0.6], 0.99) is None


def test_points_thin_training_on_a_log_grid_and_keep_every_check():
    curves = _curves(50_000, 100)
    pts = run_curve_points(curves, held_out="validation")
    train = pts[(pts.series == "train") & (pts.metric == "accuracy")]
    assert len(train) <= MAX_POINTS + 2 and train.epoch.iloc[0] == 1 and train.epoch.iloc[-1] == 50_000
    assert train.epoch.is_monotonic_increasing and (train.epoch.diff().dropna() > 0).all()
    assert (train.epoch <= 10).sum() == 10  # every early epoch is drawn: the plateau's start is visible
    row = train[train.epoch == 20_000].value
    assert len(row) == 0 or math.isclose(row.iloc[0], curves["train_accuracy"][19_999])
    val = pts[(pts.series == "validation") & (pts.metric == "accuracy")]
    assert list(val.epoch) == curves["eval_epochs"]
    val_loss = pts[(pts.series == "validation") & (pts.metric == "loss")]
    assert list(val_loss.epoch) == curves["eval_epochs"][1:]  # the NaN check is gone
    short = run_curve_points(_curves(30, 10), held_out="check")
    assert len(short[(short.series == "train") & (short.metric == "loss")]) == 30


def test_figure_has_two_log_panels_and_the_mark():
    pts = run_curve_points(_curves(1000, 50), held_out="validation")
    fig = draw_run_curves(pts, title="t", mark=0.99, mark_epoch=123)
    assert [t.name for t in fig.data] == ["train", "validation", "train", "validation"]
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis2.type == "log" and fig.layout.yaxis.type == "log"
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert any(s.y0 == 0.99 for s in lines) and sum(s.x0 == 123 for s in lines) == 2  # data units on a log axis


def test_script_writes_png_and_svg(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "curves.json").write_text(json.dumps(_curves(400, 20)))
    (run / "result.json").write_text(json.dumps({"epochs": 400, "precision": "bf16", "seconds": 61.0}))
    argv = [sys.executable, str(REPO / "scripts" / "run_figure.py"), str(run), "--title", "demo"]
    done = subprocess.run(argv, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    png = (run / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "demo (400 epochs, bf16, 1 min)" in (run / "curves.svg").read_text()
    assert f"first > 0.99 at epoch {first_epoch_above(_curves(400, 20)['train_accuracy'], 0.99)}" in done.stdout
    bad = subprocess.run([*argv[:2], str(tmp_path / "nothing")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: cannot read the run") and "Traceback" not in bad.stderr


def test_progress_of_a_running_run_is_read_from_its_checkpoint(tmp_path):
    import dataclasses
    import importlib.util

    from mnist_fc.config import DataConfig, article_preset
    from mnist_fc.trainer import fit

    cfg = article_preset(epochs=4, device="cpu", eval_every=2, lr=1.0)
    cfg = dataclasses.replace(cfg, data=DataConfig(train_size=600, include_validation=True))
    ckpt = tmp_path / "run.ckpt"
    result = fit(cfg, checkpoint=ckpt, checkpoint_every=2).result
    spec = importlib.util.spec_from_file_location("run_figure_script", REPO / "scripts" / "run_figure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    curves, header = module.checkpoint_curves(ckpt)
    assert curves["train_accuracy"] == result.curves.train_accuracy  # the same division as the trainer's
    assert curves["train_loss"] == pytest.approx(result.curves.train_loss, rel=1e-6)
    assert curves["val_accuracy"] == result.curves.val_accuracy and header["epochs"] == 4
    argv = [sys.executable, str(REPO / "scripts" / "run_figure.py"), str(tmp_path), "--checkpoint", str(ckpt)]
    done = subprocess.run(argv, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "progress.png").stat().st_size > 10_000 and not (tmp_path / "curves.png").exists()
    assert "so far (4 epochs" in (tmp_path / "progress.svg").read_text()
    ckpt.write_bytes(b"garbage")
    bad = subprocess.run(argv, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert bad.returncode == 2 and "cannot read the run" in bad.stderr and "Traceback" not in bad.stderr
