import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError } from '../lib';
import { writeHtmlReport } from '../lib/report/html-report';
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
});
