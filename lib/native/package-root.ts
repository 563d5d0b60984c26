import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AddonLoadError } from '../errors';

let cached: string | undefined;

/** This package's version (from its package.json). */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** The torch-dpo package folder, found upwards from this file (works from lib/ and from dist/). */
export function packageRoot(): string {
  if (cached) return cached;
  let dir = __dirname;
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'torch-dpo') {
      cached = dir;
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new AddonLoadError(`no package.json of torch-dpo above ${__dirname}: is the package installed whole?`);
    dir = parent;
  }
}
