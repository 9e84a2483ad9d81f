#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh) and runs every test: unit, integration, fuzz seed corpora.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${TM_BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
