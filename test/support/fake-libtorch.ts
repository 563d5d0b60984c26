import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A libtorch folder shaped like the official zip (headers, CMake config, libs), without the binaries. */
export function makeFakeLibtorch(options: { version: string; cuda?: boolean; abi?: 0 | 1 }): string {
  const prefix = mkdtempSync(join(tmpdir(), 'fake-libtorch-'));
  const cmakeDir = join(prefix, 'share', 'cmake', 'Torch');
  const versionDir = join(prefix, 'include', 'torch', 'csrc', 'api', 'include', 'torch');
  mkdirSync(cmakeDir, { recursive: true });
  mkdirSync(versionDir, { recursive: true });
  mkdirSync(join(prefix, 'lib'));
  writeFileSync(join(cmakeDir, 'TorchConfig.cmake'), `set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=${options.abi ?? 1}")\n`);
  writeFileSync(join(cmakeDir, 'TorchConfigVersion.cmake'), `set(PACKAGE_VERSION "${options.version}")\n`);
  writeFileSync(join(versionDir, 'version.h'), `#define TORCH_VERSION \\\n  "${options.version}"\n`);
  writeFileSync(join(prefix, 'lib', 'libtorch.so'), '');
  if (options.cuda) writeFileSync(join(prefix, 'lib', 'libtorch_cuda.so'), '');
  return prefix;
}

/** An executable that answers the PyTorch probe like `python3 -c ...` would. */
export function makeFakePython(answer: object): string {
  const dir = mkdtempSync(join(tmpdir(), 'fake-python-'));
  const path = join(dir, 'python3');
  writeFileSync(path, `#!/bin/sh\necho '${JSON.stringify(answer)}'\n`);
  chmodSync(path, 0o755);
  return path;
}
