"""scripts/pilot_ensemble.py: the validation gain of an ensemble of finished pilots (distillation's ceiling)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from tests.conftest import REPO

PILOT, ENSEMBLE = REPO / "scripts" / "accuracy_pilot.py", REPO / "scripts" / "pilot_ensemble.py"
ENV = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore")


def _run(*argv):
    return subprocess.run([sys.executable, *map(str, argv)], env=ENV, capture_output=True, text=True, timeout=300)


def test_members_score_as_their_pilots_did_and_the_ensemble_is_reported_without_the_test_set(tmp_path):
    for seed in (0, 1):
        small = ("--train-size", "500", "--epochs", "2", "--n-units-l1", "24", "--n-units-l2", "12")
        done = _run(PILOT, *small, "--precision", "fp32", "--seed", seed, "--out", tmp_path / f"s{seed}")
        assert done.returncode == 0, done.stderr
    out = _run(ENSEMBLE, tmp_path / "s0", tmp_path / "s1", "--threads", "1")
    assert out.returncode == 0, out.stderr
    for seed in (0, 1):  # the averaged (EMA) weights of the checkpoint, scored as the pilot scored them
        recorded = json.loads((tmp_path / f"s{seed}" / "result.json").read_text())["result"]["val_accuracy"]
        assert f"s{seed}: val acc {recorded:.4f}" in out.stdout
    ens = re.search(r"ensemble \(2 members, mean softmax\): (0\.\d{4}) \(([+-]\d+) images\)", out.stdout)
    assert ens and 0.0 < float(ens.group(1)) <= 1.0
    assert re.search(r"disagree on: \d+; wrong in every member: \d+", out.stdout)
    assert "test acc" not in out.stdout.replace(str(tmp_path), "")

    one = _run(ENSEMBLE, tmp_path / "s0")
    assert one.returncode == 2 and "two or more" in one.stderr
    missing = _run(ENSEMBLE, tmp_path / "s0", tmp_path / "nothing")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "nothing" in missing.stderr
