import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { DPOTrainer } from '../lib/train/trainer';

describe('DPOTrainer in a service', () => {
  it('keeps the event loop responsive while training (p99 lag ≤ 20 ms)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-lag-'));
    const rows = Array.from({ length: 64 }, (_, i) => ({ prompt: `w${10 + (i % 20)} w${11 + (i % 7)} w12 w13 w14`, chosen: ` w3 w4 w${4 + (i % 3)} w20 w21`, rejected: ` w5 w${7 + (i % 4)} w22 w23` }));
    writeFileSync(join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    const trainer = await DPOTrainer.create({
      model: { architecture: 'gpt2', config: { vocab_size: 64, n_positions: 32, n_embd: 128, n_layer: 4, n_head: 4 } },
      tokenizer_name_or_path: join(__dirname, 'fixtures', 'tiny-gpt2'),
      train_dataset: join(dir, 'train.jsonl'), output_dir: join(dir, 'out'), cache_dir: false, max_steps: 12, per_device_train_batch_size: 8, logging_steps: 4,
    });
    const lag = monitorEventLoopDelay({ resolution: 1 });
    lag.enable();
    const started = Date.now();
    await trainer.train();
    lag.disable();
    trainer.dispose();
    expect(Date.now() - started).toBeGreaterThan(200); // long enough for the percentile to mean something
    process.stdout.write(`event-loop lag while training: p50 ${(lag.percentile(50) / 1e6).toFixed(2)} ms, p99 ${(lag.percentile(99) / 1e6).toFixed(2)} ms\n`);
    expect(lag.percentile(99) / 1e6).toBeLessThanOrEqual(20);
  });
});
