#!/usr/bin/env bash
# Create .venv and install mnist-study with its test tools. Safe to rerun.
# TORCH_SPEC picks the PyTorch build: the default 2.13.0 is a local CPU wheel on this project's
# machines; a CUDA user can run  TORCH_SPEC="torch" bash scripts/setup.sh  (PyPI's Linux build has CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import torch, optuna, mnist_fc, study; print('mnist-study ready: torch', torch.__version__, '| optuna', optuna.__version__)"
