"""A study decides `--precision auto` once, records it, and stores the probe's figures on every trial.

Outcomes are forced by seeding the probe's cache (MNIST_STUDY_CACHE_DIR) with figures from an
injected timer; the CLI subprocesses read the same cache. Real SQLite storages in tmp_path.
"""

from __future__ import annotations

import json
import os

import optuna
import pytest
import torch

from mnist_fc import precision as P
from mnist_fc.config import DataConfig, RunConfig, TrainConfig
from study.auto_precision import STUDY_ATTR, study_precision
from study.designs import DESIGNS_BY_NAME, design_base
from study.errors import UserError
from study.storage import open_storage

CPU = torch.device("cpu")
TINY = ("--epochs", "4", "--eval-every", "2", "--train-size", "300", "--device", "cpu", "--no-progress")


def seed_cache(rows: int, width: int, *, fp32: float, bf16: float) -> None:
    """Probe figures for (rows x 784 x width) in the cache named by MNIST_STUDY_CACHE_DIR, as if measured."""
    P.choose_precision(
        CPU, P.first_layer_shapes(rows, 784, width), allow_bf16=True, timer=lambda d, *_: fp32 if d == "fp32" else bf16
    )


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(P.CACHE_ENV, str(folder))  # the CLI subprocesses inherit it
    return folder


def _study(tmp_path, name="s"):
    return optuna.create_study(study_name=name, storage=open_storage(f"sqlite:///{tmp_path / 'p.db'}"))


BASE = RunConfig(data=DataConfig(train_size=300), train=TrainConfig(device="cpu"))


def test_study_decides_once_and_keeps_its_decision(tmp_path, cache, monkeypatch):
    seed_cache(300, 100, fp32=3.0, bf16=1.0)
    study = _study(tmp_path)
    sp = study_precision(study, BASE, n_train=300)
    assert sp.base.train.precision == "bf16" and sp.probe is not None and sp.probe["speedup"] == pytest.approx(3.0)
    assert "precision bf16 (auto:" in (sp.header or "")
    assert study.user_attrs[STUDY_ATTR] == sp.probe
    # Later the machine measures otherwise (another cache): the study keeps what it recorded.
    monkeypatch.setenv(P.CACHE_ENV, str(tmp_path / "other"))
    seed_cache(300, 100, fp32=1.0, bf16=3.0)
    again = study_precision(study, BASE, n_train=300)
    assert again.base.train.precision == "bf16" and again.probe == sp.probe
    # A named precision that contradicts the recorded one is refused (no mixed study) ...
    fp32 = RunConfig(data=BASE.data, train=TrainConfig(device="cpu", precision="fp32"))
    with pytest.raises(UserError, match="runs in bf16"):
        study_precision(study, fp32, n_train=300)
    # ... and one that agrees passes through, without a probe of its own.
    bf16 = RunConfig(data=BASE.data, train=TrainConfig(device="cpu", precision="bf16"))
    assert study_precision(study, bf16, n_train=300).probe is None


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask/tell on the heartbeat storage: no worker here
def test_a_study_with_earlier_trials_keeps_their_precision(tmp_path, cache):
    seed_cache(300, 100, fp32=3.0, bf16=1.0)  # bf16 would win now
    study = _study(tmp_path)
    trial = study.ask()
    trial.set_user_attr("precision", "fp32")  # run before auto was measured (auto meant fp32 on CPU)
    study.tell(trial, 0.5)
    sp = study_precision(study, BASE, n_train=300)
    assert sp.base.train.precision == "fp32" and "earlier trials" in sp.probe["reason"]


def test_oscillation_designs_forbid_bf16_under_auto():
    assert design_base(DESIGNS_BY_NAME["lr_oscillation"]).train.allow_bf16_auto is False
    others = [d for d in DESIGNS_BY_NAME.values() if all(p.measure != "oscillation" for p in d.predictions)]
    assert others and all(design_base(d).train.allow_bf16_auto for d in others)


def test_run_records_the_choice_on_every_trial(cli, tmp_path, cache):
    seed_cache(300, 100, fp32=3.0, bf16=1.0)
    db = tmp_path / "r.db"
    r = cli("run", "--storage", f"sqlite:///{db}", "--trials", "2", "--batch-trials", "2", *TINY)
    assert r.returncode == 0, r.stderr
    assert "precision bf16 (auto: bf16 3.00x fp32" in r.stdout  # the run's header line
    study = optuna.load_study(study_name="article", storage=open_storage(f"sqlite:///{db}", create=False))
    assert study.user_attrs[STUDY_ATTR]["precision"] == "bf16"
    for t in study.trials:
        assert t.user_attrs["precision"] == "bf16" and t.user_attrs["config"]["train"]["precision"] == "bf16"
        assert t.user_attrs["precision_probe"] == study.user_attrs[STUDY_ATTR]


def test_train_json_reports_the_choice_and_figures(cli, cache):
    seed_cache(500, 100, fp32=1.0, bf16=2.0)  # bf16 slower here: auto picks fp32
    r = cli("train", "--preset", "article", "--json", "--epochs", "2", "--train-size", "500", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["precision"] == "fp32" and out["config"]["train"]["precision"] == "auto"
    probe = out["precision_probe"]
    assert probe["precision"] == "fp32" and probe["cache_hit"] and probe["speedup"] == pytest.approx(0.5)
    assert probe["shapes"][0]["rows"] == 500 and probe["shapes"][0]["fp32_gflops"] > 0
    assert "precision fp32 (auto:" in r.stderr  # the header line (stderr with --json)
    assert os.environ[P.CACHE_ENV] == str(cache)


def test_a_named_precision_is_the_studys_and_another_is_refused(tmp_path, cache):
    """`run --precision fp32`, then `--precision bf16` on the same study, made a mixed study."""
    seed_cache(300, 100, fp32=3.0, bf16=1.0)
    study = _study(tmp_path)
    fp32 = RunConfig(train=TrainConfig(device="cpu", precision="fp32"))
    bf16 = RunConfig(train=TrainConfig(device="cpu", precision="bf16"))
    study_precision(study, fp32, n_train=300)
    assert study.user_attrs[STUDY_ATTR]["precision"] == "fp32"
    with pytest.raises(UserError, match="runs in fp32"):
        study_precision(study, bf16, n_train=300)
    assert study_precision(study, BASE, n_train=300).base.train.precision == "fp32"  # auto keeps it

    old = _study(tmp_path, name="old")  # trials from before the decision was recorded
    trial = old.ask()
    trial.set_user_attr("precision", "fp32")
    old.tell(trial, 0.5)
    with pytest.raises(UserError, match=r"trials run in another precision \(1 in fp32\)"):
        study_precision(old, bf16, n_train=300)


def test_train_names_its_precision_before_training_not_after(cli, cache):
    """The `precision ... (auto: ...)` line came after every Epoch line: on the article's 50,000 epochs a user
    learnt the precision at the end."""
    seed_cache(500, 100, fp32=3.0, bf16=1.0)
    r = cli("train", "--preset", "article", "--epochs", "4", "--log-every", "1", "--train-size", "500",
            "--device", "cpu")  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("precision bf16 (auto:"))
    first_epoch = next(i for i, line in enumerate(lines) if line.startswith("Epoch"))
    assert header < first_epoch, r.stdout
    assert sum(line.startswith("precision ") for line in lines) == 1
