import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatOptionsMarkdown } from '../lib/config/describe-options';
import { trainerOptions } from '../lib/train/config';

const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');

describe('README', () => {
  it('has the current option table (run `npm run docs:options` after changing a schema)', () => {
    const table = /<!-- options:start[^>]*-->\n([\s\S]*?)\n<!-- options:end -->/.exec(readme);
    expect(table).not.toBeNull();
    expect(table![1]).toBe(formatOptionsMarkdown(trainerOptions()));
  });

  it('states the one setup-and-demo command, the test command and the TRL version followed', () => {
    expect(readme).toContain('bash scripts/setup.sh && npx torch-dpo demo');
    expect(readme).toContain('\nnpm test\n');
    expect(readme).toMatch(/TRL 1\.10 \(main, July 2026\) and transformers 5\.x/);
  });
});
