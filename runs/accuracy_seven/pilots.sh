#!/usr/bin/env bash
# Issue 14, seventh attempt: the two registered validation pilots (docs/accuracy.md, "Seventh attempt"),
# at once with one thread each. Resumable: run this again after an interruption; finished pilots are
# left as they are and not recorded twice.
#   (setsid nohup bash runs/accuracy_seven/pilots.sh >> runs/accuracy_seven/pilots.out 2>&1 &)
set -u
cd "$(dirname "$0")/../.."
C=(.venv/bin/python scripts/accuracy_pilot.py --n-units-l1 1024 --n-units-l2 1024 --epochs 150 --ema-decay 0.999
   --aug-elastic-alpha 26.5 --precision bf16 --threads 1 --storage sqlite:///studies/accuracy_seven.db
   --study-name accuracy-seven)
P=runs/accuracy_seven/pilots
for s in 0 1; do
  "${C[@]}" --seed $s --optimizer nesterov --momentum 0.9 --lr 0.1 --out $P/nesterov_s$s &
done
wait
