#!/usr/bin/env bash
# Set everything up and run the main job: check the installation, load the sample knowledge base
# (users, groups, documents) and maintenance log, search as two users with different groups, and
# answer questions with the RAG chatbot and the agent on the embedded LM, then serve the chatbot
# (web chat page + REST API) until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "${FLYWHEEL_EXTRAS:-}"   # the runtime only; FLYWHEEL_EXTRAS=spark adds Spark
FW=.venv/bin/flywheel
$FW doctor
$FW users import samples/users.yaml
$FW docs import samples/knowledge/manifest.yaml --as admin
$FW maintenance load samples/maintenance
echo; echo "== The same search as a mechanic (alice) and as a customer-support agent (carol):"
$FW search "propeller hub retention bolt torque" --as alice -k 3
$FW search "propeller hub retention bolt torque" --as carol -k 3
echo; echo "== The RAG chatbot and the agent:"
# --sources prints the passages the answer may cite. The program a new user gets answers from them
# (a short phrase, or yes/no) and refuses only when no passage is relevant enough.
$FW ask "What torque do the propeller hub retention bolts need?" --as alice --sources
$FW ask "When is the next borescope inspection due on N417SK?" --as erin --program agent --sources
echo; echo "== Serving the chatbot (web page + REST API; Ctrl-C stops it)"
KEY=$($FW keys create alice | tail -1)
echo "Open http://${FLYWHEEL_SERVE__HOST:-127.0.0.1}:${FLYWHEEL_SERVE__PORT:-8000}/ and sign in with alice's API key:"
echo "  $KEY"
echo "or: curl -s http://127.0.0.1:${FLYWHEEL_SERVE__PORT:-8000}/v1/chat/completions -H \"Authorization: Bearer $KEY\" \\"
echo "      -H 'Content-Type: application/json' -d '{\"model\": \"rag\", \"messages\": [{\"role\": \"user\", \"content\": \"What is the checked baggage allowance?\"}]}'"
exec $FW serve
