#!/usr/bin/env bash
# `tracemark scan --max-token-prob` (the token-probability filter, docs/formats/scan.md) end to
# end on a small JSONL of the 5 committed watermarked answers (tests/data/redteam/planted_wm.jsonl)
# and 10 human documents (KJV lines):
#   - every document's p-value, tuples scored and account equal `tracemark detect
#     --max-token-prob` on the same text, and the filter does drop tuples;
#   - results and summary are byte-identical with --threads 1 and 2 and with world size 2;
#   - shards scanned with and without the filter never merge, and merge needs the same setting;
#   - --max-token-prob 0, 1.5 and a missing --model are usage errors (exit 2, one clear line).
# Usage: scan_token_prob.sh TRACEMARK_BINARY
BIN=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
source tests/lib/cli_test.sh
test_keyring "$tmp/k"
P=0.5
# Nearly every document is a results row at this threshold, so rows carry (almost) all p-values.
THR=0.999999

# Two files, so that with world size 2 each rank scores one.
mkdir "$tmp/in"
python3 - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
with open(f"{tmp}/in/a.jsonl", "w") as out:
    for line in open("tests/data/redteam/planted_wm.jsonl"):
        d = json.loads(line)
        out.write(json.dumps({"id": d["id"], "text": d["text"]}) + "\n")
with open(f"{tmp}/in/b.jsonl", "w") as out:
    for i, line in enumerate(open("tests/data/redteam/kjv_docs.txt")):
        if i == 10:
            break
        out.write(json.dumps({"id": f"kjv-{i}", "text": line.rstrip("\n")}) + "\n")
PY
cat "$tmp/in/a.jsonl" "$tmp/in/b.jsonl" > "$tmp/all.jsonl"

scan() {  # scan OUT [args...]
  local out=$1
  shift
  "$BIN" scan --keyring "$tmp/k" --model "$MODEL" "$tmp/in" --out "$out" --threshold "$THR" --quiet "$@" > /dev/null
}
scan "$tmp/t1" --threads 1 --max-token-prob $P
scan "$tmp/t2" --threads 2 --max-token-prob $P
scan "$tmp/off" --threads 2
for f in results.jsonl summary.json; do
  cmp -s "$tmp/t1/$f" "$tmp/t2/$f" || fail "--threads 1 and 2 give different $f"
done
# World size 2, merged with the same setting: the same bytes as world size 1.
scan "$tmp/w2" --threads 1 --max-token-prob $P --rank 0 --world-size 2
scan "$tmp/w2" --threads 1 --max-token-prob $P --rank 1 --world-size 2
"$BIN" scan merge "$tmp/w2" --keyring "$tmp/k" --model "$MODEL" --max-token-prob $P > /dev/null
for f in results.jsonl summary.json; do
  cmp -s "$tmp/t1/$f" "$tmp/w2/$f" || fail "world size 2 gives a different $f"
done
# Merge with another setting is refused (the setting is part of the scorer identity).
set +e
err=$("$BIN" scan merge "$tmp/w2" --keyring "$tmp/k" --model "$MODEL" 2>&1 >/dev/null); rc=$?
set -e
[ $rc = 2 ] || fail "merge without the scan's --max-token-prob: exit $rc, want 2"
echo "$err" | grep -q -- "--max-token-prob" || fail "merge without --max-token-prob: unclear error: $err"
# Shards of one job scanned with and without the filter never merge.
mkdir -p "$tmp/mixed/shards" "$tmp/mixed/completions"
cp "$tmp"/w2/shards/00000-of-00002.* "$tmp/mixed/shards/"
cp "$tmp"/w2/completions/00000-of-00002 "$tmp/mixed/completions/"
scan "$tmp/mixed" --threads 1 --rank 1 --world-size 2
set +e
"$BIN" scan merge "$tmp/mixed" > /dev/null 2>&1; rc=$?
set -e
[ $rc = 2 ] || fail "merge of shards with and without the filter: exit $rc, want 2"
# The setting without the scorer (no pooled test) is an error, not silently ignored.
set +e
err=$("$BIN" scan merge "$tmp/w2" --max-token-prob $P 2>&1 >/dev/null); rc=$?
set -e
[ $rc = 2 ] || fail "merge --max-token-prob without --keyring/--model: exit $rc, want 2"
echo "$err" | grep -q -- "--keyring" || fail "merge --max-token-prob without --keyring: unclear error: $err"

