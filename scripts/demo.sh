#!/usr/bin/env bash
# Set everything up and run the main job: check the installation, load the sample knowledge base
# (users, groups, documents) and maintenance log, search as two users with different groups, and
# answer questions with the RAG chatbot and the agent on the embedded LM.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
FW=.venv/bin/flywheel
$FW doctor
$FW users import samples/users.yaml
$FW docs import samples/knowledge/manifest.yaml --as admin
$FW maintenance load samples/maintenance
echo; echo "== The same search as a mechanic (alice) and as a customer-support agent (carol):"
$FW search "propeller hub retention bolt torque" --as alice -k 3
$FW search "propeller hub retention bolt torque" --as carol -k 3
echo; echo "== The RAG chatbot and the agent:"
# --sources prints the passages the answer may cite (the embedded 135M model is cautious: it often
# answers "could not find" until a program is optimized; the passages show what it was given).
$FW ask "What torque do the propeller hub retention bolts need?" --as alice --sources
$FW ask "When is the next borescope inspection due on N417SK?" --as erin --program agent --sources
