#!/usr/bin/env bash
# A/B comparison of two `tracemark` builds behind the same open-loop load (bench/gateway/README.md):
# both mock servers run side by side (same flags, own keyring and SQLite ledger each) and are
# driven in turn, ABBA-interleaved, REPS times, so that a busy shared machine hurts both variants
# alike. Prints one JSON line per run (variant, repetition, load average) and then, per variant,
# the median over repetitions of added p50 / p90 / p99 / p99.9.
#
# Usage: bench/gateway/ab.sh TRACEMARK_A TRACEMARK_B GATEWAY_LOAD
# Env: RPS (2000), DURATION (10), WARMUP (2), REPS (3), TOKENS (16), TOKEN_US (1000), CONNECTIONS (256),
#      SERVE_ARGS_A / SERVE_ARGS_B (extra `serve` flags per variant), TASKSET (e.g. "taskset -c 0,1")
set -euo pipefail
BIN_A="${1:?usage: ab.sh TRACEMARK_A TRACEMARK_B GATEWAY_LOAD}"
BIN_B="${2:?usage: ab.sh TRACEMARK_A TRACEMARK_B GATEWAY_LOAD}"
LOAD="${3:?usage: ab.sh TRACEMARK_A TRACEMARK_B GATEWAY_LOAD}"
RPS="${RPS:-2000}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
REPS="${REPS:-3}"
TOKENS="${TOKENS:-16}"
TOKEN_US="${TOKEN_US:-1000}"
CONNECTIONS="${CONNECTIONS:-256}"
TASKSET="${TASKSET:-}"
ENGINE_MS=$(python3 -c "print($TOKENS * $TOKEN_US / 1000)")
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

declare -A PORT KEY
start() {  # variant binary extra-args
  KEY[$1]=$(gw_account "$2" "$WORK/$1")
  gw_start_mock "$2" "$WORK/$1" "$TOKEN_US" "$TOKENS" "$3" "$TASKSET"
  PORT[$1]=$GW_PORT
}
start A "$BIN_A" "${SERVE_ARGS_A:-}"
start B "$BIN_B" "${SERVE_ARGS_B:-}"
echo "# machine: $(nproc) cores; $RPS rps, ${DURATION}s measured after ${WARMUP}s, $REPS reps ABBA; mock $TOKENS x $TOKEN_US us"
RESULTS="$WORK/results.jsonl"
for r in $(seq 1 "$REPS"); do
  order="A B"
  [ $((r % 2)) -eq 0 ] && order="B A"
  for v in $order; do
    la=$(cut -d' ' -f1 /proc/loadavg)
    # shellcheck disable=SC2086
    line=$($TASKSET "$LOAD" --port "${PORT[$v]}" --key "${KEY[$v]}" --model mock --max-tokens "$TOKENS" \
      --duration "$DURATION" --warmup "$WARMUP" --connections "$CONNECTIONS" --engine-ms "$ENGINE_MS" \
      --rps "$RPS" | tail -1)
    out=$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); j["variant"]=sys.argv[2]; j["rep"]=int(sys.argv[3]); j["load1"]=float(sys.argv[4]); print(json.dumps(j))' \
      "$line" "$v" "$r" "$la")
    echo "$out" | tee -a "$RESULTS"
  done
done
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for v in ("A", "B"):
    rs = [r for r in rows if r["variant"] == v]
    med = lambda k: statistics.median(r["added_ms"][k] for r in rs)
    print(json.dumps({"variant": v, "runs": len(rs),
                      "achieved_rps": round(statistics.median(r["achieved_rps"] for r in rs), 1),
                      "median_added_ms": {k: round(med(k), 3) for k in ("p50", "p90", "p99", "p999")},
                      "load1": [r["load1"] for r in rs]}))
PY
