#!/usr/bin/env bash
# `tracemark replay --size ci` as a test: runs the whole incident and checks each verdict in the
# replay's summary.json. A step whose subcommand is not in this build ("not_available": replay
# prints a loud STEP NOT AVAILABLE line) is reported as SKIP, never as a pass; any "fail" fails,
# the student's radioactivity and its clean control included (docs/replay.md), and so does a
# summary without both of them.
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
required = {"benign_not_suspended", "cluster_suspended", "scan_found", "student_radioactive",
            "control_student_clean", "report_written"}
for name in sorted(required - set(s["verdicts"])):
    failed += 1
    print(f"FAIL: {name}: no verdict in summary.json")
for name, v in s["verdicts"].items():
    print(f"{name}: {v['verdict']}: {v['detail']}")
    if v["verdict"] == "pass":
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
py_rc=$?
[ "$py_rc" -eq 0 ] || exit 1
# Every verdict passed (or was skipped): replay itself must then have exited 0, or 1 with a skip.
if [ "$rc" -ne 0 ] && ! grep -q '"not_available"' "$tmp/replay/summary.json"; then
  echo "FAIL: replay exited $rc with every verdict passing"; exit 1
fi
