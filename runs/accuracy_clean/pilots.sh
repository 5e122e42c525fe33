#!/usr/bin/env bash
# Issue 14, fourth attempt: the four registered validation pilots (docs/accuracy.md, "Fourth attempt"),
# two at a time with one thread each. Resumable: run this again after an interruption; finished pilots
# resume from their final checkpoint in seconds and are not recorded twice.
#   (setsid nohup bash runs/accuracy_clean/pilots.sh >> runs/accuracy_clean/pilots.out 2>&1 &)
exec bash "$(dirname "$0")/../../scripts/accuracy_pilots.sh" clean \
  "clean15_s0 --seed 0 --aug-clean-epochs 15; clean30_s0 --seed 0 --aug-clean-epochs 30" \
  "clean15_s1 --seed 1 --aug-clean-epochs 15; clean30_s1 --seed 1 --aug-clean-epochs 30"
