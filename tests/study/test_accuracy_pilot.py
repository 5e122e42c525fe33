"""scripts/accuracy_pilot.py: validation-only long runs recorded as trials that `mnist-study final` retrains."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import optuna
import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "accuracy_pilot.py"


def _pilot(tmp_path, name, *extra):
    argv = [sys.executable, str(SCRIPT), "--train-size", "500", "--epochs", "3", "--eval-every", "1"]
    argv += ["--checkpoint-every", "1", "--n-units-l1", "24", "--n-units-l2", "12", "--precision", "fp32"]
    argv += ["--out", str(tmp_path / name), "--storage", f"sqlite:///{tmp_path / 'p.db'}", *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore")
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=300)


def _study(tmp_path):
    return optuna.load_study(study_name="accuracy-long", storage=f"sqlite:///{tmp_path / 'p.db'}")


def test_pilots_hide_the_test_set_record_one_trial_each_and_final_retrains_the_best(tmp_path, cli):
    a = _pilot(tmp_path, "a")
    assert a.returncode == 0, a.stderr
    b = _pilot(
        *(tmp_path, "b", "--aug-elastic-alpha", "20", "--ema-decay", "0.9", "--dropout", "0.0"),
        *("--lr", "0.003", "--weight-decay", "0.05", "--label-smoothing", "0.1", "--aug-clean-epochs", "1"),
    )
    assert b.returncode == 0, b.stderr
    result = json.loads((tmp_path / "b" / "result.json").read_text())
    assert "test_acc" not in json.dumps(result) and "test acc" not in b.stdout  # selection runs never see the test set
    cfg = result["result"]["config"]
    assert not cfg["data"]["include_validation"] and cfg["model"]["n_units_l1"] == 24
    assert cfg["train"]["aug_elastic_alpha"] == 20.0 and cfg["train"]["ema_decay"] == 0.9
    assert cfg["model"]["dropout"] == 0.0 and cfg["train"]["epochs"] == 3
    assert cfg["train"]["lr"] == 0.003 and cfg["train"]["weight_decay"] == 0.05
    assert cfg["train"]["label_smoothing"] == 0.1 and cfg["train"]["aug_clean_epochs"] == 1
    assert cfg["train"]["aug_rotate"] > 0  # the rest comes from the base config (models/accuracy.json)
    assert result["command"].startswith("python scripts/accuracy_pilot.py --train-size 500")
    curves = json.loads((tmp_path / "b" / "curves.json").read_text())
    assert curves["eval_epochs"] == [1, 2, 3]

    trials = _study(tmp_path).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert trials[1].value == result["result"]["val_accuracy"] and trials[1].params["aug_elastic_alpha"] == 20.0
    assert trials[1].user_attrs["config"] == cfg and trials[1].params["weight_decay"] == 0.05

    files = {f: (tmp_path / "a" / f).read_bytes() for f in ("result.json", "log.txt", "curves.json")}
    again = _pilot(tmp_path, "a")  # the same command again: nothing retrained or rewritten, no second trial
    assert again.returncode == 0 and "recorded as trial 0" in again.stdout and "already finished" in again.stdout
    assert len(_study(tmp_path).trials) == 2
    assert {f: (tmp_path / "a" / f).read_bytes() for f in files} == files  # committed records stay as they are
    (tmp_path / "a" / "result.json").unlink()  # a result lost after the run: resumed from the final checkpoint
    again = _pilot(tmp_path, "a")
    assert again.returncode == 0 and "recorded as trial 0" in again.stdout and "done: val acc" in again.stdout
    assert json.loads((tmp_path / "a" / "result.json").read_text())["params"] == trials[0].params
    # A pilot recorded before a config field and its param existed (aug_clean_epochs here) is still found.
    with sqlite3.connect(tmp_path / "p.db") as db:
        (row,) = db.execute("SELECT value_json FROM trial_user_attributes WHERE trial_id = 1 AND key = 'config'")
        old = json.loads(row[0])
        del old["train"]["aug_clean_epochs"]
        db.execute(
            "UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = 1 AND key = 'config'", (json.dumps(old),)
        )
        db.execute("DELETE FROM trial_params WHERE trial_id = 1 AND param_name = 'aug_clean_epochs'")
    again = _pilot(tmp_path, "a")
    assert again.returncode == 0 and "recorded as trial 0" in again.stdout
    assert len(_study(tmp_path).trials) == 2

    best = max(trials, key=lambda t: t.value)
    out = tmp_path / "models"
    r = cli(
        *("final", "--study-name", "accuracy-long", "--storage", f"sqlite:///{tmp_path / 'p.db'}", "--seeds", "0"),
        *("--train-size", "500", "--out", str(out), "--name", "pilot", "--json"),
    )
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "pilot.json").read_text())
    assert meta["trial_number"] == best.number
    assert meta["config"]["model"] == best.user_attrs["config"]["model"]
    assert meta["config"]["data"]["include_validation"]  # the final model trains on all 60,000


def test_bad_pilot_input_is_one_line_and_records_nothing(tmp_path):
    bad = (("--base", str(tmp_path / "missing.json")), ("--epochs", "0"), ("--ema-decay", "1.5"), ("--batch-size", "0"))
    bad += (("--aug-strength", "-1"), ("--aug-strength", "nan"))
    for extra in bad:
        r = _pilot(tmp_path, "bad", *extra)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "accuracy_pilot: error:" in r.stderr, r.stderr
    assert not (tmp_path / "p.db").exists()


def test_a_deskew_pilot_is_recorded_and_its_final_model_deskews_raw_test_pixels(tmp_path, cli):
    plain, desk = _pilot(tmp_path, "plain"), _pilot(tmp_path, "desk", "--deskew")
    assert plain.returncode == 0 and desk.returncode == 0, desk.stderr
    trials = _study(tmp_path).trials
    assert "deskew" not in trials[0].params and trials[1].params["deskew"] == 1
    assert trials[1].user_attrs["config"]["data"]["deskew"] and not trials[0].user_attrs["config"]["data"]["deskew"]
    again = _pilot(tmp_path, "desk", "--deskew")  # resumable and recorded once, like any pilot
    assert again.returncode == 0 and "already finished" in again.stdout and len(_study(tmp_path).trials) == 2
    sgd = _pilot(
        *(tmp_path, "sgd", "--optimizer", "nesterov", "--momentum", "0.9", "--lr", "0.1", "--batch-size", "64"),
        *("--aug-strength", "1.5"),
    )
    assert sgd.returncode == 0, sgd.stderr
    t = _study(tmp_path).trials[2]
    assert t.params["optimizer"] == "nesterov" and t.params["momentum"] == 0.9 and t.params["lr"] == 0.1
    assert t.params["batch_size"] == 64 and t.params["aug_strength"] == 1.5
    cfg = t.user_attrs["config"]["train"]
    assert (cfg["optimizer"], cfg["momentum"], cfg["lr"], cfg["batch_size"]) == ("nesterov", 0.9, 0.1, 64)
    affine = [cfg[k] for k in ("aug_shift", "aug_rotate", "aug_scale", "aug_shear")]
    assert affine == pytest.approx([3.0, 15.0, 0.15, 15.0])  # the accuracy space's maxima at strength 1.5
    first = _study(tmp_path).trials[0]
    assert not {"optimizer", "batch_size", "aug_strength"} & set(first.params)  # only pilots that change them
    base = first.user_attrs["config"]["train"]  # the base's, from models/accuracy.json
    assert base["batch_size"] == 128 and base["aug_rotate"] == pytest.approx(7.806, abs=0.001)

    out = tmp_path / "models"
    r = cli(
        *("final", "--study-name", "accuracy-long", "--storage", f"sqlite:///{tmp_path / 'p.db'}", "--trial", "1"),
        *("--seeds", "0", "--train-size", "500", "--precision", "fp32", "--out", str(out), "--name", "d", "--json"),
    )
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "d.json").read_text())
    assert meta["config"]["data"]["deskew"] and meta["config"]["data"]["include_validation"]
    # The training loop scored the deskewed test split; the saved model, given raw pixels, deskews them itself:
    # the same images either way (deskewing twice, or not at all, would move the figure).
    seed = meta["seeds"][0]
    assert abs(seed["test_accuracy"] - seed["test_accuracy_in_training_precision"]) <= 0.0002
    for model in ("d.onnx", "d.safetensors"):
        e = cli("evaluate", str(out / model), "--json")
        assert e.returncode == 0, e.stderr
        assert json.loads(e.stdout)["test_accuracy"] == pytest.approx(meta["test_accuracy"], abs=0.0002)


def test_final_scores_the_raw_test_pixels_even_for_a_deskewed_run():
    from mnist_fc.config import DataConfig
    from mnist_fc.data import load_embedded
    from study.runner.final import raw_split

    _, _, x_test, y_test = load_embedded()
    for data in (DataConfig(), DataConfig(deskew=True, include_validation=True, train_size=300)):
        split = raw_split(data, seed=0)
        x, y = split.x_test, split.y_test
        assert x.dtype == np.uint8  # as read: the saved model normalises (and deskews) them itself
        np.testing.assert_array_equal(x, x_test)
        np.testing.assert_array_equal(y, y_test)


def test_the_attempts_pilot_scripts_run_the_base_recipe_with_each_pilots_changes():
    env = dict(os.environ, PILOTS_ECHO="1")
    script = REPO / "runs" / "accuracy_eight" / "pilots.sh"
    r = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, check=True, timeout=60)
    lines = sorted(r.stdout.splitlines())
    base = (
        ".venv/bin/python scripts/accuracy_pilot.py --n-units-l1 1024 --n-units-l2 1024 --epochs 150"
        " --ema-decay 0.999 --aug-elastic-alpha 26.5 --precision bf16 --threads 1"
        " --storage sqlite:///studies/accuracy_eight.db --study-name accuracy-eight"
    )
    want = sorted(
        f"{base} --seed {s} --lr {lr} --out runs/accuracy_eight/pilots/{arm}_s{s}"
        for arm, lr in (("lr_double", "0.0137"), ("lr_half", "0.00343"))
        for s in (0, 1)
    )
    assert lines == want


def test_best_of_a_pilot_study_says_the_test_set_was_never_scored(tmp_path, capsys):
    import shutil

    from study.cli import main

    shutil.copy(REPO / "studies" / "accuracy_long.db", tmp_path / "a.db")
    assert main(["best", "--storage", f"sqlite:///{tmp_path / 'a.db'}", "--study-name", "accuracy-long"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy not recorded" in out and "nan" not in out and "None" not in out
