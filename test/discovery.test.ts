import { join } from 'node:path';
import { findLibtorch } from '../lib';
import { makeFakeLibtorch, makeFakePython } from './support/fake-libtorch';

// Only the variables under test: the machine's own settings must not leak in.
const env = (vars: Record<string, string>) => ({ PATH: process.env.PATH, ...vars }) as NodeJS.ProcessEnv;

describe('libtorch discovery order', () => {
  const cuda = makeFakeLibtorch({ version: '2.5.1', cuda: true, abi: 0 });
  const cpu = makeFakeLibtorch({ version: '2.4.0' });

  it('uses LIBTORCH=<prefix> and reads version, CUDA and ABI from it', () => {
    const found = findLibtorch(env({ LIBTORCH: cuda }));
    expect(found).toMatchObject({ source: 'LIBTORCH', version: '2.5.1', cuda: true, cxx11Abi: false, systemLibDir: false });
    expect(found.libDir).toBe(join(cuda, 'lib'));
    expect(found.includeDirs).toEqual([join(cuda, 'include'), join(cuda, 'include', 'torch', 'csrc', 'api', 'include')]);
  });

  it('prefers Torch_DIR, then CMAKE_PREFIX_PATH, over LIBTORCH', () => {
    const torchDir = join(cpu, 'share', 'cmake', 'Torch');
    expect(findLibtorch(env({ Torch_DIR: torchDir, LIBTORCH: cuda })).source).toBe('Torch_DIR');
    const viaPrefix = findLibtorch(env({ CMAKE_PREFIX_PATH: `/nonexistent:${cpu}`, LIBTORCH: cuda }));
    expect(viaPrefix).toMatchObject({ source: 'CMAKE_PREFIX_PATH', version: '2.4.0', cuda: false });
  });

  it('asks Python torch when LIBTORCH_USE_PYTORCH=1', () => {
    const python = makeFakePython({ prefix: join(cuda, 'share', 'cmake'), version: '2.5.1+cu124', abi: true });
    const found = findLibtorch(env({ LIBTORCH_USE_PYTORCH: '1', PYTHON: python }));
    // The ABI Python reports wins over the config file's, since that is what its libraries use.
    expect(found).toMatchObject({ source: 'pytorch', version: '2.5.1', cuda: true, cxx11Abi: true, python });
  });

  it('falls back to the system package', () => {
    expect(findLibtorch(env({})).source).toBe('system');
  });

  it('refuses a hint that is set but wrong instead of silently using another libtorch', () => {
    expect(() => findLibtorch(env({ LIBTORCH: '/nonexistent/libtorch' }))).toThrow(/LIBTORCH=\/nonexistent\/libtorch holds no/);
    expect(() => findLibtorch(env({ Torch_DIR: '/tmp' }))).toThrow(/Torch_DIR=\/tmp holds no TorchConfig.cmake/);
    expect(() => findLibtorch(env({ LIBTORCH_USE_PYTORCH: '1', PYTHON: '/nonexistent/python' }))).toThrow(/cannot report torch/);
  });
});
