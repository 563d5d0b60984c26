#!/usr/bin/env node
'use strict';
// `npm test`: jest, then one plain closing line CI can read ("jest: N passed, N failed, N skipped"),
// printed after everything jest wrote. Extra arguments go to jest (e.g. `npm test -- test/ops.test.ts`).
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'torch-dpo-jest-'));
const results = path.join(dir, 'results.json');
const jest = require.resolve('jest/bin/jest');
const run = spawnSync(process.execPath, [jest, '--json', `--outputFile=${results}`, ...process.argv.slice(2)], { stdio: 'inherit' });
let line = 'jest: 0 passed, 1 failed (jest did not report results)';
if (fs.existsSync(results)) {
  const r = JSON.parse(fs.readFileSync(results, 'utf8'));
  const failed = r.numFailedTests + r.numRuntimeErrorTestSuites;
  line = `jest: ${r.numPassedTests} passed, ${failed} failed, ${r.numPendingTests + r.numTodoTests} skipped`;
}
fs.rmSync(dir, { recursive: true, force: true });
process.stdout.write(`\n${line}\n`);
process.exit(run.status ?? 1);
