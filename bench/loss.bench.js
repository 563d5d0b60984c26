'use strict';
// `npm run bench:loss`: memory and time of the per-sequence log-prob step with backward on logits
// [16,512,32000] fp32 (8 pairs), each variant in a fresh process. Every variant starts from hidden
// states [16,512,768] and an lm_head [32000,768]; the logits variants get their logits (hidden·Wᵀ,
// 1 GiB) before the measurement starts, the fused-linear variant never builds them. Measured: the
// log-prob forward and the backward through to hidden and lm_head; peak RSS above the start.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');

const [N, T, V, H] = [16, 512, 32000, 768];
const VARIANTS = ['naive', 'sequenceLogps', 'sequenceLogps in place', 'fused-linear'];
const REPEATS = 3;

function statusKb(field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return Number(m[1]);
}

async function runVariant(variant) {
  const torch = require('../dist');
  const { sequenceLogps, sequenceLogpsFromHidden, Tensor, randn, randint, manualSeed } = torch;
  manualSeed(0);
  const hidden = await (await randn([N, T, H])).setRequiresGrad();
  const weight = await (await (await randn([V, H])).mul(0.02)).setRequiresGrad();
  const ids = await randint(0, V, [N, T]);
  const mask = Tensor.from(new Uint8Array(N * T).map((_, i) => (i % T >= 128 ? 1 : 0)), { shape: [N, T], dtype: 'bool' });
  const samples = [];
  for (let r = 0; r < REPEATS; r += 1) {
    const logits = variant === 'fused-linear' ? null : await hidden.matmul(await weight.transpose(0, 1));
    fs.writeFileSync('/proc/self/clear_refs', '5'); // reset the peak-RSS mark
    const startRss = statusKb('VmRSS');
    const t0 = process.hrtime.bigint();
    let logps;
    if (variant === 'naive') {
      const lp = await (await logits.narrow(1, 0, T - 1)).logSoftmax(2);
      const labels = await (await ids.narrow(1, 1, T - 1)).unsqueeze(2);
      const picked = await (await lp.gather(2, labels)).squeeze(2);
      logps = await (await picked.mul(await (await mask.narrow(1, 1, T - 1)).to('float32'))).sum(1);
    } else if (variant === 'fused-linear') {
      logps = (await sequenceLogpsFromHidden(hidden, weight, undefined, ids, mask)).logps;
    } else {
      logps = (await sequenceLogps(logits, ids, mask, { inplaceBackward: variant.endsWith('in place') })).logps;
    }
    await (await logps.sum()).backward();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    samples.push({ ms, peakMb: (statusKb('VmHWM') - startRss) / 1024 });
    logits?.dispose();
  }
  samples.sort((a, b) => a.ms - b.ms);
  process.stdout.write(JSON.stringify({ variant, ...samples[Math.floor(REPEATS / 2)], maxPeakMb: Math.max(...samples.map((s) => s.peakMb)) }));
}

if (process.argv[2] === '--variant') {
  runVariant(process.argv[3]).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  const rows = VARIANTS.map((variant) => {
    const child = spawnSync(process.execPath, [__filename, '--variant', variant], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`${variant}: ${child.stderr}`);
    return JSON.parse(child.stdout);
  });
  const naive = rows[0];
  console.log(`\nloss: logits [${N},${T},${V}] fp32 + backward (median of ${REPEATS}, fresh process per variant)`);
  console.log('| variant | peak RSS over start | × naive | time | × naive |\n|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.variant} | ${r.maxPeakMb.toFixed(0)} MB | ${(r.maxPeakMb / naive.maxPeakMb).toFixed(2)} | ${(r.ms / 1000).toFixed(2)} s | ${(r.ms / naive.ms).toFixed(2)} |`);
  }
}
