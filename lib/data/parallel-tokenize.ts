import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { RowError, type PreferenceExample } from './examples';
import type { HfTokenizer } from './tokenizer';
import { tokenizePair, type TokenizeOptions } from './tokenize-pairs';
import type { WorkerResult } from './tokenize-worker';

const BATCH = 256;

/** The compiled worker script beside this file (absent when running from TypeScript sources). */
export function defaultWorkerScript(): string | null {
  const script = join(__dirname, 'tokenize-worker.js');
  return existsSync(script) ? script : null;
}

/**
 * Tokenizes examples in order, on `threads` worker threads when there are enough of them (each
 * worker builds its own tokenizer), else on this thread. A failed row comes back as a RowError in
 * its place, so the caller's on_invalid policy sees rows in file order.
 */
export async function tokenizeAll(
  examples: PreferenceExample[],
  tokenizer: HfTokenizer,
  options: TokenizeOptions,
  parallel: { threads?: number; minExamples?: number; workerScript?: string | null } = {},
): Promise<{ results: WorkerResult[]; threads: number }> {
  const threads = Math.max(1, Math.min(parallel.threads ?? availableParallelism(), Math.ceil(examples.length / BATCH)));
  const script = parallel.workerScript === undefined ? defaultWorkerScript() : parallel.workerScript;
  if (threads < 2 || examples.length < (parallel.minExamples ?? 2000) || !script) {
    const results = examples.map((example): WorkerResult => {
      try {
        return { pair: tokenizePair(example, tokenizer, options) };
      } catch (err) {
        if (!(err instanceof RowError)) throw err;
        return { error: { reason: err.reason, source: err.source, field: err.field, detail: err.detail } };
      }
    });
    return { results, threads: 1 };
  }
  const workers = Array.from({ length: threads }, () => new Worker(script, {
    workerData: { json: tokenizer.json, config: tokenizer.config, source: tokenizer.source, options },
  }));
  try {
    const batches: PreferenceExample[][] = [];
    for (let i = 0; i < examples.length; i += BATCH) batches.push(examples.slice(i, i + BATCH));
    const results: WorkerResult[][] = new Array(batches.length);
    let next = 0;
    await Promise.all(workers.map((worker) => new Promise<void>((resolve, reject) => {
      const send = () => {
        if (next >= batches.length) return resolve();
        const id = next;
        next += 1;
        worker.postMessage({ id, examples: batches[id] });
      };
      worker.on('message', ({ id, results: batch }: { id: number; results: WorkerResult[] }) => {
        results[id] = batch;
        send();
      });
      worker.once('error', reject);
      send();
    })));
    return { results: results.flat(), threads };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
