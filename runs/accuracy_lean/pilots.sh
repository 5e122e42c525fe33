#!/usr/bin/env bash
# Issue 14, fifth attempt: the four registered validation pilots (docs/accuracy.md, "Fifth attempt"),
# two at a time with one thread each. Resumable: run this again after an interruption; finished pilots
# resume from their final checkpoint in seconds and are not recorded twice.
#   (setsid nohup bash runs/accuracy_lean/pilots.sh >> runs/accuracy_lean/pilots.out 2>&1 &)
set -u
cd "$(dirname "$0")/../.."
C=(.venv/bin/python scripts/accuracy_pilot.py --n-units-l1 1024 --n-units-l2 1024 --epochs 150 --ema-decay 0.999
   --aug-elastic-alpha 26.5 --precision bf16 --threads 1 --storage sqlite:///studies/accuracy_lean.db
   --study-name accuracy-lean)
P=runs/accuracy_lean/pilots
(
  "${C[@]}" --seed 0 --label-smoothing 0 --out $P/ls0_s0
  "${C[@]}" --seed 0 --label-smoothing 0 --dropout 0 --weight-decay 0 --out $P/lean_s0
) &
(
  "${C[@]}" --seed 1 --label-smoothing 0 --out $P/ls0_s1
  "${C[@]}" --seed 1 --label-smoothing 0 --dropout 0 --weight-decay 0 --out $P/lean_s1
) &
wait
