# Shared preamble of the shell tests that drive the tracemark binary on the default model. Source
# it from the source root: strict mode; MODEL (the test is skipped, exit 0, when the model is
# missing); a temporary folder $tmp removed on exit; `fail MESSAGE`; `field NAME` (prints a field
# of the JSON object on stdin); `test_keyring PATH` (a private copy of the committed test keyring).
set -euo pipefail
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$MODEL" ] || { echo "SKIP: $MODEL missing (run scripts/setup.sh)"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
test_keyring() { cp tests/data/cli/test.keyring "$1" && chmod 600 "$1"; }
