#!/usr/bin/env bash
# `tracemark redteam train-student` end to end through the CLI (docs/student.md): a small student
# trained on the committed watermarked + clean test data is written as GGUF, reports its loss and
# token counts in JSON, and is served by our engine (`tracemark generate --model student.gguf`).
# Usage errors exit 2. Usage: train_student_cli.sh TRACEMARK_BINARY
BIN=$1
source "$(dirname "$0")/../lib/cli_test.sh"

"$BIN" redteam train-student --teacher "$MODEL" --data tests/data/student/kgw_account7.jsonl \
  --clean tests/data/student/clean_kjv.txt --fraction 0.5 --out "$tmp/student.gguf" --steps 60 --lr 0.01 \
  --d-model 32 --layers 1 --heads 2 --context 32 --seed 3 --threads 2 --json --quiet > "$tmp/train.json"
cat "$tmp/train.json"
python3 - "$tmp/train.json" <<'PY' || fail "train-student JSON"
import json, sys
j = json.load(open(sys.argv[1]))
# 60 steps x 8 windows of up to 32 targets (a document stream's last window may be shorter).
assert j["steps"] == 60 and 0.9 * 60 * 8 * 32 < j["tokens_seen"] <= 60 * 8 * 32, j
assert 0.45 < j["watermarked_share"] < 0.55, j
assert j["final_loss"] < j["initial_loss"] - 1.0, j
for k in ("seconds", "tokens_per_second", "watermarked_tokens", "clean_tokens", "parameters"):
    assert k in j, k
PY
[ -s "$tmp/student.gguf" ] || fail "no GGUF written"

# Our engine serves the student (its tokenizer and chat template are the teacher's).
"$BIN" generate --model "$tmp/student.gguf" --prompt "The history of" --max-tokens 16 --seed 1 \
  --temperature 0 --json > "$tmp/gen.json"
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['usage']['completion_tokens'] >= 1, j" \
  "$tmp/gen.json" || fail "generate with the student"

# Usage errors: a fraction below 1 without clean text, a missing teacher.
set +e
"$BIN" redteam train-student --teacher "$MODEL" --data tests/data/student/kgw_account7.jsonl --fraction 0.5 \
  --out "$tmp/x.gguf" --steps 1 2>/dev/null; rc=$?
[ $rc = 2 ] || fail "fraction without --clean: exit $rc, want 2"
"$BIN" redteam train-student --teacher "$tmp/none.gguf" --data tests/data/student/kgw_account7.jsonl \
  --out "$tmp/x.gguf" 2>/dev/null; rc=$?
[ $rc = 2 ] || fail "missing teacher: exit $rc, want 2"
set -e
echo "PASS"
