import { accessSync, constants, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError, FileError, TorchDpoError } from './errors';

/** The OS's reason of an fs error as words and code: "no space left on device (ENOSPC)". */
export function osReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (!e?.code) return String((e as Error)?.message ?? err);
  // Node's messages read "ENOSPC: no space left on device, write '…'": keep the words.
  const words = /^[A-Z0-9_]+: ([^,]+)/.exec(e.message)?.[1] ?? e.message;
  return `${words} (${e.code})`;
}

/**
 * Runs an fs operation; an OS error becomes a FileError that says what was being done to which path
 * (and `context`, e.g. "at step 40"), keeping the OS error as its cause. Our own errors pass through.
 */
export function fileAction<T>(action: string, path: string, body: () => T, context = ''): T {
  try {
    return body();
  } catch (err) {
    throw asFileError(err, action, path, context);
  }
}

/** The async form of fileAction. */
export async function fileActionAsync<T>(action: string, path: string, body: () => Promise<T>, context = ''): Promise<T> {
  try {
    return await body();
  } catch (err) {
    throw asFileError(err, action, path, context);
  }
}

function asFileError(err: unknown, action: string, path: string, context: string): unknown {
  if (err instanceof TorchDpoError || !(err as NodeJS.ErrnoException)?.code) return err;
  return new FileError(`cannot ${action} ${path}${context ? ` ${context}` : ''}: ${osReason(err)}`, { cause: err });
}

/**
 * Makes sure `path` is a folder this process can create files in (creating it when missing), before
 * anything expensive happens; a ConfigError names the field, the path and the OS reason otherwise.
 */
export function ensureWritableDir(path: string, field = 'output_dir'): string {
  if (path.trim() === '') throw new ConfigError(`${field} is empty: give the folder checkpoints and metrics go to`);
  const fail = (why: string, cause?: unknown) => new ConfigError(`${field} ${path} cannot be written: ${why}`, { cause });
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
    if (!isDir) throw fail('it is a file, not a folder');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fail(osReason(err), err);
  }
  try {
    if (!isDir) createFolders(path);
    accessSync(path, constants.W_OK);
    // access() trusts permission bits; a read-only mount or a full disk only shows on a real write.
    const probe = join(path, `.write-test-${process.pid}`);
    writeFileSync(probe, 'torch-dpo');
    rmSync(probe, { force: true });
  } catch (err) {
    throw fail(osReason(err), err);
  }
  return resolve(path);
}

/**
 * mkdir -p one level at a time: a recursive mkdirSync reports ENOENT for a read-only parent, while the
 * level that fails tells the real reason (EROFS, EACCES).
 */
function createFolders(path: string): void {
  const parent = dirname(path);
  if (parent !== path && !existsSync(parent)) createFolders(parent);
  mkdirSync(path);
}
