import { join } from 'node:path';
import { packageRoot } from './package-root';

/** What scripts/find-libtorch.js reports: the libtorch that builds use and the loader expects. */
export interface LibtorchInstall {
  source: 'Torch_DIR' | 'CMAKE_PREFIX_PATH' | 'LIBTORCH' | 'pytorch' | 'system';
  cmakeDir: string;
  prefix: string;
  libDir: string;
  includeDirs: string[];
  version: string;
  cuda: boolean;
  cxx11Abi: boolean | null;
  systemLibDir: boolean;
  python?: string;
}

/** What every build writes beside its .node (build/Release/torch_dpo.meta.json, prebuilds/…/*.json). */
export interface BuildMetadata {
  addon: string;
  napiVersion: number;
  platform: string;
  arch: string;
  libc: string;
  torchVersion: string;
  cuda: boolean;
  cxx11Abi: boolean | null;
  libtorchSource: string;
  libtorchLibDir: string | null;
  systemLibDir: boolean;
}

interface DiscoveryScript {
  findLibtorch(env?: NodeJS.ProcessEnv): LibtorchInstall;
  buildMetadata(found: LibtorchInstall): BuildMetadata;
}

function script(): DiscoveryScript {
  // The routine is plain JS so CMake and node-gyp can run it before anything is compiled.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(join(packageRoot(), 'scripts', 'find-libtorch.js')) as DiscoveryScript;
}

/** The libtorch found by the project's lookup order; throws with advice when there is none. */
export function findLibtorch(env: NodeJS.ProcessEnv = process.env): LibtorchInstall {
  return script().findLibtorch(env);
}

export function buildMetadataFor(found: LibtorchInstall): BuildMetadata {
  return script().buildMetadata(found);
}
