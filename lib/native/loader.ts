import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { AddonLoadError } from '../errors';
import { findLibtorch, type BuildMetadata, type LibtorchInstall } from './discovery';
import { packageRoot } from './package-root';

export interface AddonCandidate {
  path: string;
  kind: 'build' | 'prebuild' | 'override';
  metadata: BuildMetadata | null;
}

export interface LoadedAddon<T> {
  addon: T;
  path: string;
  kind: AddonCandidate['kind'];
  metadata: BuildMetadata | null;
  libtorch: LibtorchInstall | null;
  /** Candidates passed over before this one, with the reason. */
  skipped: string[];
}

// node-gyp-build's tag parser, so prebuild names follow the npm convention it defines.
interface PrebuildTags {
  file: string;
  runtime?: string;
  napi?: boolean;
  libc?: string;
  specificity: number;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeGypBuild = require('node-gyp-build') as {
  parseTags(file: string): PrebuildTags | undefined;
  matchTags(runtime: string, abi: string): (tags: PrebuildTags) => boolean;
  compareTags(runtime: string): (a: PrebuildTags, b: PrebuildTags) => number;
};

function readMetadata(path: string): BuildMetadata | null {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as BuildMetadata) : null;
}

/** Where binaries may be, best first: $TORCH_DPO_ADDON, this checkout's build, then prebuilds. */
export function addonCandidates(root = packageRoot(), env: NodeJS.ProcessEnv = process.env): AddonCandidate[] {
  const out: AddonCandidate[] = [];
  if (env.TORCH_DPO_ADDON) {
    const path = env.TORCH_DPO_ADDON;
    out.push({ path, kind: 'override', metadata: readMetadata(path.replace(/\.node$/, '.meta.json')) });
  }
  for (const config of ['Release', 'Debug']) {
    const path = join(root, 'build', config, 'torch_dpo.node');
    if (existsSync(path)) out.push({ path, kind: 'build', metadata: readMetadata(join(root, 'build', config, 'torch_dpo.meta.json')) });
  }
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (existsSync(dir)) {
    const tags = readdirSync(dir)
      .map((file) => nodeGypBuild.parseTags(file))
      .filter((t): t is PrebuildTags => t !== undefined)
      .filter(nodeGypBuild.matchTags('node', process.versions.modules))
      .sort(nodeGypBuild.compareTags('node'));
    for (const t of tags) {
      const path = join(dir, t.file);
      out.push({ path, kind: 'prebuild', metadata: readMetadata(path.replace(/\.node$/, '.json')) });
    }
  }
  return out;
}

const majorMinorPatch = (version: string) => version.split(/[^0-9.]/)[0].split('.').slice(0, 3).join('.');

/** Why a binary does not fit the libtorch found; empty when it fits. */
export function incompatibilities(meta: BuildMetadata, libtorch: LibtorchInstall): string[] {
  const reasons: string[] = [];
  if (meta.platform !== process.platform || meta.arch !== process.arch) {
    reasons.push(`built for ${meta.platform}-${meta.arch}, this is ${process.platform}-${process.arch}`);
  }
  if (meta.napiVersion > Number(process.versions.napi)) {
    reasons.push(`needs Node-API ${meta.napiVersion}, this Node has ${process.versions.napi}`);
  }
  if (majorMinorPatch(meta.torchVersion) !== majorMinorPatch(libtorch.version)) {
    reasons.push(`built for libtorch ${meta.torchVersion}, found ${libtorch.version} (${libtorch.source})`);
  }
  if (meta.cuda !== libtorch.cuda) {
    reasons.push(`built ${meta.cuda ? 'with' : 'without'} CUDA, the libtorch found is ${libtorch.cuda ? 'CUDA' : 'CPU-only'}`);
  }
  if (meta.cxx11Abi !== null && libtorch.cxx11Abi !== null && meta.cxx11Abi !== libtorch.cxx11Abi) {
    reasons.push(`built with _GLIBCXX_USE_CXX11_ABI=${Number(meta.cxx11Abi)}, libtorch uses ${Number(libtorch.cxx11Abi)}`);
  }
  return reasons;
}

/** Turns a dlopen failure into the sentence that says what to do. */
export function explainLoadFailure(path: string, error: unknown, libtorch: LibtorchInstall | null): string {
  const message = error instanceof Error ? error.message : String(error);
  const missing = /(lib[^\s:/]+\.so[.0-9]*): cannot open shared object file/.exec(message);
  if (missing) {
    const where = libtorch
      ? `libtorch's libraries are in ${libtorch.libDir}: add it to LD_LIBRARY_PATH, or rebuild with \`npm run build:native\``
      : 'install libtorch with `bash scripts/setup.sh`, or set LIBTORCH=<unpacked libtorch> and run `npm run build:native`';
    return `${basename(path)} needs ${missing[1]}, which the dynamic linker cannot find: ${where}`;
  }
  if (/undefined symbol/.test(message)) {
    return `${basename(path)} does not match the libtorch it loaded (${message.split('\n')[0]}): rebuild with \`npm run build:native\``;
  }
  return `${basename(path)} failed to load: ${message.split('\n')[0]}`;
}

/** Loads the first binary that fits the libtorch found; AddonLoadError lists every attempt. */
export function loadAddon<T>(root = packageRoot(), env: NodeJS.ProcessEnv = process.env): LoadedAddon<T> {
  let libtorch: LibtorchInstall | null = null;
  let discoveryError = '';
  try {
    libtorch = findLibtorch(env);
  } catch (err) {
    discoveryError = (err as Error).message;
  }
  const skipped: string[] = [];
  for (const candidate of addonCandidates(root, env)) {
    if (candidate.kind === 'prebuild') {
      // A prebuild is only trusted when it was made for the libtorch this machine has.
      if (!candidate.metadata) {
        skipped.push(`${candidate.path}: no metadata file beside it`);
        continue;
      }
      if (!libtorch) {
        skipped.push(`${candidate.path}: cannot check it, ${discoveryError}`);
        continue;
      }
    }
    if (candidate.metadata && libtorch) {
      const reasons = incompatibilities(candidate.metadata, libtorch);
      if (reasons.length > 0) {
        skipped.push(`${candidate.path}: ${reasons.join('; ')}`);
        continue;
      }
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const addon = require(candidate.path) as T;
      return { addon, path: candidate.path, kind: candidate.kind, metadata: candidate.metadata, libtorch, skipped };
    } catch (err) {
      skipped.push(`${candidate.path}: ${explainLoadFailure(candidate.path, err, libtorch)}`);
    }
  }
  const advice = libtorch
    ? 'build it for this machine with `npm run build:native` (or `bash scripts/setup.sh`)'
    : `${discoveryError}`;
  const tried = skipped.length > 0 ? `\n  tried:\n  - ${skipped.join('\n  - ')}` : '\n  no build/Release/torch_dpo.node and no matching prebuild';
  throw new AddonLoadError(`torch-dpo's native addon could not be loaded: ${advice}${tried}`);
}
