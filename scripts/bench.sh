#!/usr/bin/env bash
# Engine speed vs llama.cpp in one run: prefill-512 and decode-128 tok/s at 2 threads on the same
# GGUF files, plus resident memory. Usage: scripts/bench.sh [MODEL.gguf ...]
#   BUILD_DIR (default build), ORACLE_PY (default /work/oracle/bin/python), THREADS (default 2),
#   PREFILL (512), DECODE (128), REPS (3 per round), ROUNDS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
ORACLE_PY=${ORACLE_PY:-/work/oracle/bin/python}
THREADS=${THREADS:-2}
PREFILL=${PREFILL:-512}
DECODE=${DECODE:-128}
REPS=${REPS:-3}
ARGS=(--threads "$THREADS" --prefill "$PREFILL" --decode "$DECODE" --reps "$REPS")
if [ "$#" -eq 0 ]; then
  set -- models/SmolLM2-135M-Instruct.Q4_1.gguf models/gemma-3-270m-q4_k_m.gguf
fi
if [ ! -x "$BUILD_DIR/bench/engine_bench" ]; then
  echo "bench.sh: $BUILD_DIR/bench/engine_bench is missing; build it with: ninja -C $BUILD_DIR engine_bench" >&2
  exit 2
fi
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), threads $THREADS," \
  "prefill $PREFILL, decode $DECODE, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %10s %10s %10s %10s %8s %8s %9s\n' model ours_pp llama_pp ours_tg llama_tg pp_ratio tg_ratio rss_mib
# The machine may be shared: each implementation runs ROUNDS times, alternating, and the best
# round of each counts (the least disturbed estimate of its speed).
ROUNDS=${ROUNDS:-2}
for m in "$@"; do
  if [ ! -f "$m" ]; then echo "skip $m (missing)"; continue; fi
  runs=()
  for _ in $(seq "$ROUNDS"); do
    runs+=("$("$BUILD_DIR/bench/engine_bench" --model "$m" "${ARGS[@]}" 2>/dev/null)")
    runs+=("$("$ORACLE_PY" tools/bench_llamacpp.py --model "$m" "${ARGS[@]}" 2>/dev/null)")
  done
  "$ORACLE_PY" - "$m" "${runs[@]}" <<'PY'
import json, os, sys
m = sys.argv[1]
runs = [json.loads(a) for a in sys.argv[2:]]
ours = [r for r in runs if r["impl"] == "tracemark"]
ref = [r for r in runs if r["impl"] == "llama.cpp"]
opp, rpp = max(r["prefill_tok_s"] for r in ours), max(r["prefill_tok_s"] for r in ref)
otg, rtg = max(r["decode_tok_s"] for r in ours), max(r["decode_tok_s"] for r in ref)
o = ours[0]
print(f"{os.path.basename(m)[:34]:<34} {opp:10.1f} {rpp:10.1f} {otg:10.1f} {rtg:10.1f} {opp/rpp:8.2f} "
      f"{otg/rtg:8.2f} {max(r['peak_rss_mib'] for r in ours):9.1f}")
print(f"  memory: peak RSS {max(r['peak_rss_mib'] for r in ours):.1f} MiB vs file {o['file_mib']:.1f} + "
      f"KV {o['kv_mib']:.1f} + 64 = {o['file_mib'] + o['kv_mib'] + 64:.1f} MiB budget")
PY
done
