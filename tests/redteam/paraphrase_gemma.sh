#!/usr/bin/env bash
# `tracemark redteam desensitize --paraphrase-model` with Gemma 3 270M (docs/redteam.md): two of the
# committed planted SmolLM2 documents are rewritten through our engine, then detected. Asserts the
# paraphraser really rewrites (every output non-empty, at least one sharing < 80% of its word
# trigrams with the input) and that no paraphrase is attributed to a wrong account; whether the
# watermark survives is printed, not asserted (a light paraphrase keeps it, a summary removes it).
# Usage: paraphrase_gemma.sh TRACEMARK_BINARY
set -euo pipefail
BIN=$1
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
GEMMA=models/gemma-3-270m-q4_k_m.gguf
for f in "$MODEL" "$GEMMA"; do [ -f "$f" ] || { echo "SKIP: $f missing (run scripts/setup.sh --gemma)"; exit 0; }; done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

head -n 2 tests/data/redteam/planted_wm.jsonl > "$tmp/in.jsonl"
cp tests/data/cli/test.keyring "$tmp/k"
chmod 600 "$tmp/k"
"$BIN" redteam desensitize --paraphrase-model "$GEMMA" --threads 2 --seed 1 "$tmp/in.jsonl" "$tmp/out.jsonl" \
  > "$tmp/stats.json"
cat "$tmp/stats.json"
python3 - "$tmp" "$BIN" "$MODEL" <<'PY' || fail "paraphrase"
import json, subprocess, sys
tmp, binary, model = sys.argv[1:4]
stats = json.load(open(f"{tmp}/stats.json"))
assert stats["paraphrased"] == 2 and stats["records_out"] == 2, stats
src = [json.loads(l) for l in open(f"{tmp}/in.jsonl")]
out = [json.loads(l) for l in open(f"{tmp}/out.jsonl")]
rewritten = 0
for a, b in zip(src, out):
    wa, wb = a["text"].split(), b["text"].split()
    assert len(wb) >= 10, ("paraphrase too short", b["text"])
    tri = lambda w: set(zip(w, w[1:], w[2:]))
    shared = len(tri(wa) & tri(wb)) / max(1, len(tri(wb)))
    rewritten += shared < 0.8
    d = json.loads(subprocess.run([binary, "detect", "--keyring", f"{tmp}/k", "--model", model, "--json", "-"],
                                  input=b["text"].encode(), capture_output=True, check=True).stdout)
    print(f"doc {a['id']}: {len(wa)} -> {len(wb)} words, {shared:.0%} of trigrams kept, "
          f"log10 p {d['log10_p_value'] if 'log10_p_value' in d else d['p_value']}, account {d['account']} "
          f"(served to {a['account']})")
    assert d["account"] is None or str(d["account"]) == a["account"], ("wrong account", d, a["account"])
assert rewritten >= 1, "the paraphraser copied every input"
PY
echo "paraphrase_gemma: OK"
