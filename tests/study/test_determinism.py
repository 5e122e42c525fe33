"""Same seed, same device (CPU, deterministic algorithms on) → same parameters and same metrics."""

from __future__ import annotations

from pathlib import Path

import optuna

from study.cli import main
from study.curves import CurveStore
from study.sampler import trial_seed
from tests.study.workers import TINY


def _study(tmp_path: Path, name: str, seed: int) -> tuple[list[optuna.trial.FrozenTrial], dict]:
    url = f"sqlite:///{tmp_path / name}.db"
    argv = ["run", "--storage", url, "--study-name", "d", "--trials", "3", "--seed", str(seed), *TINY]
    assert main([*argv, "--epochs", "20", "--eval-every", "10"]) == 0
    storage = optuna.storages.RDBStorage(url)
    ts = optuna.load_study(study_name="d", storage=storage).get_trials()
    return ts, CurveStore(storage).load("d")


def _fingerprint(ts: list[optuna.trial.FrozenTrial]) -> list[tuple]:
    keys = ("val_accuracy", "test_accuracy", "train_accuracy", "train_loss", "val_loss", "epochs", "diverged")
    return [(t.number, t.state, t.params, t.values, tuple(t.user_attrs[k] for k in keys)) for t in ts]


def test_same_seed_same_params_and_metrics_on_cpu(tmp_path: Path) -> None:
    a, curves_a = _study(tmp_path, "a", seed=11)
    b, curves_b = _study(tmp_path, "b", seed=11)
    assert _fingerprint(a) == _fingerprint(b)  # exact equality: bit for bit, not approximately
    assert {n: c.to_dict() for n, c in curves_a.items()} == {n: c.to_dict() for n, c in curves_b.items()}
    other, _ = _study(tmp_path, "c", seed=12)
    assert [t.params for t in other] != [t.params for t in a]  # the seed matters


def test_trial_seeds_differ_by_trial_and_by_seed() -> None:
    seeds = {trial_seed(s, n) for s in range(5) for n in range(200)}
    assert len(seeds) == 1000
