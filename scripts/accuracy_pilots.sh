#!/usr/bin/env bash
# Issue 14's registered validation pilots: the base recipe (docs/accuracy.md, the first attempt's `elastic`
# pilot) with each pilot's own changes, one thread each. Each runs/accuracy_NAME/pilots.sh calls this.
#   bash scripts/accuracy_pilots.sh NAME LANE [LANE ...]
# A LANE is pilots separated by ";", each "DIR FLAGS...", run one after the other; the lanes run at once.
# Files go to runs/accuracy_NAME/pilots/DIR, trials to study accuracy-NAME in studies/accuracy_NAME.db.
# Resumable: run it again after an interruption; finished pilots are left as they are and not recorded twice.
# PILOTS_ECHO=1 prints the commands instead of running them.
#   bash scripts/accuracy_pilots.sh ten "aff15_s0 --seed 0 --aug-strength 1.5" "aff15_s1 --seed 1 --aug-strength 1.5"
set -u
cd "$(dirname "$0")/.."
name=$1
shift
base=(.venv/bin/python scripts/accuracy_pilot.py --n-units-l1 1024 --n-units-l2 1024 --epochs 150 --ema-decay 0.999
      --aug-elastic-alpha 26.5 --precision bf16 --threads 1 --storage "sqlite:///studies/accuracy_$name.db"
      --study-name "accuracy-$name")

lane() {
  local pilot
  local -a pilots args
  IFS=';' read -ra pilots <<< "$1"
  for pilot in "${pilots[@]}"; do
    IFS=' ' read -ra args <<< "$pilot"
    ${PILOTS_ECHO:+echo} "${base[@]}" "${args[@]:1}" --out "runs/accuracy_$name/pilots/${args[0]}"
  done
}

for l in "$@"; do
  lane "$l" &
done
wait