# Per document: scan's row == detect --max-token-prob on the same text.
python3 - "$tmp" "$BIN" "$MODEL" "$P" "$THR" <<'PY'
import json, subprocess, sys
tmp, binary, model, p, thr = sys.argv[1:6]
thr = float(thr)
def rows(d):
    return {r["doc_id"]: r for r in map(json.loads, open(f"{tmp}/{d}/results.jsonl"))}
on, off = rows("t1"), rows("off")
docs = [json.loads(l) for l in open(f"{tmp}/all.jsonl")]
planted_flagged = 0
for d in docs:
    det = json.loads(subprocess.run(
        [binary, "detect", "--keyring", f"{tmp}/k", "--model", model, "--json", "--threshold", str(thr),
         "--max-token-prob", p, "-"], input=d["text"], capture_output=True, text=True, check=True).stdout)
    r = on.get(d["id"])
    if r is None:
        assert det["p_value"] >= thr, (d["id"], det["p_value"], "detect flags what scan does not")
        continue
    for k_scan, k_det in (("p_value", "p_value"), ("log10_p_value", "log10_p_value"),
                          ("tokens_scored", "tokens_scored"), ("account", "account"),
                          ("account_p_value", "account_p_value"), ("key_version", "key_version")):
        assert r[k_scan] == det[k_det], (d["id"], k_scan, r[k_scan], det[k_det])
    # The filter drops tuples: fewer scored than without it.
    if d["id"] in off:
        assert r["tokens_scored"] < off[d["id"]]["tokens_scored"], (d["id"], r["tokens_scored"])
    if d["id"].startswith("wm-"):
        assert r["p_value"] < 1e-6, (d["id"], r["p_value"])
        planted_flagged += 1
    else:
        assert r["p_value"] > 1e-3, (d["id"], r["p_value"], "human text flagged")
assert planted_flagged == 5, planted_flagged
summary = {d: json.load(open(f"{tmp}/{d}/summary.json")) for d in ("t1", "off")}
assert summary["t1"]["documents_scanned"] == summary["off"]["documents_scanned"] == len(docs)
assert 0 < summary["t1"]["tokens_scored"] < 0.9 * summary["off"]["tokens_scored"], summary["t1"]["tokens_scored"]
assert 0 < summary["t1"]["pool_tuples"] < 0.9 * summary["off"]["pool_tuples"], summary["t1"]["pool_tuples"]
assert json.loads(summary["t1"]["job"]["scorer"])["max_token_prob"] == float(p)
assert "max_token_prob" not in json.loads(summary["off"]["job"]["scorer"])
print(f"{len(docs)} documents: scan == detect --max-token-prob {p}")
PY

# Usage errors: exit 2 and a line that names the option.
for bad in 0 1.5; do
  set +e
  err=$("$BIN" scan --keyring "$tmp/k" --model "$MODEL" "$tmp/all.jsonl" --out "$tmp/bad" --max-token-prob $bad 2>&1 >/dev/null); rc=$?
  set -e
  [ $rc = 2 ] || fail "--max-token-prob $bad: exit $rc, want 2"
  echo "$err" | grep -q -- "--max-token-prob must be in (0, 1)" || fail "--max-token-prob $bad: unclear error: $err"
done
set +e
err=$("$BIN" scan --keyring "$tmp/k" "$tmp/all.jsonl" --out "$tmp/bad" --max-token-prob $P 2>&1 >/dev/null); rc=$?
set -e
[ $rc = 2 ] || fail "--max-token-prob without --model: exit $rc, want 2"
echo "$err" | grep -q -- "--max-token-prob needs --model" || fail "without --model: unclear error: $err"
echo "1 passed, 0 failed"
