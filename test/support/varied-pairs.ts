import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A folder with `count` preference rows in the fixtures' word vocabulary (w0 … w61): prompts of 2 to
 * 9 words, completions of 1 to 5, so batches have padding to remove and prompts to share.
 */
export function variedPairsProject(count: number, prefix: string): { dir: string; data: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const word = (k: number) => `w${(k * 7 + 3) % 62}`;
  const rows = Array.from({ length: count }, (_, i) => ({
    prompt: Array.from({ length: 2 + (i % 8) }, (_, k) => word(i + k)).join(' '),
    chosen: ` ${Array.from({ length: 1 + (i % 5) }, (_, k) => word(3 * i + k)).join(' ')}`,
    rejected: ` ${Array.from({ length: 1 + ((i + 2) % 5) }, (_, k) => word(5 * i + k + 1)).join(' ')}`,
  }));
  const data = join(dir, 'train.jsonl');
  writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n'));
  return { dir, data };
}
