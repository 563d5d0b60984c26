#!/usr/bin/env node
'use strict';
// The one libtorch discovery routine. CMakeLists.txt, binding.gyp, the addon loader and `doctor`
// all ask it, so a build and the runtime check can never disagree on which libtorch is meant.
// Lookup order, first hit wins (a hint that is set but wrong is an error, never skipped):
//   1. Torch_DIR, then CMAKE_PREFIX_PATH   2. LIBTORCH=<prefix>
//   3. LIBTORCH_USE_PYTORCH=1 (asks $PYTHON or python3 for torch's cmake prefix and ABI)
//   4. the system package (Debian/Ubuntu libtorch-dev)
// Plain CommonJS without dependencies: it runs before anything is compiled or installed.

const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const MULTIARCH = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' }[process.arch] || '';
const SYSTEM_LIB_DIRS = ['/usr/lib', '/usr/lib64', '/lib', '/lib64'].concat(
  MULTIARCH ? [`/usr/lib/${MULTIARCH}`, `/lib/${MULTIARCH}`] : []
);
const SYSTEM_CMAKE_DIRS = [
  MULTIARCH && `/usr/lib/${MULTIARCH}/cmake/Torch`,
  '/usr/lib/cmake/Torch',
  '/usr/share/cmake/Torch',
  '/usr/local/lib/cmake/Torch',
  '/usr/local/share/cmake/Torch',
].filter(Boolean);

class LibtorchNotFound extends Error {
  constructor(message) {
    super(message);
    this.name = 'LibtorchNotFound';
  }
}

const hasConfig = (dir) => fs.existsSync(path.join(dir, 'TorchConfig.cmake'));

/** Directories under a CMake prefix where a Torch package config may live. */
function cmakeDirsUnderPrefix(prefix) {
  return [
    prefix,
    path.join(prefix, 'Torch'),
    path.join(prefix, 'share', 'cmake', 'Torch'),
    path.join(prefix, 'lib', 'cmake', 'Torch'),
    MULTIARCH && path.join(prefix, 'lib', MULTIARCH, 'cmake', 'Torch'),
  ].filter(Boolean);
}

/** The install prefix is the nearest ancestor of the config dir that holds include/torch. */
function prefixOf(cmakeDir) {
  let dir = path.resolve(cmakeDir);
  for (let i = 0; i < 6; i += 1) {
    dir = path.dirname(dir);
    if (fs.existsSync(path.join(dir, 'include', 'torch'))) return dir;
  }
  throw new LibtorchNotFound(`no include/torch above ${cmakeDir}: the libtorch install is incomplete`);
}

function libDirOf(prefix, cmakeDir) {
  const candidates = [
    path.join(prefix, 'lib'),
    path.join(prefix, 'lib64'),
    MULTIARCH && path.join(prefix, 'lib', MULTIARCH),
    // Debian keeps the config inside the multiarch lib dir itself.
    path.resolve(cmakeDir, '..', '..'),
  ].filter(Boolean);
  const hit = candidates.find((dir) => fs.existsSync(path.join(dir, 'libtorch.so')));
  if (!hit) throw new LibtorchNotFound(`libtorch.so not found in ${candidates.join(', ')}`);
  return hit;
}

function readVersion(prefix, cmakeDir) {
  const header = path.join(prefix, 'include', 'torch', 'csrc', 'api', 'include', 'torch', 'version.h');
  if (fs.existsSync(header)) {
    const m = /#define\s+TORCH_VERSION\s+\\?\s*"([^"]+)"/.exec(fs.readFileSync(header, 'utf8'));
    if (m) return m[1];
  }
  const versionFile = path.join(cmakeDir, 'TorchConfigVersion.cmake');
  if (fs.existsSync(versionFile)) {
    const m = /set\(PACKAGE_VERSION\s+"([^"]+)"\)/.exec(fs.readFileSync(versionFile, 'utf8'));
    if (m) return m[1];
  }
  return 'unknown';
}

function readCxx11Abi(cmakeDir) {
  const text = fs.readFileSync(path.join(cmakeDir, 'TorchConfig.cmake'), 'utf8');
  const m = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(text);
  return m ? m[1] === '1' : null;
}

