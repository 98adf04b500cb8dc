#!/usr/bin/env bash
# Set up (if needed), lint, and run the whole test suite: unit, end-to-end, browser.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,bench   # the runtime plus the test tools (pytest, Playwright, Spark, openai, …)
bash scripts/browser.sh
export FLYWHEEL_HOME="${FLYWHEEL_TEST_HOME:-$(mktemp -d)}"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/lint-imports   # the import layers and no cycles (contracts in pyproject.toml)
.venv/bin/mypy           # src/flywheel: strict on the seams, a baseline elsewhere ([tool.mypy] in pyproject.toml)
.venv/bin/python -m pytest "$@"
