#!/usr/bin/env bash
# Regenerates tests/data/probe/marked.jsonl: watermarked outputs of the default model under the
# committed test-only keyring (tests/data/cli/test.keyring), account 4242, one JSON object per
# line {"id", "prompt", "text"}. The probe tests read them as "our served data".
# Usage: tools/gen_probe_texts.sh TRACEMARK_BINARY
set -euo pipefail
BIN=$1
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
OUT=tests/data/probe/marked.jsonl
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp tests/data/cli/test.keyring "$tmp/k"
chmod 600 "$tmp/k"
prompts=(
  "Write a long essay about the history of lighthouses."
  "Explain how the human heart works, in detail."
  "Describe the life cycle of a star."
  "Write a story about a cat who learns to fly."
  "Explain the rules of chess to a beginner."
  "Describe the city of Rome for a tourist."
  "Write a guide to growing tomatoes at home."
  "Explain how computers store numbers."
  "Describe the causes and effects of the industrial revolution."
  "Write a letter from a sailor to his family."
  "Explain how rainbows form."
  "Describe the migration of birds."
)
: > "$tmp/out.jsonl"
i=0
for p in "${prompts[@]}"; do
  i=$((i + 1))
  "$BIN" generate --model "$MODEL" --chat --keyring "$tmp/k" --account 4242 --seed "$i" \
    --temperature 1 --max-tokens 220 --json --prompt "$p" > "$tmp/g.json"
  python3 -c 'import json,sys; g=json.load(open(sys.argv[1])); print(json.dumps({"id": int(sys.argv[2]), "prompt": sys.argv[3], "text": g["text"]}))' \
    "$tmp/g.json" "$i" "$p" >> "$tmp/out.jsonl"
done
mv "$tmp/out.jsonl" "$OUT"
wc -c "$OUT"
