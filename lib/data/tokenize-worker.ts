// Worker-thread side of parallel tokenization: builds the tokenizer once, then tokenizes batches of
// examples sent by lib/data/parallel-tokenize.ts. Results keep their order within a batch.
import { parentPort, workerData } from 'node:worker_threads';
import { RowError, type PreferenceExample } from './examples';
import { HfTokenizer } from './tokenizer';
import { tokenizePair, type TokenizeOptions, type TokenizedPair } from './tokenize-pairs';

export type WorkerResult = { pair: TokenizedPair } | { error: { reason: RowError['reason']; source: RowError['source']; field: string | null; detail: string } };

const { json, config, source, options } = workerData as { json: Record<string, unknown>; config: Record<string, unknown>; source: string; options: TokenizeOptions };
const tokenizer = new HfTokenizer(json, config, source);

parentPort!.on('message', ({ id, examples }: { id: number; examples: PreferenceExample[] }) => {
  const results: WorkerResult[] = examples.map((example) => {
    try {
      return { pair: tokenizePair(example, tokenizer, options) };
    } catch (err) {
      if (!(err instanceof RowError)) throw err;
      return { error: { reason: err.reason, source: err.source, field: err.field, detail: err.detail } };
    }
  });
  parentPort!.postMessage({ id, results });
});
