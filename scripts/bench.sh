#!/usr/bin/env bash
# Engine speed vs llama.cpp in one run: prefill-512 and decode-128 tok/s at 2 threads on the same
# GGUF files, plus resident memory. Usage: scripts/bench.sh [MODEL.gguf ...]
#   BUILD_DIR (default build), ORACLE_PY (default /work/oracle/bin/python), THREADS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
ORACLE_PY=${ORACLE_PY:-/work/oracle/bin/python}
THREADS=${THREADS:-2}
if [ "$#" -eq 0 ]; then
  set -- models/SmolLM2-135M-Instruct.Q4_1.gguf models/gemma-3-270m-q4_k_m.gguf
fi
if [ ! -x "$BUILD_DIR/bench/engine_bench" ]; then
  echo "bench.sh: $BUILD_DIR/bench/engine_bench is missing; build it with: ninja -C $BUILD_DIR engine_bench" >&2
  exit 2
fi
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), threads $THREADS"
printf '%-34s %10s %10s %10s %10s %8s %8s %9s\n' model ours_pp llama_pp ours_tg llama_tg pp_ratio tg_ratio rss_mib
for m in "$@"; do
  if [ ! -f "$m" ]; then echo "skip $m (missing)"; continue; fi
  ours=$("$BUILD_DIR/bench/engine_bench" --model "$m" --threads "$THREADS")
  ref=$("$ORACLE_PY" tools/bench_llamacpp.py --model "$m" --threads "$THREADS")
  "$ORACLE_PY" - "$m" "$ours" "$ref" <<'PY'
import json, os, sys
m, o, r = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"{os.path.basename(m)[:34]:<34} {o['prefill_tok_s']:10.1f} {r['prefill_tok_s']:10.1f} "
      f"{o['decode_tok_s']:10.1f} {r['decode_tok_s']:10.1f} {o['prefill_tok_s']/r['prefill_tok_s']:8.2f} "
      f"{o['decode_tok_s']/r['decode_tok_s']:8.2f} {o['peak_rss_mib']:9.1f}")
print(f"  memory: peak RSS {o['peak_rss_mib']:.1f} MiB vs file {o['file_mib']:.1f} + KV {o['kv_mib']:.1f} + 64 "
      f"= {o['file_mib'] + o['kv_mib'] + 64:.1f} MiB budget")
PY
done
