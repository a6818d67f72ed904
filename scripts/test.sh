#!/usr/bin/env bash
# Set up everything from nothing (a .venv with torch pinned to 2.13.0, the CPU
# wheel these machines carry) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# samples: the tests build tiny models with their own tokenizers and check the sample builder;
# eval: lm-eval, for the --lm-eval test (it does not pin torch, so the pin here holds).
.venv/bin/python -m pip install -q "torch==2.13.0" -e ".[collect,dev,samples,eval]"
# The layering contracts in pyproject.toml ([tool.importlinter]) hold, or nothing else runs.
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"
