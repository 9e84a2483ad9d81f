#!/usr/bin/env bash
# Student radioactivity experiment (issues 5 and 6): students trained by `tracemark redteam
# train-student` on watermarked completions of the default model mixed with clean text at several
# fractions, plus clean-only control students (several seeds) and the clean teacher itself, each
# tested with `tracemark probe --mode completion` (docs/probe.md): prompts cut from the account's
# served texts every STRIDE tokens, greedy continuations, every window a prompt showed excluded,
# global de-duplication, only windows of the served texts scored (Sander et al.'s supervised
# filter). Prints the table of p-values.
#
# Usage: bench/student_radioactivity.sh [BUILD_DIR]   (default: build)
# Environment (defaults in brackets): WORK [/tmp/student-radioactivity-v3] cache dir (keyring,
# generated data, students and probe results are reused across runs), DOCS [32] watermarked
# completions generated (wm_all.jsonl), TRAIN_DOCS [8] of them (the first ones) form the harvest
# the students train on and the probe prompts from (wm.jsonl), MAX_TOKENS [256] per completion, FRACTIONS ["0.01 0.05 0.10 0.50"], WM_SEEDS ["1"] seeds of the watermarked students,
# CONTROLS ["1 2 3"] seeds of the 0% students, STEPS [800], BATCH [16], CONTEXT [64], D_MODEL
# [64], LAYERS [2], THREADS [2], PROMPT [16] prompt tokens, STRIDE [64], TEACHER_TEXTS [8] texts
# for the clean-teacher control (0: skip it), SCHEME [gumbel]: scheme of the keyring made in WORK.
# Watermarked data: bench tool student_gen_data (batched decode of the default model, account 7).
# Clean data: the King James Pentateuch from Debian bible-kjv.
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/tracemark
GEN=$BUILD/bench/student_gen_data
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
WORK=${WORK:-/tmp/student-radioactivity-v3}
DOCS=${DOCS:-32}
TRAIN_DOCS=${TRAIN_DOCS:-8}
MAX_TOKENS=${MAX_TOKENS:-256}
FRACTIONS=${FRACTIONS:-"0.01 0.05 0.10 0.50"}
WM_SEEDS=${WM_SEEDS:-"1"}
CONTROLS=${CONTROLS:-"1 2 3"}
STEPS=${STEPS:-800}
BATCH=${BATCH:-16}
CONTEXT=${CONTEXT:-64}
D_MODEL=${D_MODEL:-64}
LAYERS=${LAYERS:-2}
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-16}
STRIDE=${STRIDE:-64}
TEACHER_TEXTS=${TEACHER_TEXTS:-8}
ACCOUNT=7
SCHEME=${SCHEME:-gumbel}

for f in "$BIN" "$MODEL"; do
  [ -e "$f" ] || { echo "missing $f (build tracemark and student_gen_data; run scripts/setup.sh)" >&2; exit 2; }
done
mkdir -p "$WORK"
KR=$WORK/keyring
[ -s "$KR" ] || "$BIN" keyring init --scheme "$SCHEME" "$KR"

if [ ! -s "$WORK/wm_all.jsonl" ]; then
  [ -x "$GEN" ] || { echo "missing $GEN (ninja student_gen_data)" >&2; exit 2; }
  "$GEN" "$MODEL" "$KR" "$ACCOUNT" "$WORK/wm_all.jsonl.part" "$DOCS" "$MAX_TOKENS" 1 16 "$THREADS"
  mv "$WORK/wm_all.jsonl.part" "$WORK/wm_all.jsonl"
fi
# Changing TRAIN_DOCS changes the harvest: use a new WORK (cached students would not match).
head -n "$TRAIN_DOCS" "$WORK/wm_all.jsonl" > "$WORK/wm.jsonl"
if [ ! -s "$WORK/clean.txt" ]; then
  command -v bible >/dev/null || { echo "clean text needs Debian bible-kjv (apt-get install bible-kjv)" >&2; exit 2; }
  # Verses without their references, 8 per paragraph (one document per blank-line paragraph).
  bible -f "Gen1:1-Deu34:12" | sed -E 's/^[^ ]+[0-9]+:[0-9]+ +//' | grep -v '^$' |
    awk '{printf "%s ", $0} NR % 8 == 0 {printf "\n\n"} END {printf "\n"}' > "$WORK/clean.txt"
