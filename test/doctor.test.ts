import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../lib/cli/main';
import { doctorReport, formatDoctorReport } from '../lib/cli/doctor';
import { findLibtorch } from '../lib';

async function capture(argv: string[]): Promise<{ code: number; out: string }> {
  const chunks: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  });
  try {
    const code = await main(argv);
    return { code, out: chunks.join('') };
  } finally {
    spy.mockRestore();
  }
}

describe('torch-dpo doctor', () => {
  it('reports libtorch, CUDA, threads, BLAS and the addon', () => {
    const report = doctorReport();
    expect(report.ok).toBe(true);
    expect(report.libtorch).toMatchObject({ version: findLibtorch().version, source: findLibtorch().source });
    expect(report.torchVersion).toMatch(/^\d+\.\d+/);
    expect(report.cuda?.available).toBe(report.cuda?.devices ? true : false);
    expect(report.threads).toBeGreaterThan(0);
    expect(report.blas?.loaded.length).toBeGreaterThan(0);
    const text = formatDoctorReport(report);
    expect(text).toMatch(/libtorch\s+\d+\.\d+/);
    expect(text).toMatch(/BLAS\s+/);
    expect(text).toMatch(/status: ok/);
  });

  it('prints JSON with --json and exits 0', async () => {
    const { code, out } = await capture(['doctor', '--json']);
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ ok: true, napi: { addon: 8 } });
  });

  it('answers --help and rejects unknown commands', async () => {
    expect((await capture(['doctor', '--help'])).out).toMatch(/Usage: torch-dpo doctor/);
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    expect(await main(['frobnicate'])).toBe(2);
    expect(String(err.mock.calls[0][0])).toMatch(/unknown command 'frobnicate'/);
    err.mockRestore();
  });
});

describe('torch-dpo doctor without a loadable addon', () => {
  it('exits non-zero with advice (compiled CLI in a package folder with no build)', () => {
    const root = join(__dirname, '..');
    const pkg = mkdtempSync(join(tmpdir(), 'torch-dpo-nobuild-'));
    cpSync(join(root, 'package.json'), join(pkg, 'package.json'));
    cpSync(join(root, 'dist'), join(pkg, 'dist'), { recursive: true }); // scripts/setup.sh compiles dist/ before tests
    cpSync(join(root, 'scripts', 'find-libtorch.js'), join(pkg, 'scripts', 'find-libtorch.js'));
    symlinkSync(join(root, 'node_modules'), join(pkg, 'node_modules'));
    const run = spawnSync(process.execPath, [join(pkg, 'dist', 'cli', 'main.js'), 'doctor'], { encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stdout).toMatch(/addon\s+NOT LOADED/);
    expect(run.stdout).toMatch(/no build\/Release\/torch_dpo.node and no matching prebuild/);
    expect(run.stdout).toMatch(/advice: run `bash scripts\/setup.sh`/);
    expect(run.stdout).toMatch(/status: NOT OK/);
  });
});
