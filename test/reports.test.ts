import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError } from '../lib';
import { writeHtmlReport } from '../lib/report/html-report';
import { dataRange, lineChart, niceTicks, tickFormat } from '../lib/report/svg-chart';
import { RunInfoFile } from '../lib/train/run-info';
import { TensorBoardWriter, crc32c, readTfRecords } from '../lib/report/tensorboard';

describe('reports', () => {
  it('computes CRC-32C like TFRecord (known answer) and frames events that read back', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-tb-'));
    const writer = new TensorBoardWriter(dir);
    writer.scalars(7, { 'train/loss': 0.25, 'train/rewards/margins': 1.5, skipped: Number.NaN });
    const records = readTfRecords(readFileSync(writer.path));
    expect(records).toHaveLength(2);
    expect(records[0].toString('latin1')).toContain('brain.Event:2');
    const second = records[1];
    expect(second[9]).toBe(0x10); // step, after the 8-byte wall time
    expect(second[10]).toBe(7);
    const text = second.toString('latin1');
    expect(text).toContain('train/loss');
    expect(text).not.toContain('skipped');
    const at = second.indexOf(Buffer.from('train/loss')) + 'train/loss'.length;
    expect(second[at]).toBe(0x15); // simple_value, a little-endian float
    expect(second.readFloatLE(at + 1)).toBe(0.25);
  });

  it('writes a self-contained HTML report with a chart per metric family', () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-report-'));
    const rows = [1, 2, 3].map((step) => ({ step, loss: 0.7 / step, 'rewards/accuracies': step / 3, 'rewards/margins': step, learning_rate: 1e-6, grad_norm: 1 }));
    writeFileSync(join(dir, 'metrics.jsonl'), [...rows, { step: 3, eval_loss: 0.3, 'eval_rewards/accuracies': 0.9 }].map((r) => JSON.stringify(r)).join('\n'));
    const html = readFileSync(writeHtmlReport(dir, 'demo run'), 'utf8');
    expect(html).toContain('<title>demo run</title>');
    expect((html.match(/<svg /g) ?? []).length).toBeGreaterThanOrEqual(5);
    expect(html).toContain('eval at step 3: loss 0.3000, reward accuracy 0.900');
    expect(html).not.toMatch(/<script|https?:\/\//);
    expect(readdirSync(dir)).toContain('report.html');
    expect(() => writeHtmlReport(join(dir, 'missing'))).toThrow(DataError);
  });

  it('draws round ticks, gridlines, axis titles and eval markers; accuracies on 0–1; no made-up ±1 range', () => {
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0.37, 0.71)).toEqual([0.4, 0.5, 0.6, 0.7]);
    expect(niceTicks(1, 40, 6)).toEqual([10, 20, 30, 40]);
    expect(dataRange([1e-6, 1e-6])).toEqual([0, 2e-6]); // a constant learning rate: from 0, never negative
    expect(dataRange([0, 0])).toEqual([0, 1]);
    expect([0, 5e-7, 1e-6, 1.5e-6, 2e-6].map(tickFormat([0, 5e-7, 1e-6, 1.5e-6, 2e-6]))).toEqual(['0', '5e-7', '1e-6', '1.5e-6', '2e-6']);
    expect([0, 5e-4, 1e-3, 1.5e-3].map(tickFormat([0, 5e-4, 1e-3, 1.5e-3]))).toEqual(['0', '0.0005', '0.001', '0.0015']); // one notation per axis
    const accuracy = lineChart([{ name: 'rewards/accuracies', markers: false, points: [[1, 0.5], [2, 0.75]] }, { name: 'eval_rewards/accuracies', markers: true, points: [[2, 0.8]] }],
      { title: 'reward accuracy', yTitle: 'fraction of pairs', yRange: [0, 1] });
    expect((accuracy.match(/class="grid"/g) ?? []).length).toBeGreaterThanOrEqual(6 + 2);
    expect(accuracy).toContain('>optimizer step</text>');
    expect(accuracy).toContain('>fraction of pairs</text>');
    expect(accuracy.match(/<text[^>]*text-anchor="end">([^<]*)</g)!.map((t) => t.replace(/.*>|<$/g, ''))).toEqual(['0', '0.2', '0.4', '0.6', '0.8', '1']);
    expect(accuracy.match(/<circle /g)).toHaveLength(1); // the evaluation
    const lr = lineChart([{ name: 'learning_rate', markers: false, points: [[1, 1e-6], [2, 1e-6], [3, 1e-6]] }], { title: 'learning rate', yTitle: 'learning rate' });
    expect(lr).not.toMatch(/text-anchor="end">-/);
    const loss = lineChart([{ name: 'loss', markers: false, points: [[1, 0.69], [2, 0.01], [3, 0.0004]] }], { title: 'DPO loss', yTitle: 'loss', logWhenWide: true });
    expect(loss).toContain('(log scale)');
    expect(loss.match(/<text[^>]*text-anchor="end">([^<]*)</g)!.map((t) => t.replace(/.*>|<$/g, ''))).toEqual(['1e-4', '0.001', '0.01', '0.1', '1']);
  });

  it('shows the run: model, data report, versions, durations, non-finite steps and the config (from run.json)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-report-'));
    writeFileSync(join(dir, 'metrics.jsonl'), `${JSON.stringify({ step: 1, loss: 0.69, learning_rate: 1e-6 })}\n`);
    const info = new RunInfoFile(dir, {
      run_name: 'nightly', versions: { 'torch-dpo': '0.1.0', torch: '1.13.1', node: 'v20' },
      model: { architecture: 'llama', source: 'torchscript', path: '/m', parameters: 1234567, dtype: 'bfloat16', device: 'cuda:0', warnings: ['traced in eval mode'] },
      data: { train: { kept: 90, rowsRead: 100, dropped: { empty_completion: 10 }, formats: { standard: 100 }, truncated: 26, boundaryMismatches: 3, files: ['a.jsonl'] }, eval: null },
      config: { beta: 0.1, loss_type: 'sigmoid' },
    }, 0);
    info.finish('done', 1, 2);
    const html = readFileSync(writeHtmlReport(dir), 'utf8');
    expect(html).toContain('<title>torch-dpo run nightly</title>');
    for (const text of ['1,234,567 parameters, bfloat16 on cuda:0', 'traced in eval mode', '90 of 100 rows (standard 100)', 'empty_completion 10', '26 (28.9%)',
      '<th>train data: boundary mismatches</th><td>3</td>', '<th>non-finite steps skipped</th><td>2</td>', 'torch-dpo 0.1.0, torch 1.13.1', 'steps 0 → 1', ', done',
      '<th>loss_type</th><td>sigmoid</td>']) expect(html).toContain(text);
  });
});
