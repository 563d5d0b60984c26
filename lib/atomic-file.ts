import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { faultPoint } from './fault-point';

let written = 0;

/**
 * Writes a file so that readers see the old file or the complete new one, never a part: the bytes go
 * to a temporary file unique to this process and write (several ranks may write the same shared cache
 * file at once), are flushed to disk, then renamed over the target.
 */
export function writeFileAtomic(path: string, parts: string | Uint8Array | (string | Uint8Array)[]): void {
  written += 1;
  const temporary = `${path}.partial-${process.pid}-${written}`;
  const fd = openSync(temporary, 'w');
  try {
    for (const part of Array.isArray(parts) ? parts : [parts]) writeSync(fd, typeof part === 'string' ? Buffer.from(part, 'utf8') : part);
    faultPoint(`write:${basename(path)}`); // tests: a kill or a full disk between writing and renaming
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(temporary, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(temporary, path);
}
