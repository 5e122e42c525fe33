"""The pilots' seed noise (study/analysis/pilot_noise.py, scripts/pilot_noise.py): pairing, estimate, seeds."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from study.analysis.pilot_noise import config_key, difference_sd, per_seed_sd, seed_pairs, seeds_to_resolve

REPO = Path(__file__).resolve().parents[2]


def _run(seed: int, val: float, **train: object) -> dict:
    config = {"model": {"n_units_l1": 1024, "dropout": 0.0}, "train": {"seed": seed, "lr": 0.01, **train}}
    return {"result": {"config": config, "val_accuracy": val}}


def test_pairs_are_configs_that_differ_only_in_seed() -> None:
    runs = {
        "a_s0": _run(0, 0.9960),
        "a_s1": _run(1, 0.9956),
        "b_s0": _run(0, 0.9950, lr=0.02),
        "b_s1": _run(1, 0.9954, lr=0.02),
        "c_s0": _run(0, 0.9900, lr=0.03),  # no seed-1 twin
        "d_s1": _run(1, 0.9900, lr=0.04),  # no seed-0 twin
    }
    pairs = seed_pairs(runs)
    assert [(p.name, p.seed0, p.seed1) for p in pairs] == [("a_s0", 0.9960, 0.9956), ("b_s0", 0.9950, 0.9954)]
    assert [round(p.difference, 6) for p in pairs] == [0.0004, -0.0004]


def test_an_off_field_missing_from_an_older_record_still_pairs() -> None:
    old = _run(0, 0.9944)
    new = _run(1, 0.9944, aug_clean_epochs=0, deskew=None)
    assert config_key(old["result"]["config"]) == config_key(new["result"]["config"])
    assert config_key(_run(0, 0.99, aug_clean_epochs=30)["result"]["config"]) != config_key(old["result"]["config"])
    assert len(seed_pairs({"old": old, "new": new})) == 1


def test_the_estimate_and_what_it_implies() -> None:
    runs = {f"{k}_s{s}": _run(s, v, lr=lr) for k, lr, d in (("x", 0.1, 0.0004), ("y", 0.2, -0.0002))
            for s, v in ((0, 0.99 + d), (1, 0.99))}  # fmt: skip
    sd = per_seed_sd(seed_pairs(runs))
    assert sd == pytest.approx(math.sqrt((0.0004**2 + 0.0002**2) / 2 / 2))
    assert difference_sd(0.0003, 2) == pytest.approx(0.0003)
    assert difference_sd(0.0003, 8) == pytest.approx(0.00015)
    assert seeds_to_resolve(0.0003, 0.0003) == 8  # 2 SD of the difference: 2 * 0.0003 * sqrt(2 / 8) = 0.0003
    assert seeds_to_resolve(0.0003, 0.0006) == 2 and seeds_to_resolve(0.0003, 0.0001) == 72
    with pytest.raises(ValueError, match="two seed pairs"):
        per_seed_sd(seed_pairs({"a_s0": _run(0, 0.99), "a_s1": _run(1, 0.98)}))
    with pytest.raises(ValueError, match="positive"):
        seeds_to_resolve(0.0003, 0.0)


def test_the_script_on_the_shipped_pilots_and_on_a_bad_folder(tmp_path: Path) -> None:
    script = str(REPO / "scripts" / "pilot_noise.py")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    n = int(r.stdout.split(" configurations", 1)[0])
    assert n >= 14 and "runs/accuracy_long/pilots/elastic" in r.stdout  # the base: seed 0 there, seed 1 in reg
    assert "one seed's standard deviation: 0.0" in r.stdout and "seeds per arm" in r.stdout
    (tmp_path / "empty").mkdir()
    r = subprocess.run([sys.executable, script, str(tmp_path / "empty")], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "cannot read" in r.stderr
    for name, seed in (("a", 0), ("b", 1)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text(json.dumps(_run(seed, 0.99)))
    r = subprocess.run([sys.executable, script, str(tmp_path / "?")], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "at least two seed pairs" in r.stderr and "Traceback" not in r.stderr
