#!/usr/bin/env bash
# Create .venv and install Flywheel with the exact versions in constraints.txt.
# Usage: scripts/setup.sh [EXTRAS]  — the runtime only by default (what the demo needs); EXTRAS adds
# optional groups from pyproject.toml, comma-separated: spark (Spark batch), dev (the test suite:
# scripts/test.sh passes dev,bench), bench (the LangChain comparison). Extras installed earlier stay.
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
want="$(cat pyproject.toml constraints.txt scripts/setup.sh scripts/llama-cmake-args.sh | sha256sum | cut -d' ' -f1)"
# The stamp holds the hash on its first line and the installed extras on its second.
had="$(sed -n 2p "$stamp" 2>/dev/null || true)"
extras="$(printf '%s\n' "${1:-}" "$had" | tr ', ' '\n\n' | grep -v '^$' | sort -u | paste -sd, - || true)"
if [ -f "$stamp" ] && [ "$(sed -n 1p "$stamp")" = "$want" ] && [ "$extras" = "$had" ] \
   && .venv/bin/python -c 'import flywheel, llama_cpp, dspy' 2>/dev/null; then
  exit 0
fi
echo "Installing Flywheel${extras:+ (extras: $extras)} and its pinned dependencies into .venv…"
.venv/bin/python -m pip install --quiet --upgrade "pip>=25" 2>&1 | grep -v "^WARNING: Location" || true

# llama.cpp is compiled for this CPU's instruction sets (scripts/llama-cmake-args.sh says why and how).
LLAMA_CMAKE_ARGS="${LLAMA_CMAKE_ARGS:-$(scripts/llama-cmake-args.sh)}"
llama_pin="$(grep -iE '^llama[-_]cpp[-_]python==' constraints.txt)"
wheels="${XDG_CACHE_HOME:-$HOME/.cache}/flywheel/llama-wheels/$(echo "$llama_pin $LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-16)"
if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "Building $llama_pin for this CPU family (about 4 minutes on 2 cores, once)…"
  mkdir -p "$wheels"
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" .venv/bin/python -m pip wheel --quiet --no-deps --no-cache-dir "$llama_pin" \
    -w "$wheels" 2>&1 | grep -v "^WARNING: Location" || true
fi
.venv/bin/python -m pip install --quiet --force-reinstall --no-deps "$wheels"/llama_cpp_python-*.whl 2>&1 \
  | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".${extras:+[$extras]}" 2>&1 \
  | grep -v "^WARNING: Location" || true
.venv/bin/python -c 'import flywheel, llama_cpp, dspy, lancedb, sentence_transformers' \
  || { echo "Installation failed: see the pip output above." >&2; exit 1; }
# The embedded model must decode a real prompt (a crash here means llama.cpp was built for another CPU).
.venv/bin/python -m flywheel.lm.selftest \
  || { echo "The embedded LM does not run on this machine: rm -rf \"$wheels\" and rerun, or set LLAMA_CMAKE_ARGS." >&2; exit 1; }
# The embedder's ONNX graph, exported from the packaged weights once (else the first search does it).
.venv/bin/python -m flywheel.knowledge.minilm \
  || echo "Could not export the embedder to ONNX: Flywheel will embed with torch (slower)." >&2
printf '%s\n%s\n' "$want" "$extras" > "$stamp"
echo "Flywheel installed in .venv (activate with: source .venv/bin/activate)."
