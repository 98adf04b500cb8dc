#!/usr/bin/env bash
# Create .venv and install Flywheel with the exact versions in constraints.txt.
# Idempotent: a second run only checks. The first run builds llama-cpp-python from source
# (about 4 minutes on 2 cores; pip caches the wheel afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Flywheel needs Python >= 3.11 (found: $("$PYTHON" --version 2>&1)). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $("$PYTHON" --version)…"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.flywheel-installed
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c 'import flywheel, llama_cpp, dspy' 2>/dev/null; then
  exit 0
fi
echo "Installing Flywheel and its pinned dependencies into .venv…"
.venv/bin/python -m pip install --quiet --upgrade "pip>=25" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev,bench]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c 'import flywheel, llama_cpp, dspy, lancedb, sentence_transformers' \
  || { echo "Installation failed: see the pip output above." >&2; exit 1; }
echo "$want" > "$stamp"
echo "Flywheel installed in .venv (activate with: source .venv/bin/activate)."
