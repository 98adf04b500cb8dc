#!/usr/bin/env bash
# Set everything up and run the main job: check the installation, then ask the embedded LM.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
FW=.venv/bin/flywheel
$FW doctor
$FW lm ask "How many engines does an ATR 72-600 have?" \
  --context "The ATR 72-600 is a twin-engine turboprop regional airliner with two PW127M engines."
