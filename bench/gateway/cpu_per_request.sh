#!/usr/bin/env bash
# CPU time a gateway process spends per request (user + system, from /proc/PID/stat, children
# included), a load-independent cost measure for busy machines where latency percentiles mostly
# show other processes. Usage: cpu_per_request.sh PID COMMAND...  (COMMAND: a gateway_load run;
# its JSON line gets "cpu_us_per_request" and "cpu_cores" appended.)
set -euo pipefail
PID="$1"
shift
ticks() {  # utime + stime + cutime + cstime of PID and its direct children
  local total=0
  for p in "$PID" $(pgrep -P "$PID" || true); do
    total=$(( total + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat") ))
  done
  echo "$total"
}
HZ=$(getconf CLK_TCK)
T0=$(ticks)
S0=$(date +%s.%N)
OUT=$("$@")
T1=$(ticks)
S1=$(date +%s.%N)
python3 - "$OUT" "$T0" "$T1" "$HZ" "$S0" "$S1" <<'PY'
import json, sys
out, t0, t1, hz, s0, s1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
j = json.loads(out.strip().splitlines()[-1])
cpu_s = (t1 - t0) / hz
n = j["ok"] + j["non_200"]
j["cpu_us_per_request"] = round(1e6 * cpu_s / max(n, 1), 1)
j["cpu_cores"] = round(cpu_s / (s1 - s0), 3)
print(json.dumps(j))
PY
