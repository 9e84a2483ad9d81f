#!/usr/bin/env bash
# Student radioactivity experiment (issue 6): students trained by `tracemark redteam train-student`
# on watermarked text of the default model mixed with clean text at several fractions, plus
# clean-only control students, each tested with the open-model reading-mode probe
# (`tracemark probe --suspect-gguf`) on the watermarked texts. Prints the table of p-values.
#
# Usage: bench/student_radioactivity.sh [BUILD_DIR]   (default: build)
# Environment (defaults in brackets): WORK [/tmp/student-radioactivity] cache dir (the generated
# data is reused across runs), DOCS [160] watermarked completions, MAX_TOKENS [320] per
# completion, FRACTIONS ["0.01 0.05 0.10 0.50"], CONTROLS ["1 2"] seeds of the 0% students,
# STEPS [200], BATCH [8], CONTEXT [64], D_MODEL [64], LAYERS [2], THREADS [2].
# SCHEME [kgw-lefthash]: the scheme of the keyring created in WORK (first run).
# Watermarked data: bench tool student_gen_data (batched decode of the default model, account 7).
# The first two thirds of the completions train the students; the probe reads the last third
# (held out): reading mode never scores a (window, token) tuple that occurs in the texts it reads,
# so a student's memory of its own training texts is not evidence (docs/student.md).
# Clean data: the King James Pentateuch from Debian bible-kjv.
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/tracemark
GEN=$BUILD/bench/student_gen_data
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
WORK=${WORK:-/tmp/student-radioactivity}
DOCS=${DOCS:-160}
MAX_TOKENS=${MAX_TOKENS:-320}
FRACTIONS=${FRACTIONS:-"0.01 0.05 0.10 0.50"}
CONTROLS=${CONTROLS:-"1 2"}
STEPS=${STEPS:-200}
BATCH=${BATCH:-8}
CONTEXT=${CONTEXT:-64}
D_MODEL=${D_MODEL:-64}
LAYERS=${LAYERS:-2}
THREADS=${THREADS:-2}
ACCOUNT=7
SCHEME=${SCHEME:-kgw-lefthash}

for f in "$BIN" "$MODEL"; do
  [ -e "$f" ] || { echo "missing $f (build tracemark and student_gen_data; run scripts/setup.sh)" >&2; exit 2; }
done
mkdir -p "$WORK"
KR=$WORK/keyring
[ -s "$KR" ] || "$BIN" keyring init --scheme "$SCHEME" "$KR"

if [ ! -s "$WORK/wm.jsonl" ]; then
  [ -x "$GEN" ] || { echo "missing $GEN (ninja student_gen_data)" >&2; exit 2; }
  "$GEN" "$MODEL" "$KR" "$ACCOUNT" "$WORK/wm.jsonl.part" "$DOCS" "$MAX_TOKENS" 1 16 "$THREADS"
  mv "$WORK/wm.jsonl.part" "$WORK/wm.jsonl"
fi
n=$(wc -l < "$WORK/wm.jsonl")
head -n $((n * 2 / 3)) "$WORK/wm.jsonl" > "$WORK/wm_train.jsonl"
tail -n +$((n * 2 / 3 + 1)) "$WORK/wm.jsonl" > "$WORK/wm_probe.jsonl"
if [ ! -s "$WORK/clean.txt" ]; then
  command -v bible >/dev/null || { echo "clean text needs Debian bible-kjv (apt-get install bible-kjv)" >&2; exit 2; }
  # Verses without their references, 8 per paragraph (one document per blank-line paragraph).
  bible -f "Gen1:1-Deu34:12" | sed -E 's/^[^ ]+[0-9]+:[0-9]+ +//' | grep -v '^$' |
    awk '{printf "%s ", $0} NR % 8 == 0 {printf "\n\n"} END {printf "\n"}' > "$WORK/clean.txt"
fi

train_and_probe() {  # NAME FRACTION SEED
  local name=$1 fraction=$2 seed=$3
  "$BIN" redteam train-student --teacher "$MODEL" --data "$WORK/wm_train.jsonl" --clean "$WORK/clean.txt" \
    --fraction "$fraction" --out "$WORK/$name.gguf" --steps "$STEPS" --batch "$BATCH" --context "$CONTEXT" \
    --d-model "$D_MODEL" --layers "$LAYERS" --seed "$seed" --threads "$THREADS" --json --quiet > "$WORK/$name.train.json"
  "$BIN" probe --keyring "$KR" --model "$MODEL" --suspect-gguf "$WORK/$name.gguf" --text "$WORK/wm_probe.jsonl" \
    --threads "$THREADS" --json > "$WORK/$name.probe.json" || true  # exit 1 = radioactive verdict
}

names=()
for f in $FRACTIONS; do
  n="student_wm$f"
  train_and_probe "$n" "$f" 1
  names+=("$n")
done
for s in $CONTROLS; do
  n="student_clean_seed$s"
  train_and_probe "$n" 0 "$s"
  names+=("$n")
done

python3 - "$WORK" "${names[@]}" <<'EOF'
import json, sys
work, names = sys.argv[1], sys.argv[2:]
print("| student | watermarked share | wm tokens in mix | final loss | train s | tokens/s | probe tuples | p-value | verdict |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for n in names:
    t = json.load(open(f"{work}/{n}.train.json"))
    try:
        p = json.load(open(f"{work}/{n}.probe.json"))
    except Exception as e:  # noqa: BLE001
        p = {"p_value": float("nan"), "verdict": f"probe failed: {e}", "tuples_scored": 0}
    print(f"| {n} | {t['watermarked_share']:.3f} | {t['watermarked_tokens']} | {t['final_loss']:.3f} | "
          f"{t['seconds']:.0f} | {t['tokens_per_second']:.0f} | {p.get('tuples_scored', 0)} | "
          f"{p['p_value']:.3g} | {p['verdict']} |")
EOF
