#!/usr/bin/env node
'use strict';
// npm `install` hook for users of the published package: use a build or prebuild that fits the
// libtorch on this machine, else compile with node-gyp. In a git checkout it does nothing:
// scripts/setup.sh builds there with cmake-js.
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
if (process.env.TORCH_DPO_SKIP_INSTALL === '1') process.exit(0);
if (fs.existsSync(path.join(root, '.git')) && process.env.TORCH_DPO_FORCE_INSTALL !== '1') process.exit(0);

function tryLoad() {
  try {
    const { loadAddon } = require(path.join(root, 'dist', 'native', 'loader.js'));
    return loadAddon(root).path;
  } catch (err) {
    return { error: err.message };
  }
}

const first = tryLoad();
if (typeof first === 'string') {
  console.log(`torch-dpo: using ${path.relative(root, first)}`);
  process.exit(0);
}

const { findLibtorch, buildMetadata } = require('./find-libtorch.js');
let libtorch = null;
try {
  libtorch = findLibtorch();
} catch (err) {
  console.error(`torch-dpo: ${err.message}`);
  console.error('torch-dpo: install libtorch (Debian/Ubuntu: apt-get install libtorch-dev) or set LIBTORCH=<unpacked libtorch>, then `npm rebuild torch-dpo`.');
  process.exit(1);
}
const found = `libtorch ${libtorch.version} (${libtorch.cuda ? 'CUDA' : 'CPU'}) from ${libtorch.source}: ${libtorch.cmakeDir}`;
console.log(`torch-dpo: no usable prebuild for ${found}; compiling the addon with node-gyp (a few minutes)`);
const nodeGyp = process.env.npm_config_node_gyp;
const command = nodeGyp ? [process.execPath, [nodeGyp, 'rebuild']] : ['node-gyp', ['rebuild']];
// The compiler's output is kept: on failure its first error is what the user needs to see.
const result = spawnSync(command[0], command[1], { cwd: root, encoding: 'utf8', maxBuffer: 256 << 20 });
if (result.status !== 0) {
  const output = `${result.stdout || ''}\n${result.stderr || ''}`;
  const firstError = output.split('\n').find((line) => /\berror\b/.test(line) && !/^gyp ERR!/.test(line)) || output.trim().split('\n').pop();
  const log = path.join(root, 'build', 'torch-dpo-install.log');
  fs.mkdirSync(path.dirname(log), { recursive: true });
  fs.writeFileSync(log, output);
  console.error(`torch-dpo: compiling the addon against ${found} failed:`);
  console.error(`  ${String(firstError).trim()}`);
  console.error(`torch-dpo: the whole compiler output is in ${log}. Please report it with \`npx torch-dpo doctor --json\` if this libtorch should work.`);
  process.exit(1);
}
fs.writeFileSync(path.join(root, 'build', 'Release', 'torch_dpo.meta.json'), `${JSON.stringify(buildMetadata(libtorch), null, 2)}\n`);
const second = tryLoad();
if (typeof second !== 'string') {
  console.error(`torch-dpo: built against ${found}, but the addon does not load: ${second.error}`);
  process.exit(1);
}
console.log(`torch-dpo: built ${path.relative(root, second)} against ${found}`);
