#!/usr/bin/env bash
# `tracemark replay --size ci` as a test: runs the whole incident and checks each verdict in the
# replay's summary.json. A step whose subcommand is not in this build ("not_available": replay
# prints a loud STEP NOT AVAILABLE line) is reported as SKIP, never as a pass; any "fail" fails,
# except the student's radioactivity, which is reported but not required at ci size (see below).
# Usage: replay_ci.sh TRACEMARK_BINARY
set -uo pipefail
BIN=$1
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$MODEL" ] || { echo "SKIP: $MODEL missing (run scripts/setup.sh)"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
"$BIN" replay --size ci --out "$tmp/replay"
rc=$?
echo "replay exit code $rc, wall $(( $(date +%s) - start )) s"
[ -f "$tmp/replay/summary.json" ] || {
  echo "FAIL: no summary.json; server log tail:"; tail -20 "$tmp/replay/server.log" 2>/dev/null
  tail -20 "$tmp/replay/commands.log" 2>/dev/null; exit 1; }
python3 - "$tmp/replay/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
passed = failed = skipped = 0
# At ci size the student sees only a few thousand watermarked tokens (the harvest is cut short by
# the suspension), below what the reading-mode probe needs; its verdict is printed, and required
# only by --size full (docs/replay.md).
informational = {"student_radioactive"}
for name, v in s["verdicts"].items():
    if name in informational and v["verdict"] != "pass":
        print(f"INFO (not required at ci size): {name}: {v['verdict']}: {v['detail']}")
    elif v["verdict"] == "pass":
        passed += 1
    elif v["verdict"] == "not_available":
        skipped += 1
        print(f"SKIP: {name}: {v['detail']}")
    else:
        failed += 1
        print(f"FAIL: {name}: {v['detail']}")
print(json.dumps(s.get("timings", {})))
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