fi
head -n "$TEACHER_TEXTS" "$WORK/wm.jsonl" > "$WORK/wm_teacher.jsonl"

probe() {  # SUSPECT_GGUF TEXTS OUT_JSON [--filter-text FILE]
  local suspect=$1 texts=$2 out=$3
  shift 3
  "$BIN" probe --keyring "$KR" --model "$MODEL" --suspect-gguf "$suspect" --mode completion --text "$texts" \
    --prompt-tokens "$PROMPT" --prompt-stride "$STRIDE" --max-tokens 48 --temperature 0 --threads "$THREADS" \
    --json "$@" > "$out"
}
probe_both() {  # NAME SUSPECT_GGUF TEXTS: supervised (filter = the served texts) and unfiltered
  local t0=$SECONDS
  probe "$2" "$3" "$WORK/$1.probe.json" --filter-text "$WORK/wm.jsonl"
  echo $((SECONDS - t0)) > "$WORK/$1.probe_s"
  probe "$2" "$3" "$WORK/$1.probe_nofilter.json"
}

train_and_probe() {  # NAME FRACTION SEED
  local name=$1 fraction=$2 seed=$3
  if [ ! -s "$WORK/$name.train.json" ]; then
    "$BIN" redteam train-student --teacher "$MODEL" --data "$WORK/wm.jsonl" --clean "$WORK/clean.txt" \
      --fraction "$fraction" --out "$WORK/$name.gguf" --steps "$STEPS" --batch "$BATCH" --context "$CONTEXT" \
      --d-model "$D_MODEL" --layers "$LAYERS" --seed "$seed" --threads "$THREADS" --json --quiet \
      > "$WORK/$name.train.json.part"
    mv "$WORK/$name.train.json.part" "$WORK/$name.train.json"
  fi
  probe_both "$name" "$WORK/$name.gguf" "$WORK/wm.jsonl"
}

names=()
for s in $WM_SEEDS; do
  for f in $FRACTIONS; do
    n="student_wm${f}_seed$s"
    train_and_probe "$n" "$f" "$s"
    names+=("$n")
  done
done
for s in $CONTROLS; do
  n="student_clean_seed$s"
  train_and_probe "$n" 0 "$s"
  names+=("$n")
done
if [ "$TEACHER_TEXTS" -gt 0 ]; then
  # The clean teacher (never trained on our outputs) continuing the same kind of prompts.
  probe_both teacher "$MODEL" "$WORK/wm_teacher.jsonl"
fi

python3 - "$WORK" "$TEACHER_TEXTS" "${names[@]}" <<'EOF'
import json, os, sys
work, teacher_texts, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print("| suspect | watermarked share | wm tokens in mix | epochs over wm | final loss | train s | probe s | "
      "prompts | tuples (filtered) | p (filtered) | verdict | tuples (unfiltered) | p (unfiltered) | verdict |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|")
def row(n, t):
    ps = open(f"{work}/{n}.probe_s").read().strip()
    p = json.load(open(f"{work}/{n}.probe.json"))
    q = json.load(open(f"{work}/{n}.probe_nofilter.json"))
    wm = t.get("watermarked_tokens", 0)
    epochs = t["tokens_seen"] * t["watermarked_share"] / wm if wm else 0
    print(f"| {n} | {t.get('watermarked_share', 0):.3f} | {wm} | {epochs:.1f} | "
          f"{t.get('final_loss', float('nan')):.3f} | {t.get('seconds', 0):.0f} | {ps} | {p['texts']} | "
          f"{p['tuples_scored']} | {p['p_value']:.3g} | {p['verdict']} | "
          f"{q['tuples_scored']} | {q['p_value']:.3g} | {q['verdict']} |")
for n in names:
    row(n, json.load(open(f"{work}/{n}.train.json")))
if teacher_texts > 0:
    row("teacher", {"tokens_seen": 0, "watermarked_share": 0})
EOF
