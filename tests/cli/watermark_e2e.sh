#!/usr/bin/env bash
# End to end through the CLI contract (docs/cli.md): keyring init, generate with an account's
# watermark, detect -> watermarked and attributed to that account; unmarked text -> not
# watermarked; usage errors exit 2. Usage: watermark_e2e.sh TRACEMARK_BINARY
BIN=$1
source "$(dirname "$0")/../lib/cli_test.sh"

"$BIN" keyring init "$tmp/keyring"
[ "$(stat -c %a "$tmp/keyring")" = 600 ] || fail "keyring mode is not 0600"
"$BIN" keyring init "$tmp/keyring" 2>/dev/null && fail "keyring init overwrote an existing file"

# Generation and detection use a committed test-only keyring, so the same seed gives the same
# bytes and the same verdict on every run (power is measured in bench/, not here).
test_keyring "$tmp/test.keyring"
KR="$tmp/test.keyring"
PROMPT="Write a long essay about the history of lighthouses, with many details."
"$BIN" generate --model "$MODEL" --chat --keyring "$KR" --account 4242 --seed 1 \
  --temperature 1 --max-tokens 400 --json --prompt "$PROMPT" > "$tmp/gen.json"
python3 -c "import json,sys; open(sys.argv[2],'w').write(json.load(open(sys.argv[1]))['text'])" \
  "$tmp/gen.json" "$tmp/marked.txt"
"$BIN" detect --keyring "$KR" --model "$MODEL" --json "$tmp/marked.txt" > "$tmp/det.json"
cat "$tmp/det.json"
[ "$(field watermarked < "$tmp/det.json")" = True ] || fail "marked text not detected"
[ "$(field account < "$tmp/det.json")" = 4242 ] || fail "marked text not attributed to account 4242"

# The same prompt and seed without a keyring: no mark. A keyring readable by others is refused.
chmod 644 "$KR"
set +e
"$BIN" detect --keyring "$KR" --model "$MODEL" --json "$tmp/marked.txt" >/dev/null 2>&1; rc=$?
set -e
[ $rc = 2 ] || fail "world-readable keyring: exit $rc, want 2"
chmod 600 "$KR"
"$BIN" generate --model "$MODEL" --chat --seed 1 --temperature 1 --max-tokens 400 --json \
  --prompt "$PROMPT" > "$tmp/plain.json"
python3 -c "import json,sys; open(sys.argv[2],'w').write(json.load(open(sys.argv[1]))['text'])" \
  "$tmp/plain.json" "$tmp/plain.txt"
"$BIN" detect --keyring "$KR" --model "$MODEL" --json - < "$tmp/plain.txt" > "$tmp/det2.json"
[ "$(field watermarked < "$tmp/det2.json")" = False ] || fail "unmarked text flagged"

# Token-probability filter (--max-token-prob): scores fewer tuples, still detects the marked
# text and still passes the unmarked one; out-of-range values are usage errors.
"$BIN" detect --keyring "$KR" --model "$MODEL" --json --max-token-prob 0.5 "$tmp/marked.txt" > "$tmp/det3.json"
[ "$(field watermarked < "$tmp/det3.json")" = True ] || fail "--max-token-prob: marked text not detected"
[ "$(field tokens_scored < "$tmp/det3.json")" -lt "$(field tokens_scored < "$tmp/det.json")" ] ||
  fail "--max-token-prob: no token filtered"
"$BIN" detect --keyring "$KR" --model "$MODEL" --json --max-token-prob 0.5 "$tmp/plain.txt" > "$tmp/det4.json"
[ "$(field watermarked < "$tmp/det4.json")" = False ] || fail "--max-token-prob: unmarked text flagged"
set +e
"$BIN" detect --keyring "$KR" --model "$MODEL" --max-token-prob 1.5 "$tmp/marked.txt" 2>/dev/null; rc=$?
set -e
[ $rc = 2 ] || fail "--max-token-prob 1.5: exit $rc, want 2"

# Contract: usage and input errors exit 2 with one line on stderr.
set +e
"$BIN" generate --model /nonexistent.gguf --prompt hi 2> "$tmp/err"; rc=$?
set -e
[ $rc = 2 ] || fail "missing model: exit $rc, want 2"
[ "$(wc -l < "$tmp/err")" = 1 ] || fail "error is not one line: $(cat "$tmp/err")"
set +e
"$BIN" generate --model "$MODEL" --prompt hi --account 3 2>/dev/null; rc=$?
set -e
[ $rc = 2 ] || fail "--account without --keyring: exit $rc, want 2"
echo "1 passed, 0 failed"
