#!/usr/bin/env bash
# Create .venv and install mnist-study with its test tools. Safe to rerun.
# TORCH_SPEC picks the PyTorch build: the default 2.13.0 is a local CPU wheel on this project's
# machines; a CUDA user can run  TORCH_SPEC="torch" bash scripts/setup.sh  (PyPI's Linux build has CUDA).
# --with-system-deps (opt-in; as root where apt-get exists) also installs the Debian packages the tests
# use when they are missing: chromium (kaleido's PNG/SVG export and the browser tests) and postgresql.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_SYSTEM_DEPS=0
for arg in "$@"; do
  case "$arg" in
    --with-system-deps) WITH_SYSTEM_DEPS=1 ;;
    -h | --help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (known: --with-system-deps)" >&2; exit 2 ;;
  esac
done
if [ "$WITH_SYSTEM_DEPS" = 1 ]; then
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  [ -d /usr/lib/postgresql/15/bin ] || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing ${missing[*]} with apt-get"
      apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
    else
      echo "setup: WARNING: missing system packages: ${missing[*]}; install them as root" \
        "(apt-get install ${missing[*]}) or the report and browser tests fail" >&2
    fi
  fi
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import torch, optuna, mnist_fc, study; print('mnist-study ready: torch', torch.__version__, '| optuna', optuna.__version__)"
