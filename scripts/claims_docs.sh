#!/usr/bin/env bash
# Regenerate docs/claims.md's claims table and per-claim figures (docs/claim_*.png) from the shipped
# designed studies (claims_*) in studies.db.
# Usage: bash scripts/claims_docs.sh [OUT_DIR]   (the full report lands in OUT_DIR, default /tmp/claims-report)
# PYTHON=... picks the interpreter (default .venv/bin/python). PNG export needs Chromium (installed by
# bash scripts/setup.sh --with-system-deps).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/claims-report}
PY=${PYTHON:-.venv/bin/python}
"$PY" -m study report --designs all --storage sqlite:///studies.db --out "$OUT" --images
# A few figures, one per claim of the article (the rest are in the report).
CLAIMS=${CLAIMS:-"1a 2a 3a 4c 5a 5c 6a"}
for claim in $CLAIMS; do
  [ -f "$OUT/claim_$claim.png" ] || { echo "no figure for claim $claim: has its design run? (see $OUT/index.html)" >&2; exit 1; }
done
for claim in $CLAIMS; do
  cp "$OUT/claim_$claim.png" "docs/claim_$claim.png"
done
# Between the markers: the report's claims.md, verbatim (tests/study/test_claims_shipped.py checks it), then the figures.
# shellcheck disable=SC2086
"$PY" - "$OUT/claims.md" $CLAIMS <<'PY'
import sys
from pathlib import Path

begin, end = "<!-- design-claims:begin -->", "<!-- design-claims:end -->"
doc = Path("docs/claims.md").read_text(encoding="utf-8")
if begin not in doc or end not in doc:
    sys.exit(f"docs/claims.md lacks the markers {begin} / {end}")
head, rest = doc.split(begin, 1)
tail = rest.split(end, 1)[1]
figures = "\n".join(f"![claim {n}](claim_{n}.png)" for n in sys.argv[2:])
Path("docs/claims.md").write_text(f"{head}{begin}\n{Path(sys.argv[1]).read_text(encoding='utf-8')}\n{figures}\n{end}{tail}", encoding="utf-8")
PY
echo "docs/claim_*.png and the claims table in docs/claims.md updated from $OUT"
