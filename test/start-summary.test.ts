import { existsSync } from 'node:fs';
import { cudaAvailable } from '../lib';
import { resolveDevice } from '../lib/train/device';
import { cli, cliProject } from './support/cli-project';

const noCuda = !cudaAvailable();

describe('what a run says at start', () => {
  (noCuda ? it : it.skip)('auto is the CPU without CUDA; cuda is refused before anything loads, saying why', () => {
    expect(resolveDevice('auto')).toBe('cpu');
    expect(resolveDevice('cpu')).toBe('cpu');
    expect(() => resolveDevice('cuda:1')).toThrow(/device: 'cuda:1' is not usable: .*device: auto or cpu trains on the CPU/);
    const { config } = cliProject(2, ['device: cuda']);
    const run = cli(['train', '--config', config]);
    expect(run.status).toBe(1);
    expect(run.stdout).toBe(''); // nothing was loaded or printed before the error
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^torch-dpo: device: 'cuda' is not usable: /);
  });

  (noCuda ? it.skip : it)('auto is cuda when a GPU is visible; a missing index is refused', () => {
    expect(resolveDevice('auto')).toBe('cuda');
    expect(() => resolveDevice('cuda:99')).toThrow(/device: 'cuda:99' does not exist/);
  });

  it('the start summary says which device auto chose', () => {
    const { config } = cliProject(1);
    const run = cli(['train', '--config', config]);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^device: ${noCuda ? 'cpu' : 'cuda'} \\(device: auto\\)$`, 'm'));
    expect(run.stdout).toMatch(/^model: GPT2LMHeadModel \(torchscript from .*model\.pt\), [\d.]+K parameters \([\d.]+K trainable\), float32$/m);
    expect(run.stdout).toMatch(/^data: 32 pairs kept of 32 rows \(standard 32\); truncated 0 \(0\.0%\); boundary mismatches 0; tokens min\/mean\/max: /m);
  });

  it('warns when many pairs are truncated, and says where a resume starts', () => {
    const { config, out } = cliProject(2, ['max_completion_length: 1']);
    const run = cli(['train', '--config', config]);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^data: 32 pairs kept of 32 rows \(standard 32\); truncated 32 \(100\.0%\);/m);
    expect(run.stdout).toMatch(/^data warning: 100\.0% of the pairs are truncated \(max_length 1024, max_completion_length 1\): what is cut off is not trained on$/m);
    const resumed = cli(['train', '--config', config, '--set', 'resume_from_checkpoint=true', '--set', 'max_steps=3']);
    expect(resumed.stdout).toMatch(new RegExp(`^resume: from ${out}/checkpoint-2 at step 2 of 3$`, 'm'));
  });

  it('--dry-run loads and summarises, then exits without training or writing', () => {
    const { config, out } = cliProject(2);
    const run = cli(['train', '--config', config, '--dry-run']);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^plan: 2 steps \(16 per epoch\)/m);
    expect(run.stdout.trim().split('\n').at(-1)).toBe('dry run: the config, model and data load; nothing was trained and output_dir was not touched');
    expect(existsSync(out)).toBe(false);
  });
});
