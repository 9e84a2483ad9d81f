#!/usr/bin/env bash
# Gateway overhead benchmark (bench/gateway/README.md): tracemark serve --engine mock with auth,
# rate limits, quotas, metering and the audit log on, driven open-loop by gateway_load; then the
# LiteLLM proxy in front of the same mock server, at the same rates, in the same run.
#
# Usage: bench/gateway/run.sh BUILD_DIR [LITELLM_VENV]
# Env: RPS (2000), DURATION (20), WARMUP (3), LOW_RPS (100: a rate LiteLLM sustains on 2 cores),
#      TOKENS (16), TOKEN_US (1000), STREAMS (1000), STREAM_TOKENS (200), STREAM_TOKEN_US (50000),
#      CONNECTIONS (256), SKIP_LITELLM (0), LITELLM_HIGH (1: also drive LiteLLM at RPS)
set -euo pipefail
BUILD="${1:?usage: run.sh BUILD_DIR [LITELLM_VENV]}"
LITELLM_VENV="${2:-/work/helpers/venv-litellm}"
RPS="${RPS:-2000}"
DURATION="${DURATION:-20}"
WARMUP="${WARMUP:-3}"
LOW_RPS="${LOW_RPS:-100}"
TOKENS="${TOKENS:-16}"
TOKEN_US="${TOKEN_US:-1000}"
STREAMS="${STREAMS:-1000}"
STREAM_TOKENS="${STREAM_TOKENS:-200}"
STREAM_TOKEN_US="${STREAM_TOKEN_US:-50000}"
CONNECTIONS="${CONNECTIONS:-256}"
SKIP_LITELLM="${SKIP_LITELLM:-0}"
LITELLM_HIGH="${LITELLM_HIGH:-1}"
TM="$BUILD/tracemark"
LOAD="$BUILD/bench/gateway/gateway_load"
ENGINE_MS=$(python3 -c "print($TOKENS * $TOKEN_US / 1000)")
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

wait_port() {  # file-with-port-line or port, timeout seconds
  local deadline=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "port $1 did not open" >&2
  return 1
}

KEY=$(gw_account "$TM" "$WORK")

echo "# machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# mock: $TOKENS tokens x $TOKEN_US us = $ENGINE_MS ms per reply"
gw_start_mock "$TM" "$WORK" "$TOKEN_US" "$TOKENS"
OURS_PORT=$GW_PORT
COMMON=(--key "$KEY" --model mock --max-tokens "$TOKENS" --duration "$DURATION" --warmup "$WARMUP"
        --connections "$CONNECTIONS" --engine-ms "$ENGINE_MS")
echo "## tracemark at $RPS rps"
"$LOAD" --port "$OURS_PORT" --rps "$RPS" "${COMMON[@]}" | sed 's/^/tracemark /' || true
echo "## tracemark at $LOW_RPS rps"
"$LOAD" --port "$OURS_PORT" --rps "$LOW_RPS" "${COMMON[@]}" | sed 's/^/tracemark /' || true

if [ "$SKIP_LITELLM" != "1" ]; then
  LPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$WORK/litellm.yaml" <<EOF
model_list:
  - model_name: mock
    litellm_params:
      model: openai/mock
      api_base: http://127.0.0.1:$OURS_PORT/v1
      api_key: $KEY
general_settings:
  master_key: sk-litellm-bench-master-key
litellm_settings:
  telemetry: false
EOF
  # No network: the bundled model cost map, no telemetry.
  (cd "$WORK" && LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False exec "$LITELLM_VENV/bin/litellm" --config "$WORK/litellm.yaml" --host 127.0.0.1 --port "$LPORT" \
     --num_workers 1 >"$WORK/litellm.log" 2>&1) &
  PIDS+=($!)
  wait_port "$LPORT" 120
  echo "# $("$LITELLM_VENV/bin/python" -c 'import importlib.metadata as m; print("litellm", m.version("litellm"))')"
  LCOMMON=(--key sk-litellm-bench-master-key --model mock --max-tokens "$TOKENS" --duration "$DURATION"
           --warmup "$WARMUP" --connections "$CONNECTIONS" --engine-ms "$ENGINE_MS")
  echo "## LiteLLM -> tracemark mock at $LOW_RPS rps"
  "$LOAD" --port "$LPORT" --rps "$LOW_RPS" "${LCOMMON[@]}" | sed 's/^/litellm /' || true
  if [ "$LITELLM_HIGH" = "1" ]; then
    echo "## LiteLLM -> tracemark mock at $RPS rps"
    "$LOAD" --port "$LPORT" --rps "$RPS" "${LCOMMON[@]}" | sed 's/^/litellm /' || true
  fi
fi

# Held SSE streams: a fresh mock with long streams (STREAM_TOKENS x STREAM_TOKEN_US each).
kill "${PIDS[0]}" 2>/dev/null || true
gw_start_mock "$TM" "$WORK" "$STREAM_TOKEN_US" "$STREAM_TOKENS"
echo "## tracemark: $STREAMS concurrent SSE streams of $STREAM_TOKENS tokens x $STREAM_TOKEN_US us"
"$LOAD" --port "$GW_PORT" --key "$KEY" --model mock --max-tokens "$STREAM_TOKENS" --streams "$STREAMS" \
  --stream-hold-s "$(python3 -c "print($STREAM_TOKENS * $STREAM_TOKEN_US / 1e6)")" | sed 's/^/tracemark /' || true
