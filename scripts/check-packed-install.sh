#!/usr/bin/env bash
# CI job: the package as npm users get it. `npm pack`, install the tarball into an empty project with
# no prebuild (so the install hook compiles the addon with node-gyp against this machine's libtorch),
# then `npx torch-dpo doctor` and a 3-step training run with the tiny GPT-2 fixture.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { printf 'packed-install: %s\n' "$*"; }

start=$(date +%s)
tarball=$(npm pack --silent --pack-destination "$work" | tail -n 1)
if tar -tzf "$work/$tarball" | grep -q '^package/prebuilds/.*\.node$'; then
  say "removing prebuilds from the tarball (the job tests the node-gyp path)"
  mkdir "$work/unpacked" && tar -xzf "$work/$tarball" -C "$work/unpacked"
  rm -rf "$work/unpacked/package/prebuilds"/*/
  tar -czf "$work/$tarball" -C "$work/unpacked" package
fi
mkdir "$work/app"
cd "$work/app"
npm init -y >/dev/null
say "npm install $tarball (compiles the addon)"
npm install --no-audit --no-fund "$work/$tarball" > "$work/install.log" 2>&1 || { cat "$work/install.log"; say "npm install failed"; exit 1; }
grep 'torch-dpo:' "$work/install.log" || true
npx torch-dpo doctor > "$work/doctor.log" 2>&1 || { cat "$work/doctor.log"; say "doctor failed"; exit 1; }
head -n 3 "$work/doctor.log"

rows=$(for i in $(seq 1 8); do printf '{"prompt": "w%d w11", "chosen": " w3 w4", "rejected": " w5 w9"}\n' $((10 + i)); done)
printf '%s\n' "$rows" > train.jsonl
cat > config.yaml <<YAML
model_name_or_path: $repo/test/fixtures/tiny-gpt2
train_dataset: train.jsonl
output_dir: out
max_steps: 3
per_device_train_batch_size: 2
cache_dir: false
save_final_model: false
YAML
npx torch-dpo train --config config.yaml > "$work/train.log" 2>&1 || { cat "$work/train.log"; say "train failed"; exit 1; }
grep -q 'done after 3 steps' "$work/train.log" || { cat "$work/train.log"; say "train did not finish 3 steps"; exit 1; }
[ -f out/checkpoint-3/manifest.json ] || { say "no complete checkpoint-3"; exit 1; }
say "ok: installed from the tarball with node-gyp, doctor and a 3-step train passed ($(( $(date +%s) - start )) s)"
