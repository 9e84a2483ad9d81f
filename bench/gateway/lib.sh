# Shared by bench/gateway/run.sh and ab.sh (sourced, not run): a work folder removed on exit with
# every background server, a metered bench account, and `tracemark serve --engine mock` started on
# a free port.
#
# After sourcing: WORK (the folder), PIDS (background jobs killed on exit).
#   gw_account BIN DIR            keyring + SQLite ledger in DIR, prints the bench account's API key
#                                 (limits and quotas on, high enough not to refuse the benchmark)
#   gw_start_mock BIN DIR TOKEN_US TOKENS [EXTRA_ARGS] [LAUNCHER]
#                                 serves DIR's keyring and ledger; sets GW_PORT (log: DIR/serve-N.log,
#                                 one per start, so a later start never reads an earlier port)
WORK="$(mktemp -d /tmp/tm-gateway.XXXXXX)"
PIDS=()
GW_STARTS=0
gw_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap gw_cleanup EXIT

gw_account() {
  mkdir -p "$2"
  "$1" keyring init "$2/keyring" >/dev/null
  # Creating the account writes an audit entry; every request is metered through the usage journal.
  "$1" accounts create bench --db "sqlite:$2/ledger.db" --keyring "$2/keyring" \
    --rpm 10000000 --tpm 1000000000 --tokens-per-day 1000000000000 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])'
}

gw_start_mock() {
  GW_STARTS=$((GW_STARTS + 1))
  local bin="$1" dir="$2" log="$2/serve-$GW_STARTS.log"
  # shellcheck disable=SC2086
  ${6:-} "$bin" serve --engine mock --mock-token-latency-us "$3" --mock-output-tokens "$4" \
    --keyring "$dir/keyring" --db "sqlite:$dir/ledger.db" --host 127.0.0.1 --port 0 ${5:-} 2>"$log" &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    # (the log may not exist yet: the background job creates it)
    GW_PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log" 2>/dev/null | head -1 || true)
    [ -n "$GW_PORT" ] && return 0
    sleep 0.1
  done
  cat "$log" >&2
  return 1
}
