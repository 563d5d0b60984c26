#!/usr/bin/env node
'use strict';
// `npm run prebuild`: a relocatable build (rpath $ORIGIN only) copied into prebuilds/<platform>-<arch>/
// under a node-gyp-build name that also records the libtorch it needs; metadata goes beside it.
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { findLibtorch, buildMetadata } = require('./find-libtorch.js');

const root = path.resolve(__dirname, '..');
const outDir = 'build-prebuild';
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const build = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', outDir, '--parallel', '2', '--CDTORCH_DPO_PREBUILD=ON'], {
  cwd: root,
  stdio: 'inherit',
});
if (build.status !== 0) process.exit(build.status || 1);

const found = findLibtorch();
const meta = buildMetadata(found);
const variant = `torch${meta.torchVersion.replace(/[^0-9.]/g, '')}-${meta.cuda ? 'cuda' : 'cpu'}-abi${meta.cxx11Abi === false ? 0 : 1}`;
// The libc tag keeps node-gyp-build's matching; the variant part is ours (node-gyp-build ignores it).
const name = `torch-dpo.napi.${meta.libc}.${variant}`;
const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
fs.mkdirSync(dir, { recursive: true });
fs.copyFileSync(path.join(root, outDir, 'Release', 'torch_dpo.node'), path.join(dir, `${name}.node`));
fs.writeFileSync(path.join(dir, `${name}.json`), `${JSON.stringify({ ...meta, libtorchLibDir: null }, null, 2)}\n`);
console.log(`prebuild: ${path.relative(root, path.join(dir, name))}.node (+ .json)`);
if (!found.systemLibDir) {
  console.log(`prebuild: libtorch is outside the system library path; users need it on LD_LIBRARY_PATH (${found.libDir} here).`);
}
