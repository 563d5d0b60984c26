#!/usr/bin/env bash
# One command from a fresh Debian/Ubuntu clone to a working torch-dpo: installs libtorch (with
# OpenBLAS and the Gloo headers) via apt when no libtorch is configured, the build tools, the npm
# dependencies, then compiles the TypeScript and the native addon. Idempotent, and quiet when
# everything is already in place.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'setup: %s\n' "$*"; }
# Runs a step with its output kept back; shows it only if the step fails.
quietly() {
  local log
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    cat "$log"
    say "failed: $*"
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing ${missing[*]} and this is no Debian/Ubuntu system: install them by hand"
    exit 1
  fi
  say "installing ${missing[*]} (apt)"
  if [ "$APT_UPDATED" -eq 0 ]; then quietly $SUDO apt-get update -q; APT_UPDATED=1; fi
  quietly env DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Node.js 20 or newer is the one thing this script expects to find.
if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  say "Node.js >= 20 is needed (found: $(node --version 2>/dev/null || echo none))"
  exit 1
fi

# Build tools for the addon.
command -v cmake >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 ||
  apt_install cmake g++ make

# libtorch: a configured one (LIBTORCH, Torch_DIR, CMAKE_PREFIX_PATH, LIBTORCH_USE_PYTORCH) is used as
# is and must be valid; otherwise Debian/Ubuntu's package, with OpenBLAS and Gloo's headers.
if [ -n "${LIBTORCH:-}${Torch_DIR:-}${CMAKE_PREFIX_PATH:-}${LIBTORCH_USE_PYTORCH:-}" ]; then
  if ! node scripts/find-libtorch.js >/dev/null; then exit 1; fi
else
  apt_install libtorch-dev libgloo-dev libopenblas0-pthread
fi

# npm dependencies, when missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  quietly npm ci --no-audit --no-fund
fi

quietly npm run build:ts
if [ ! -f build/Release/torch_dpo.node ]; then say "compiling the native addon (about a minute)"; fi
quietly npm run build:native
chmod +x dist/cli/main.js
# npm 11 cannot `npx` a package's own bin inside its checkout; a local bin link makes `npx torch-dpo` work.
ln -sfn ../../dist/cli/main.js node_modules/.bin/torch-dpo
say "ready ($(node -p "require('./build/Release/torch_dpo.meta.json').torchVersion" ) $(node -p "require('./build/Release/torch_dpo.meta.json').cuda ? 'CUDA' : 'CPU'"))"
