#!/usr/bin/env bash
# Issue 14, third attempt: the seven registered validation pilots (docs/accuracy.md, "Third attempt"),
# two at a time with one thread each. Resumable: run this again after an interruption; finished pilots
# resume from their final checkpoint in seconds and are not recorded twice.
#   (setsid nohup bash runs/accuracy_reg/pilots.sh > runs/accuracy_reg/pilots.out 2>&1 &)
set -u
cd "$(dirname "$0")/../.."
C=(.venv/bin/python scripts/accuracy_pilot.py --n-units-l1 1024 --n-units-l2 1024 --epochs 150 --ema-decay 0.999
   --aug-elastic-alpha 26.5 --precision bf16 --threads 1 --storage sqlite:///studies/accuracy_reg.db
   --study-name accuracy-reg)
P=runs/accuracy_reg/pilots
(
  "${C[@]}" --seed 1 --out $P/base_s1
  "${C[@]}" --seed 0 --weight-decay 0.05 --out $P/wd05_s0
  "${C[@]}" --seed 0 --label-smoothing 0.1 --out $P/ls10_s0
  "${C[@]}" --seed 0 --weight-decay 0.05 --label-smoothing 0.1 --dropout 0.2 --out $P/reg_s0
) &
(
  "${C[@]}" --seed 1 --weight-decay 0.05 --out $P/wd05_s1
  "${C[@]}" --seed 1 --label-smoothing 0.1 --out $P/ls10_s1
  "${C[@]}" --seed 1 --weight-decay 0.05 --label-smoothing 0.1 --dropout 0.2 --out $P/reg_s1
) &
wait
