#!/usr/bin/env bash
# Issue 14, fourth attempt: the four registered validation pilots (docs/accuracy.md, "Fourth attempt"),
# two at a time with one thread each. Resumable: run this again after an interruption; finished pilots
# resume from their final checkpoint in seconds and are not recorded twice.
#   (setsid nohup bash runs/accuracy_clean/pilots.sh >> runs/accuracy_clean/pilots.out 2>&1 &)
set -u
cd "$(dirname "$0")/../.."
C=(.venv/bin/python scripts/accuracy_pilot.py --n-units-l1 1024 --n-units-l2 1024 --epochs 150 --ema-decay 0.999
   --aug-elastic-alpha 26.5 --precision bf16 --threads 1 --storage sqlite:///studies/accuracy_clean.db
   --study-name accuracy-clean)
P=runs/accuracy_clean/pilots
(
  "${C[@]}" --seed 0 --aug-clean-epochs 15 --out $P/clean15_s0
  "${C[@]}" --seed 0 --aug-clean-epochs 30 --out $P/clean30_s0
) &
(
  "${C[@]}" --seed 1 --aug-clean-epochs 15 --out $P/clean15_s1
  "${C[@]}" --seed 1 --aug-clean-epochs 30 --out $P/clean30_s1
) &
wait
