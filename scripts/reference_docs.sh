#!/usr/bin/env bash
# Regenerate docs/analysis.md's figures (docs/*.png) and claims table from the shipped studies.db.
# Usage: bash scripts/reference_docs.sh [OUT_DIR]   (the full report lands in OUT_DIR, default /tmp/reference-report)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/reference-report}
.venv/bin/mnist-study report --study-name reference --storage sqlite:///studies.db --out "$OUT"
mkdir -p docs
for name in curves_by_n_units_l1 curves_by_lr curves_by_batchnorm curves_by_normalization plateau_vs_init_std \
  plateau_vs_hidden_size oscillation_vs_lr batchnorm_on_off importance_fanova importance_ped_anova; do
  cp "$OUT/$name.png" "docs/$name.png"
done
# The docs' table is the report's claims.md, verbatim, between the markers (a test checks it).
.venv/bin/python - "$OUT/claims.md" <<'PY'
import sys
from pathlib import Path

begin, end = "<!-- claims-table:begin -->", "<!-- claims-table:end -->"
readme = Path("docs/analysis.md").read_text(encoding="utf-8")
head, rest = readme.split(begin, 1)
tail = rest.split(end, 1)[1]
Path("docs/analysis.md").write_text(f"{head}{begin}\n{Path(sys.argv[1]).read_text(encoding='utf-8')}{end}{tail}", encoding="utf-8")
PY
echo "docs/*.png and the claims table in docs/analysis.md updated from $OUT"
