#!/usr/bin/env bash
# Issue 14, tenth attempt (the ninth's lever, registered anew): the two registered validation pilots
# (docs/accuracy.md, "Tenth attempt"), at once with one thread each. Resumable: run this again after an
# interruption; finished pilots are left as they are and not recorded twice.
#   (setsid nohup bash runs/accuracy_ten/pilots.sh >> runs/accuracy_ten/pilots.out 2>&1 &)
set -u
cd "$(dirname "$0")/../.."
C=(.venv/bin/python scripts/accuracy_pilot.py --n-units-l1 1024 --n-units-l2 1024 --epochs 150 --ema-decay 0.999
   --aug-elastic-alpha 26.5 --precision bf16 --threads 1 --storage sqlite:///studies/accuracy_ten.db
   --study-name accuracy-ten)
P=runs/accuracy_ten/pilots
for s in 0 1; do
  "${C[@]}" --seed $s --aug-strength 1.5 --out $P/aff15_s$s &
done
wait
