#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh) and runs every test: unit, integration, fuzz seed corpora.
set -euo pipefail
cd "$(dirname "$0")/.."
# Gemma 3 270M too, so its parity, tokenizer and template tests run rather than skip.
scripts/setup.sh --gemma
# The gateway suite (tests/gateway) uses the official openai SDK from a private venv.
if ! .venv-test/bin/python -c "import openai, pytest" 2>/dev/null; then
  python3 -m venv .venv-test && .venv-test/bin/pip install -q "openai>=1.40" pytest
fi
# The Python package (pyproject.toml, python/) and what its suite (tests/python, ctest
# python_package) needs, in the same venv. build/python/ and ccache keep the rebuild incremental.
if ! .venv-test/bin/python -c "import ray.data, pyarrow, pandas, scikit_build_core, pybind11" 2>/dev/null; then
  .venv-test/bin/pip install -q "ray[data]>=2.9" pyarrow pandas "scikit-build-core>=0.10" "pybind11>=2.10"
fi
.venv-test/bin/pip install -q --no-build-isolation .
BUILD_DIR=${TM_BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
