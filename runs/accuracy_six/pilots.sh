#!/usr/bin/env bash
# Issue 14, sixth attempt: the four registered validation pilots (docs/accuracy.md, "Sixth attempt"),
# two at a time with one thread each. Resumable: run this again after an interruption; finished pilots
# are left as they are and not recorded twice.
#   (setsid nohup bash runs/accuracy_six/pilots.sh >> runs/accuracy_six/pilots.out 2>&1 &)
exec bash "$(dirname "$0")/../../scripts/accuracy_pilots.sh" six \
  "w2048_s0 --seed 0 --n-units-l1 2048; deskew_s0 --seed 0 --deskew" \
  "w2048_s1 --seed 1 --n-units-l1 2048; deskew_s1 --seed 1 --deskew"
