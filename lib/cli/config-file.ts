import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors';

/** Reads a YAML or JSON config file into a plain object (ConfigError names the file). */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${path}: ${(err as Error).message}`);
  }
  try {
    const value = extname(path) === '.json' ? JSON.parse(text) : parseYaml(text);
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${path}: the top level must be a mapping of option names to values`);
    return value as Record<string, unknown>;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${path}: ${(err as Error).message}`);
  }
}

/** Applies `--set key=value` overrides; dotted keys reach into nested objects, values parse as JSON when they can. */
export function applyOverrides(config: Record<string, unknown>, overrides: string[]): Record<string, unknown> {
  const out = structuredClone(config);
  for (const item of overrides) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set ${item}: expected key=value`);
    const path = item.slice(0, eq).split('.');
    const raw = item.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a plain string
    }
    let node = out;
    for (const key of path.slice(0, -1)) {
      if (!node[key] || typeof node[key] !== 'object') node[key] = {};
      node = node[key] as Record<string, unknown>;
    }
    node[path[path.length - 1]] = value;
  }
  return out;
}
