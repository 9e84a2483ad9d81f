#!/usr/bin/env bash
# detect/scan --suspects through the CLI contract (docs/cli.md, "Suspects"): on the committed
# planted documents (tests/data/redteam/planted_wm.jsonl, accounts 101..505), a suspect list
# holding the writer names it; a list without the writer names nobody; @FILE lists work; bad
# lists are usage errors (exit 2, one line); scan rows carry the targeted fields and name only
# suspects; shards scanned with different lists do not merge. Usage: suspects.sh TRACEMARK_BINARY
BIN=$1
source "$(dirname "$0")/../lib/cli_test.sh"
test_keyring "$tmp/k"
PLANTED=tests/data/redteam/planted_wm.jsonl
python3 - "$PLANTED" "$tmp" <<'PY'
import json, sys
for i, line in enumerate(open(sys.argv[1])):
    d = json.loads(line)
    open(f"{sys.argv[2]}/doc{i}.txt", "w").write(d["text"])
    open(f"{sys.argv[2]}/doc{i}.account", "w").write(d["account"])
PY
[ "$(cat "$tmp/doc0.account")" = 101 ] || fail "planted doc 0 is not account 101"

# The writer (101) among the suspects: named, and the best-fitting suspect.
"$BIN" detect --keyring "$tmp/k" --model "$MODEL" --json --suspects 202,101,999 "$tmp/doc0.txt" > "$tmp/in.json"
[ "$(field account < "$tmp/in.json")" = 101 ] || fail "writer among suspects not named: $(cat "$tmp/in.json")"
[ "$(field targeted_suspect < "$tmp/in.json")" = 101 ] || fail "best suspect is not the writer"
[ "$(field suspects < "$tmp/in.json")" = 3 ] || fail "suspects count"
[ "$(field watermarked < "$tmp/in.json")" = True ] || fail "not detected with suspects"
# Not among them: still ours, nobody named. The same list from a file.
printf '202\n# a comment\n\n999\n' > "$tmp/list.txt"
"$BIN" detect --keyring "$tmp/k" --model "$MODEL" --json --suspects "@$tmp/list.txt" "$tmp/doc0.txt" > "$tmp/out.json"
[ "$(field account < "$tmp/out.json")" = None ] || fail "a non-writer suspect was named: $(cat "$tmp/out.json")"
[ "$(field suspects < "$tmp/out.json")" = 2 ] || fail "@FILE suspects count"
[ "$(field watermarked < "$tmp/out.json")" = True ] || fail "ours, but not detected with a list without the writer"

# Bad lists: exit 2 with one line on stderr.
for bad in "101,,202" "101,bob" "7,7" "1048576" "@$tmp/missing.txt"; do
  set +e
  "$BIN" detect --keyring "$tmp/k" --model "$MODEL" --suspects "$bad" "$tmp/doc0.txt" > /dev/null 2> "$tmp/err"; rc=$?
  set -e
  [ $rc = 2 ] || fail "--suspects '$bad': exit $rc, want 2"
  [ "$(wc -l < "$tmp/err")" = 1 ] || fail "--suspects '$bad': error is not one line: $(cat "$tmp/err")"
done

# scan: rows carry the targeted test; only suspects are named; every planted doc found. The
# pooled corpus test covers every suspect, attributed (101, 202) or not (999, who wrote nothing).
"$BIN" scan --keyring "$tmp/k" --model "$MODEL" "$PLANTED" --out "$tmp/scan" --suspects 101,202,999 --quiet > /dev/null
python3 - "$tmp/scan/results.jsonl" "$tmp/scan/summary.json" <<'PY' || fail "scan rows"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 5, len(rows)
for r in rows:
    assert "targeted_log10_p" in r and "targeted_suspect" in r, r
    assert r["account"] in (None, 101, 202), r["account"]
named = {r["doc_id"]: r["account"] for r in rows if r["account"] is not None}
assert named == {"wm-0": 101, "wm-1": 202}, named
pooled = {a["account"]: a for a in json.load(open(sys.argv[2]))["corpus"]["accounts"]}
assert set(pooled) == {101, 202, 999}, pooled
for a in (101, 202):
    assert pooled[a]["suspect"] and pooled[a]["flagged_documents"] == 1 and pooled[a]["log10_p_value"] < -3.5, pooled[a]
assert pooled[999]["suspect"] and pooled[999]["flagged_documents"] == 0, pooled[999]
assert pooled[999]["log10_p_value"] > -2 and pooled[999]["tuples"] > 0, pooled[999]
PY
# Shards of different lists never merge.
"$BIN" scan --keyring "$tmp/k" --model "$MODEL" "$PLANTED" --out "$tmp/mix" --suspects 101 --quiet \
  --world-size 2 --rank 0 > /dev/null
"$BIN" scan --keyring "$tmp/k" --model "$MODEL" "$PLANTED" --out "$tmp/mix" --suspects 202 --quiet \
  --world-size 2 --rank 1 > /dev/null
set +e
"$BIN" scan merge "$tmp/mix" > /dev/null 2>&1; rc=$?
set -e
[ $rc = 2 ] || fail "merge of shards with different suspect lists: exit $rc, want 2"
echo "1 passed, 0 failed"
