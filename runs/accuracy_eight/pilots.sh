#!/usr/bin/env bash
# Issue 14, eighth attempt: the four registered validation pilots (docs/accuracy.md, "Eighth attempt"),
# two at a time with one thread each (both seed-0 pilots first, then both seed-1 pilots). Resumable:
# run this again after an interruption; finished pilots are left as they are and not recorded twice.
#   (setsid nohup bash runs/accuracy_eight/pilots.sh >> runs/accuracy_eight/pilots.out 2>&1 &)
set -u
cd "$(dirname "$0")/../.."
C=(.venv/bin/python scripts/accuracy_pilot.py --n-units-l1 1024 --n-units-l2 1024 --epochs 150 --ema-decay 0.999
   --aug-elastic-alpha 26.5 --precision bf16 --threads 1 --storage sqlite:///studies/accuracy_eight.db
   --study-name accuracy-eight)
P=runs/accuracy_eight/pilots
for s in 0 1; do
  "${C[@]}" --seed $s --lr 0.00343 --out $P/lr_half_s$s &
  "${C[@]}" --seed $s --lr 0.0137 --out $P/lr_double_s$s &
  wait
done
