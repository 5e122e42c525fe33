#!/usr/bin/env bash
# Issue 14, tenth attempt (the ninth's lever, registered anew): the two registered validation pilots
# (docs/accuracy.md, "Tenth attempt"), at once with one thread each. Resumable: run this again after an
# interruption; finished pilots are left as they are and not recorded twice.
#   (setsid nohup bash runs/accuracy_ten/pilots.sh >> runs/accuracy_ten/pilots.out 2>&1 &)
exec bash "$(dirname "$0")/../../scripts/accuracy_pilots.sh" ten \
  "aff15_s0 --seed 0 --aug-strength 1.5" \
  "aff15_s1 --seed 1 --aug-strength 1.5"
