#!/usr/bin/env bash
# Issue 14, third attempt: the seven registered validation pilots (docs/accuracy.md, "Third attempt"),
# two at a time with one thread each. Resumable: run this again after an interruption; finished pilots
# resume from their final checkpoint in seconds and are not recorded twice.
#   (setsid nohup bash runs/accuracy_reg/pilots.sh > runs/accuracy_reg/pilots.out 2>&1 &)
exec bash "$(dirname "$0")/../../scripts/accuracy_pilots.sh" reg \
  "base_s1 --seed 1; wd05_s0 --seed 0 --weight-decay 0.05; ls10_s0 --seed 0 --label-smoothing 0.1; reg_s0 --seed 0 --weight-decay 0.05 --label-smoothing 0.1 --dropout 0.2" \
  "wd05_s1 --seed 1 --weight-decay 0.05; ls10_s1 --seed 1 --label-smoothing 0.1; reg_s1 --seed 1 --weight-decay 0.05 --label-smoothing 0.1 --dropout 0.2"