/**
 * What the CMake targets of this libtorch ask of their users (Caffe2Targets.cmake beside TorchConfig):
 * compile definitions (USE_DISTRIBUTED, USE_C10D_GLOO, USE_C10D_NCCL, …: without them c10d's headers
 * declare nothing) and include folders. Generator expressions only forward these, so literal values
 * are all there is to read.
 */
function readTargetInterface(cmakeDir, prefix) {
  const file = path.join(cmakeDir, '..', 'Caffe2', 'Caffe2Targets.cmake');
  const definitions = new Set();
  const includeDirs = new Set();
  if (!fs.existsSync(file)) return { definitions: [], includeDirs: [] };
  const text = fs.readFileSync(file, 'utf8');
  // _IMPORT_PREFIX: as many folders up from the file as it strips with get_filename_component(... PATH).
  const ups = (text.match(/get_filename_component\(_IMPORT_PREFIX "\$\{_IMPORT_PREFIX\}" PATH\)/g) || []).length + 1;
  let importPrefix = path.resolve(file);
  for (let i = 0; i < ups; i += 1) importPrefix = path.dirname(importPrefix);
  for (const m of text.matchAll(/INTERFACE_COMPILE_DEFINITIONS "([^"]*)"/g)) {
    for (const d of m[1].split(';')) if (d && !d.includes('$')) definitions.add(d);
  }
  for (const m of text.matchAll(/INTERFACE_INCLUDE_DIRECTORIES "([^"]*)"/g)) {
    for (const d of m[1].split(';')) {
      const dir = d.replace('${_IMPORT_PREFIX}', importPrefix);
      if (dir && !dir.includes('$') && fs.existsSync(dir)) includeDirs.add(path.resolve(dir));
    }
  }
  includeDirs.delete(path.join(prefix, 'include'));
  return { definitions: [...definitions].sort(), includeDirs: [...includeDirs] };
}

function describe(cmakeDir, source, extra = {}) {
  const resolved = fs.realpathSync(cmakeDir);
  const prefix = prefixOf(resolved);
  const libDir = libDirOf(prefix, resolved);
  const cxx11Abi = extra.cxx11Abi !== undefined ? extra.cxx11Abi : readCxx11Abi(resolved);
  const targets = readTargetInterface(resolved, prefix);
  return {
    source,
    cmakeDir: resolved,
    prefix,
    libDir,
    includeDirs: [path.join(prefix, 'include'), path.join(prefix, 'include', 'torch', 'csrc', 'api', 'include'), ...targets.includeDirs],
    definitions: targets.definitions,
    version: extra.version || readVersion(prefix, resolved),
    cuda: fs.existsSync(path.join(libDir, 'libtorch_cuda.so')),
    cxx11Abi,
    systemLibDir: SYSTEM_LIB_DIRS.includes(libDir),
    ...(extra.python ? { python: extra.python } : {}),
  };
}

function fromCmakeHints(env) {
  if (env.Torch_DIR) {
    if (!hasConfig(env.Torch_DIR)) {
      throw new LibtorchNotFound(`Torch_DIR=${env.Torch_DIR} holds no TorchConfig.cmake`);
    }
    return describe(env.Torch_DIR, 'Torch_DIR');
  }
  if (env.CMAKE_PREFIX_PATH) {
    for (const prefix of env.CMAKE_PREFIX_PATH.split(path.delimiter).filter(Boolean)) {
      const dir = cmakeDirsUnderPrefix(prefix).find(hasConfig);
      if (dir) return describe(dir, 'CMAKE_PREFIX_PATH');
    }
  }
  return null;
}

function fromLibtorchPrefix(env) {
  if (!env.LIBTORCH) return null;
  const dir = cmakeDirsUnderPrefix(env.LIBTORCH).find(hasConfig);
  if (!dir) {
    throw new LibtorchNotFound(
      `LIBTORCH=${env.LIBTORCH} holds no share/cmake/Torch/TorchConfig.cmake: point it at the unpacked libtorch folder`
    );
  }
  return describe(dir, 'LIBTORCH');
}

const PYTHON_PROBE = [
  'import json, torch, torch.utils',
  'print(json.dumps({"prefix": torch.utils.cmake_prefix_path, "version": torch.__version__,',
  ' "abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI)}))',
].join('\n');

