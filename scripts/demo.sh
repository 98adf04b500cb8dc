#!/usr/bin/env bash
# Set everything up and run the main job: check the installation, load the sample knowledge base
# (users, groups, documents), search it as two users with different groups, and ask the embedded LM.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
FW=.venv/bin/flywheel
$FW doctor
$FW users import samples/users.yaml
$FW docs import samples/knowledge/manifest.yaml --as admin
$FW search "How long may an MEL category C item stay deferred?" --as alice -k 3
$FW search "How long may an MEL category C item stay deferred?" --as carol -k 3
$FW lm ask "How many engines does an ATR 72-600 have?" \
  --context "The ATR 72-600 is a twin-engine turboprop regional airliner with two PW127M engines."
