#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh) and starts the main job: the OpenAI-compatible server on
# the default model (SmolLM2-135M-Instruct) with the embedded SQLite store under var/.
#   TM_HOST (default 127.0.0.1), TM_PORT (default 8080), TM_STATE_DIR (default var)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BIN=${TM_BUILD_DIR:-build}/tracemark
STATE=${TM_STATE_DIR:-var}
mkdir -p "$STATE"
chmod 700 "$STATE"
KEYRING="$STATE/keyring"
DB="sqlite:$STATE/tracemark.db"
if [ ! -f "$KEYRING" ]; then
  "$BIN" keyring init "$KEYRING"
fi
cat >&2 <<MSG
[start] serving models/SmolLM2-135M-Instruct.Q4_1.gguf on http://${TM_HOST:-127.0.0.1}:${TM_PORT:-8080}/v1
[start] a 'demo' account is created on first start (its API key is printed below); more with:
[start]   $BIN accounts create alice --db $DB --keyring $KEYRING
MSG
exec "$BIN" serve --model models/SmolLM2-135M-Instruct.Q4_1.gguf --keyring "$KEYRING" --db "$DB" \
  --host "${TM_HOST:-127.0.0.1}" --port "${TM_PORT:-8080}" --demo-account