function fromPython(env) {
  if (!['1', 'true', 'yes'].includes(String(env.LIBTORCH_USE_PYTORCH || '').toLowerCase())) return null;
  const python = env.PYTHON || 'python3';
  let answer;
  try {
    answer = JSON.parse(execFileSync(python, ['-c', PYTHON_PROBE], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] }));
  } catch (err) {
    const detail = String((err.stderr && err.stderr.toString()) || err.message).trim().split('\n').pop();
    throw new LibtorchNotFound(`LIBTORCH_USE_PYTORCH=1 but ${python} cannot report torch: ${detail}`);
  }
  const dir = cmakeDirsUnderPrefix(answer.prefix).find(hasConfig);
  if (!dir) {
    throw new LibtorchNotFound(
      `${python}'s torch ${answer.version} ships no CMake config under ${answer.prefix} (a distro build without it? use LIBTORCH=)`
    );
  }
  return describe(dir, 'pytorch', { version: answer.version.split('+')[0], cxx11Abi: answer.abi, python });
}

function fromSystem() {
  const dir = SYSTEM_CMAKE_DIRS.find(hasConfig);
  return dir ? describe(dir, 'system') : null;
}

/** Returns the libtorch to build against and load, or throws LibtorchNotFound with advice. */
function findLibtorch(env = process.env) {
  const found = fromCmakeHints(env) || fromLibtorchPrefix(env) || fromPython(env) || fromSystem();
  if (found) return found;
  throw new LibtorchNotFound(
    'no libtorch found: run `bash scripts/setup.sh` (installs Debian/Ubuntu libtorch-dev), or set ' +
      'LIBTORCH=<unpacked libtorch>, Torch_DIR=<dir with TorchConfig.cmake>, or LIBTORCH_USE_PYTORCH=1'
  );
}

function libcFamily() {
  const report = process.report && process.report.getReport ? process.report.getReport() : null;
  return report && report.header && report.header.glibcVersionRuntime ? 'glibc' : 'musl';
}

/** What a build records beside its .node; the loader compares it with findLibtorch(). */
function buildMetadata(found) {
  return {
    addon: 'torch_dpo',
    napiVersion: 8,
    platform: process.platform,
    arch: process.arch,
    libc: libcFamily(),
    torchVersion: found.version,
    cuda: found.cuda,
    cxx11Abi: found.cxx11Abi,
    libtorchSource: found.source,
    libtorchLibDir: found.libDir,
    systemLibDir: found.systemLibDir,
  };
}

/** Values binding.gyp needs, formatted for gyp's command expansion (the CMake build reads the JSON). */
function gypValue(found, name) {
  switch (name) {
    case 'includeDirs':
      return found.includeDirs.join(' ');
    case 'abi':
      return found.cxx11Abi === false ? '0' : '1';
    case 'definitions':
      // What libtorch's CMake targets give CMake builds. (TORCH_DPO_WITH_CUDA stays CMake-only: its
      // memory statistics need the CUDA toolkit's headers, which gyp is not told about.)
      return (found.definitions || []).join(' ');
    case 'libraries':
      // A CUDA libtorch must keep libtorch_cuda.so linked even though nothing references it directly.
      return [`-L${found.libDir}`, '-ltorch', '-ltorch_cpu', '-lc10']
        .concat(found.cuda ? ['-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed'] : [])
        // $ORIGIN itself is a literal in binding.gyp: gyp strips the quotes of expanded commands.
        .concat(found.systemLibDir ? [] : [`-Wl,-rpath,${found.libDir}`])
        .join(' ');
    default:
      throw new LibtorchNotFound(`unknown gyp value '${name}'`);
  }
}

module.exports = { findLibtorch, buildMetadata, gypValue, LibtorchNotFound };

if (require.main === module) {
  const args = process.argv.slice(2);
  try {
    const found = findLibtorch();
    if (args[0] === '--field') {
      const value = found[args[1]];
      process.stdout.write(Array.isArray(value) ? value.join(' ') : String(value));
    } else if (args[0] === '--gyp') {
      process.stdout.write(gypValue(found, args[1]));
    } else if (args[0] === '--metadata') {
      process.stdout.write(JSON.stringify(buildMetadata(found), null, 2) + '\n');
    } else {
      process.stdout.write(JSON.stringify(found, null, 2) + '\n');
    }
  } catch (err) {
    process.stderr.write(`find-libtorch: ${err.message}\n`);
    process.exit(1);
  }
}
