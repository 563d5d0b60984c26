#!/usr/bin/env bash
# The GPU check, run on the lent GPU machine over a copy of the working tree (CUDA PyTorch, CMake,
# ninja, nvcc; no Node, no network). Prepare with `bash scripts/gpu-bundle.sh` here, then run it
# there with carry [".gpu-bundle"]: `bash scripts/gpu-check.sh`. It builds the addon against that
# machine's PyTorch libtorch (LIBTORCH_USE_PYTORCH=1), runs the CUDA and core tests and the core
# benchmark, checks the built-in architectures on CUDA (scripts/gpu-model-check.js), and writes logs
# and results under $OUT (gpu-check.log, libtorch.json, doctor.json, tests.log, model-check.log, bench.log).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.log") 2>&1
step() { printf '\n== %s (%ss)\n' "$*" "$SECONDS"; }

if [ ! -f .gpu-bundle/node.tgz ]; then
  echo "gpu-check: .gpu-bundle/ is missing: run scripts/gpu-bundle.sh here and carry .gpu-bundle"
  exit 2
fi
step "node"
mkdir -p /tmp/node && tar xzf .gpu-bundle/node.tgz -C /tmp/node --strip-components=1
export PATH="/tmp/node/bin:$PATH"
node --version
ln -sfn .gpu-bundle/node_modules node_modules
ln -sfn .gpu-bundle/js/lib dist

step "machine"
nvidia-smi -L || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'

step "libtorch discovery"
export LIBTORCH_USE_PYTORCH=1 PYTHON=python3
node scripts/find-libtorch.js | tee "$OUT/libtorch.json" || exit 1

step "build (cmake + ninja)"
rm -rf build
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$PWD/build/Release" >"$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
cmake --build build --parallel "$(nproc)" >>"$OUT/cmake.log" 2>&1 || { grep -E 'error|Error' -A3 "$OUT/cmake.log" | head -60; exit 1; }
ls -la build/Release
grep -i "nccl" "$OUT/cmake.log" | head -3  # whether CUDA collectives go over NCCL (cuda.test.ts exercises them)

step "doctor"
node dist/cli/main.js doctor
node dist/cli/main.js doctor --json >"$OUT/doctor.json"

step "tests (CUDA first; node:test with jest's expect)"
failed=0
for name in cuda runtime tensor-roundtrip autograd ops lifecycle event-loop loader sequence-logps dpo-loss models llama architecture-configs hf-architectures; do
  if ! node --require ./scripts/gpu-test-globals.js --test-reporter=spec ".gpu-bundle/js/test/$name.test.js" >>"$OUT/tests.log" 2>&1; then
    failed=$((failed + 1))
    echo "FAILED: $name"
  else
    echo "ok: $name"
  fi
done
grep -E '^ℹ (tests|pass|fail|skipped)|✖' "$OUT/tests.log" | head -40

step "built-in architectures on CUDA (SDPA vs eager vs Python; bf16 Qwen3 ~0.6B tokens/s and peak memory)"
if ! node scripts/gpu-model-check.js 2>&1 | tee "$OUT/model-check.log"; then
  failed=$((failed + 1))
  echo "FAILED: gpu-model-check"
fi

step "benchmark"
node bench/run.js core 2>&1 | tee "$OUT/bench.log"

step "done: $failed test file(s) failed"
exit "$failed"
