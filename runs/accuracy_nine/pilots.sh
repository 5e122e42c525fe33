#!/usr/bin/env bash
# Issue 14, ninth attempt (conditional on the eighth picking no arm): the two registered validation pilots
# (docs/accuracy.md, "Ninth attempt"), at once with one thread each. Resumable: run this again after an
# interruption; finished pilots are left as they are and not recorded twice.
#   (setsid nohup bash runs/accuracy_nine/pilots.sh >> runs/accuracy_nine/pilots.out 2>&1 &)
exec bash "$(dirname "$0")/../../scripts/accuracy_pilots.sh" nine \
  "aff15_s0 --seed 0 --aug-strength 1.5" \
  "aff15_s1 --seed 1 --aug-strength 1.5"
