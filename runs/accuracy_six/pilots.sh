#!/usr/bin/env bash
# Issue 14, sixth attempt: the four registered validation pilots (docs/accuracy.md, "Sixth attempt"),
# two at a time with one thread each. Resumable: run this again after an interruption; finished pilots
# are left as they are and not recorded twice.
#   (setsid nohup bash runs/accuracy_six/pilots.sh >> runs/accuracy_six/pilots.out 2>&1 &)
set -u
cd "$(dirname "$0")/../.."
C=(.venv/bin/python scripts/accuracy_pilot.py --n-units-l1 1024 --n-units-l2 1024 --epochs 150 --ema-decay 0.999
   --aug-elastic-alpha 26.5 --precision bf16 --threads 1 --storage sqlite:///studies/accuracy_six.db
   --study-name accuracy-six)
P=runs/accuracy_six/pilots
(
  "${C[@]}" --seed 0 --n-units-l1 2048 --out $P/w2048_s0
  "${C[@]}" --seed 0 --deskew --out $P/deskew_s0
) &
(
  "${C[@]}" --seed 1 --n-units-l1 2048 --out $P/w2048_s1
  "${C[@]}" --seed 1 --deskew --out $P/deskew_s1
) &
wait
