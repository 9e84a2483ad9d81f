#!/usr/bin/env bash
# Runs the multi-replica suite (tests/replicas): two `tracemark serve` replicas on a throwaway
# PostgreSQL cluster and redis-server, driven with the official openai SDK from .venv-test.
# Usage: tests/replicas/run.sh [TRACEMARK_BIN] [pytest args]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
if [ $# -gt 0 ] && [ -x "$1" ]; then
  export TRACEMARK_BIN="$1"
  shift
fi
VENV="$ROOT/.venv-test"
if ! "$VENV/bin/python" -c "import openai, pytest" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "openai>=1.40" pytest
fi
cd "$ROOT"
exec "$VENV/bin/python" -m pytest -q -s -p no:cacheprovider tests/replicas "$@"
