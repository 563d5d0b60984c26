import { AddonLoadError } from '../errors';
import { findLibtorch, type LibtorchInstall } from '../native/discovery';
import { addonLocation, blasInfo, cudaAvailable, cudaDeviceCount, numThreads, version } from '../runtime';

export interface DoctorReport {
  ok: boolean;
  node: string;
  napi: { node: number; addon: number | null };
  libtorch: LibtorchInstall | { error: string };
  addon: ReturnType<typeof addonLocation> | { error: string };
  torchVersion: string | null;
  cuda: { available: boolean; devices: number; build: boolean } | null;
  threads: number | null;
  blas: ReturnType<typeof blasInfo> | null;
  advice: string[];
}

/** Everything a bug report needs about this machine's libtorch and the addon. */
export function doctorReport(): DoctorReport {
  const report: DoctorReport = {
    ok: false,
    node: process.version,
    napi: { node: Number(process.versions.napi), addon: null },
    libtorch: { error: '' },
    addon: { error: '' },
    torchVersion: null,
    cuda: null,
    threads: null,
    blas: null,
    advice: [],
  };
  try {
    report.libtorch = findLibtorch();
  } catch (err) {
    report.libtorch = { error: (err as Error).message };
    report.advice.push((err as Error).message);
  }
  try {
    report.addon = addonLocation();
  } catch (err) {
    report.addon = { error: (err as Error).message };
    if (err instanceof AddonLoadError) report.advice.push('run `bash scripts/setup.sh` to install libtorch and build the addon');
    return report;
  }
  const v = version();
  report.napi.addon = v.napi;
  report.torchVersion = v.torch;
  report.cuda = { available: cudaAvailable(), devices: cudaDeviceCount(), build: v.cudaBuild };
  report.threads = numThreads();
  report.blas = blasInfo();
  if (report.blas.name.startsWith('reference')) report.advice.push('matrix products use the reference BLAS: `apt-get install libopenblas0-pthread` makes CPU training ~10x faster');
  if (v.cudaBuild && !report.cuda.available) report.advice.push('the addon is built with CUDA but no GPU is usable: check the driver (nvidia-smi)');
  report.ok = true;
  return report;
}

export function formatDoctorReport(r: DoctorReport): string {
  const lines: string[] = [];
  const row = (label: string, value: string) => lines.push(`${label.padEnd(12)} ${value}`);
  row('node', `${r.node} (Node-API ${r.napi.node})`);
  if ('error' in r.libtorch) row('libtorch', `not found: ${r.libtorch.error}`);
  else {
    const l = r.libtorch;
    row('libtorch', `${l.version} from ${l.source} (${l.cmakeDir})`);
    row('  libraries', l.libDir);
    row('  ABI', l.cxx11Abi === null ? 'unknown' : `_GLIBCXX_USE_CXX11_ABI=${Number(l.cxx11Abi)}`);
    row('  CUDA', l.cuda ? 'yes (libtorch_cuda.so present)' : 'no (CPU build)');
  }
  if ('error' in r.addon) row('addon', `NOT LOADED\n${r.addon.error}`);
  else {
    row('addon', `${r.addon.path} (${r.addon.kind}, Node-API ${r.napi.addon})`);
    row('torch', `${r.torchVersion}`);
    row('CUDA', r.cuda ? `${r.cuda.available ? `available, ${r.cuda.devices} device(s)` : 'not available'}${r.cuda.build ? '' : ' (CPU build)'}` : '?');
    row('threads', String(r.threads));
    if (r.blas) row('BLAS', `${r.blas.name} (configured: ${r.blas.configured}; loaded: ${r.blas.loaded.join(', ') || 'none'})`);
    for (const skipped of r.addon.skipped) row('  skipped', skipped);
  }
  for (const advice of r.advice) lines.push(`advice: ${advice}`);
  lines.push(r.ok ? 'status: ok' : 'status: NOT OK');
  return lines.join('\n');
}

export function runDoctor(options: { json?: boolean }): number {
  const report = doctorReport();
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDoctorReport(report)}\n`);
  return report.ok ? 0 : 1;
}
