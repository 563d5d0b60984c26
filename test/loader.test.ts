import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AddonLoadError, findLibtorch, type BuildMetadata } from '../lib';
import { addonInfo } from '../lib/native/binding';
import { buildMetadataFor } from '../lib/native/discovery';
import { addonCandidates, explainLoadFailure, incompatibilities, loadAddon } from '../lib/native/loader';

const here = findLibtorch();
const matching: BuildMetadata = buildMetadataFor(here);

/** A package folder holding only prebuilds (no build/), like an npm install. */
function packageWithPrebuild(files: Record<string, BuildMetadata | null>, binary: string): string {
  const root = mkdtempSync(join(tmpdir(), 'torch-dpo-pkg-'));
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  mkdirSync(dir, { recursive: true });
  for (const [name, meta] of Object.entries(files)) {
    copyFileSync(binary, join(dir, `${name}.node`));
    if (meta) writeFileSync(join(dir, `${name}.json`), JSON.stringify(meta));
  }
  return root;
}

describe('addon loader', () => {
  it('finds nothing wrong with a binary built for this libtorch', () => {
    expect(incompatibilities(matching, here)).toEqual([]);
  });

  it('names each way a binary can mismatch', () => {
    const other = { ...matching, torchVersion: '2.5.1', cuda: !here.cuda, cxx11Abi: !here.cxx11Abi, arch: 'riscv64', napiVersion: 99 };
    const reasons = incompatibilities(other, here).join('\n');
    expect(reasons).toMatch(/built for libtorch 2\.5\.1, found/);
    expect(reasons).toMatch(/CUDA/);
    expect(reasons).toMatch(/_GLIBCXX_USE_CXX11_ABI/);
    expect(reasons).toMatch(/riscv64/);
    expect(reasons).toMatch(/Node-API 99/);
  });

  it('explains a missing shared library with the fix', () => {
    const err = new Error('libtorch_cuda.so: cannot open shared object file: No such file or directory');
    const text = explainLoadFailure('/x/torch_dpo.node', err, here);
    expect(text).toMatch(/needs libtorch_cuda\.so/);
    expect(text).toMatch(/LD_LIBRARY_PATH|build:native/);
    expect(explainLoadFailure('/x/a.node', new Error('undefined symbol: _ZN3c10'), here)).toMatch(/rebuild/);
  });

  it('uses a prebuild only when its metadata matches the libtorch found', () => {
    const binary = addonInfo().path;
    const root = packageWithPrebuild(
      {
        'torch-dpo.napi.glibc.a-mismatch': { ...matching, torchVersion: '9.9.9' },
        'torch-dpo.napi.glibc.b-nometa': null,
        'torch-dpo.napi.glibc.c-good': matching,
      },
      binary,
    );
    const loaded = loadAddon<{ version(): { torch: string } }>(root, {});
    expect(loaded.kind).toBe('prebuild');
    expect(loaded.path).toMatch(/c-good\.node$/);
    expect(loaded.addon.version().torch).toMatch(/^\d/);
    expect(loaded.skipped.join('\n')).toMatch(/a-mismatch\.node: built for libtorch 9\.9\.9/);
    expect(loaded.skipped.join('\n')).toMatch(/b-nometa\.node: no metadata/);
  });

  it('fails with every attempt listed when nothing fits', () => {
    const root = packageWithPrebuild({ 'torch-dpo.napi.glibc': { ...matching, cuda: !here.cuda } }, addonInfo().path);
    expect(() => loadAddon(root, {})).toThrow(AddonLoadError);
    expect(() => loadAddon(root, {})).toThrow(/could not be loaded: build it .*npm run build:native[\s\S]*CUDA/);
    const empty = mkdtempSync(join(tmpdir(), 'torch-dpo-empty-'));
    expect(() => loadAddon(empty, {})).toThrow(/no build\/Release\/torch_dpo.node and no matching prebuild/);
  });

  it('reports a corrupt binary as a load failure, not a crash', () => {
    const root = mkdtempSync(join(tmpdir(), 'torch-dpo-corrupt-'));
    mkdirSync(join(root, 'build', 'Release'), { recursive: true });
    writeFileSync(join(root, 'build', 'Release', 'torch_dpo.node'), 'not an ELF file');
    expect(addonCandidates(root, {}).map((c) => c.kind)).toEqual(['build']);
    expect(() => loadAddon(root, {})).toThrow(/torch_dpo\.node failed to load: .*(invalid ELF header|too short)/);
  });
});
