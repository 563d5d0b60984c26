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
console.log('torch-dpo: no usable prebuild for this libtorch; compiling the addon with node-gyp (about a minute)');
const nodeGyp = process.env.npm_config_node_gyp;
const command = nodeGyp ? [process.execPath, [nodeGyp, 'rebuild']] : ['node-gyp', ['rebuild']];
const result = spawnSync(command[0], command[1], { cwd: root, stdio: 'inherit' });
if (result.status !== 0) {
  console.error(`torch-dpo: the addon build failed. ${first.error.split('\n')[0]}`);
  console.error('torch-dpo: install libtorch (Debian/Ubuntu: apt-get install libtorch-dev) or set LIBTORCH=<unpacked libtorch>, then `npm rebuild torch-dpo`.');
  process.exit(1);
}
const { findLibtorch, buildMetadata } = require('./find-libtorch.js');
fs.writeFileSync(path.join(root, 'build', 'Release', 'torch_dpo.meta.json'), `${JSON.stringify(buildMetadata(findLibtorch()), null, 2)}\n`);
const second = tryLoad();
if (typeof second !== 'string') {
  console.error(`torch-dpo: built, but the addon does not load: ${second.error}`);
  process.exit(1);
}
console.log(`torch-dpo: built ${path.relative(root, second)}`);
