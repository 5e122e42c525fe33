"""Kill a study again and again: `kill -9` a `mnist-study run --until-complete N` worker in the middle
of a trial K times (restarting it each time), then let it finish, and check that nothing was lost.

    python scripts/crash_resume_stress.py --kills 10 --target 12

Prints one line per kill and a final verdict; exit status 1 if any check fails. Uses the same
helpers as tests/study/test_resume.py, with more kills than CI can afford.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optuna.trial import TrialState

from tests.study.workers import (
    HEARTBEAT,
    TINY,
    Worker,
    assert_no_loss,
    count,
    kill_mid_trial,
    sqlite_integrity,
    trials,
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--target", type=int, default=12, help="COMPLETE trials the study must end with (> kills)")
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="crash-stress-"))
    db = folder / "stress.db"
    url = f"sqlite:///{db}"
    command = ("--storage", url, "--study-name", "stress", "--until-complete", str(args.target), *TINY, *HEARTBEAT)
    killed: list[int] = []
    start = time.perf_counter()
    names = iter(f"w{i}" for i in range(10_000))
    for k in range(args.kills):
        done = count(trials(url, "stress"), TrialState.COMPLETE) if db.exists() else 0
        if done >= args.target - 1:
            print("target nearly reached before all kills: raise --target", file=sys.stderr)
            break
        _, victim = kill_mid_trial(
            url, "stress", lambda: Worker.start(folder, next(names), *command), min_complete=k + 1, attempts=5
        )
        killed.append(victim)
        integrity = sqlite_integrity(db)
        print(f"kill {k + 1}: trial {victim} killed mid-trial; integrity_check {integrity}", flush=True)
        if integrity != "ok":
            return 1
    final = Worker.start(folder, "final", *command)
    rc = final.wait(timeout=1800)
    ts = trials(url, "stress")
    try:
        assert rc == 0, final.output
        assert sqlite_integrity(db) == "ok"
        assert count(ts, TrialState.COMPLETE) == args.target
        assert_no_loss(ts, killed=killed)
    except AssertionError as e:
        print(f"FAILED after {len(killed)} kills: {e}")
        return 1
    print(
        f"survived {len(killed)} kill -9s: {count(ts, TrialState.COMPLETE)} complete, {count(ts, TrialState.FAIL)} "
        f"failed and each re-run with its params, nothing lost ({time.perf_counter() - start:.0f} s, files in {folder})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
