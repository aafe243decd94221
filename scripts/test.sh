#!/usr/bin/env bash
# Set up (if needed) and run the default test suite (fast tests; `-m slow` runs the long ones).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev  # the dev extra and every data set the tests read
exec .venv/bin/python -m pytest -q "$@"
