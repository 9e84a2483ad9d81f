#!/usr/bin/env bash
# From the ledger to a suspect list (docs/cli.md): `accounts list --state S[,S] --ids` prints the
# ids of the accounts in those states, one per line, and `detect --suspects @FILE` takes the file
# as it is. A bad state is a usage error (exit 2, one line). Usage: accounts_suspects.sh TRACEMARK_BINARY
BIN=$1
source "$(dirname "$0")/../lib/cli_test.sh"
test_keyring "$tmp/k"
DB="sqlite:$tmp/ledger.db"
ids=()
for name in alice bob carol dave; do
  ids+=("$("$BIN" accounts create "$name" --db "$DB" --keyring "$tmp/k" |
    python3 -c "import json,sys; print(json.load(sys.stdin)['id'])")")
done
"$BIN" accounts suspend "${ids[1]}" --db "$DB" --keyring "$tmp/k" --reason "harvesting pattern" > /dev/null
"$BIN" accounts throttle "${ids[2]}" --db "$DB" --keyring "$tmp/k" --reason "burst" > /dev/null
"$BIN" accounts suspend "${ids[3]}" --db "$DB" --keyring "$tmp/k" --reason "same org" > /dev/null

"$BIN" accounts list --db "$DB" --state suspended --ids > "$tmp/suspended.txt"
[ "$(cat "$tmp/suspended.txt")" = "$(printf '%s\n%s' "${ids[1]}" "${ids[3]}")" ] ||
  fail "suspended ids: $(cat "$tmp/suspended.txt")"
[ "$("$BIN" accounts list --db "$DB" --state suspended,throttled --ids | wc -l)" = 3 ] || fail "two states"
[ "$("$BIN" accounts list --db "$DB" --state terminated --ids | wc -l)" = 0 ] || fail "no terminated account"
# JSON output filtered the same way; no filter lists everyone.
"$BIN" accounts list --db "$DB" --state throttled |
  python3 -c "import json,sys; a=json.load(sys.stdin); assert [x['state'] for x in a]==['throttled'], a" ||
  fail "JSON --state"
[ "$("$BIN" accounts list --db "$DB" --ids | wc -l)" = 4 ] || fail "all ids"

set +e
"$BIN" accounts list --db "$DB" --state suspendedd --ids > /dev/null 2> "$tmp/err"; rc=$?
set -e
[ $rc = 2 ] || fail "bad state: exit $rc, want 2"
[ "$(wc -l < "$tmp/err")" = 1 ] || fail "bad state: error is not one line: $(cat "$tmp/err")"

# The list is a valid --suspects file: targeted detection runs over it.
python3 -c "import json; print(json.loads(open('tests/data/redteam/planted_wm.jsonl').readline())['text'])" > "$tmp/doc.txt"
"$BIN" detect --keyring "$tmp/k" --model "$MODEL" --json --suspects "@$tmp/suspended.txt" "$tmp/doc.txt" > "$tmp/d.json"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['suspects']==2 and d['account'] is None, d" \
  "$tmp/d.json" || fail "detect over the ledger's suspect list: $(cat "$tmp/d.json")"
echo "accounts_suspects: ok"
