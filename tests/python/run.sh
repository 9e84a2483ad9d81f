#!/usr/bin/env bash
# Runs the Python package suite (tests/python) with pytest from .venv-test, where
# scripts/test.sh installs the package (`pip install .`), ray, pyarrow and pytest.
# Usage: tests/python/run.sh [TRACEMARK_BIN] [pytest args]. Exits 77 (ctest: skipped) when the
# package is not installed in that venv, so a plain C++ build's ctest does not fail on it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
if [ $# -gt 0 ] && [ -x "$1" ]; then
  export TRACEMARK_BIN="$1"
  shift
fi
PY="${TM_TEST_PYTHON:-$ROOT/.venv-test/bin/python}"
if ! "$PY" -c "import tracemark, tracemark.ray, ray, pyarrow, pytest" 2>/dev/null; then
  echo "SKIP: the tracemark package, ray, pyarrow or pytest is missing from $PY" \
       "(scripts/test.sh installs them; or: $ROOT/.venv-test/bin/pip install --no-build-isolation .)"
  exit 77
fi
cd "$ROOT"
exec "$PY" -m pytest -q -p no:cacheprovider tests/python "$@"
