#!/usr/bin/env bash
# Issue 14, eighth attempt: the four registered validation pilots (docs/accuracy.md, "Eighth attempt"),
# two at a time with one thread each: two lanes, each an arm's seed 0 then seed 1 (they ran in rounds as
# registered, both seed-0 pilots then both seed-1, before this script became a call to the shared runner).
# Resumable: run this again after an interruption; finished pilots are left as they are, not recorded twice.
#   (setsid nohup bash runs/accuracy_eight/pilots.sh >> runs/accuracy_eight/pilots.out 2>&1 &)
exec bash "$(dirname "$0")/../../scripts/accuracy_pilots.sh" eight \
  "lr_half_s0 --seed 0 --lr 0.00343; lr_half_s1 --seed 1 --lr 0.00343" \
  "lr_double_s0 --seed 0 --lr 0.0137; lr_double_s1 --seed 1 --lr 0.0137"
