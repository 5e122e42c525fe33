#!/usr/bin/env bash
# Issue 14, fifth attempt: the four registered validation pilots (docs/accuracy.md, "Fifth attempt"),
# two at a time with one thread each. Resumable: run this again after an interruption; finished pilots
# resume from their final checkpoint in seconds and are not recorded twice.
#   (setsid nohup bash runs/accuracy_lean/pilots.sh >> runs/accuracy_lean/pilots.out 2>&1 &)
exec bash "$(dirname "$0")/../../scripts/accuracy_pilots.sh" lean \
  "ls0_s0 --seed 0 --label-smoothing 0; lean_s0 --seed 0 --label-smoothing 0 --dropout 0 --weight-decay 0" \
  "ls0_s1 --seed 1 --label-smoothing 0; lean_s1 --seed 1 --label-smoothing 0 --dropout 0 --weight-decay 0"
