#!/usr/bin/env bash
# Issue 14, seventh attempt: the two registered validation pilots (docs/accuracy.md, "Seventh attempt"),
# at once with one thread each. Resumable: run this again after an interruption; finished pilots are
# left as they are and not recorded twice.
#   (setsid nohup bash runs/accuracy_seven/pilots.sh >> runs/accuracy_seven/pilots.out 2>&1 &)
exec bash "$(dirname "$0")/../../scripts/accuracy_pilots.sh" seven \
  "nesterov_s0 --seed 0 --optimizer nesterov --momentum 0.9 --lr 0.1" \
  "nesterov_s1 --seed 1 --optimizer nesterov --momentum 0.9 --lr 0.1"
