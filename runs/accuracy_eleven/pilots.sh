#!/usr/bin/env bash
# Issue 14, eleventh attempt: the two registered validation pilots (docs/accuracy.md, "Eleventh attempt"):
# affine augmentation at strength 1.5 for 200 epochs, at once with one thread each. Resumable: run this
# again after an interruption; finished pilots are left as they are and not recorded twice.
#   (setsid nohup bash runs/accuracy_eleven/pilots.sh >> runs/accuracy_eleven/pilots.out 2>&1 &)
exec bash "$(dirname "$0")/../../scripts/accuracy_pilots.sh" eleven \
  "aff15e200_s0 --seed 0 --aug-strength 1.5 --epochs 200" \
  "aff15e200_s1 --seed 1 --aug-strength 1.5 --epochs 200"
