#!/usr/bin/env bash
# Set up a light .venv (no torch needed for browsing) and open the app on sample_stats/.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
exec .venv/bin/lens "$@"
