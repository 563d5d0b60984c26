#!/usr/bin/env node
'use strict';
// `npm run bench [name…]`: runs each benchmark in a fresh process (so peak memory and warm-up of one
// does not leak into another) and prints its table. Needs `npm run build:ts` (scripts/setup.sh does it).
const { spawnSync } = require('node:child_process');
const { readdirSync } = require('node:fs');
const path = require('node:path');

const wanted = process.argv.slice(2);
// Every side of a comparison (torch-dpo and Python) runs under the same allocator: the retaining
// jemalloc the CLI uses when the system has it (TORCH_DPO_ALLOCATOR=system measures glibc's).
let extraEnv = {};
try {
  extraEnv = require('../dist/cli/allocator').allocatorEnv() ?? {};
} catch {
  // dist/ not built: measure as is
}
if (extraEnv.LD_PRELOAD) console.log(`bench: allocator jemalloc (${extraEnv.LD_PRELOAD}) for every process; TORCH_DPO_ALLOCATOR=system to compare`);
const benches = readdirSync(__dirname)
  .filter((f) => f.endsWith('.bench.js'))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)));
let failed = 0;
for (const file of benches) {
  const result = spawnSync(process.execPath, [path.join(__dirname, file)], { stdio: 'inherit', env: { ...process.env, ...extraEnv } });
  if (result.status !== 0) failed += 1;
}
process.exit(failed ? 1 : 0);
