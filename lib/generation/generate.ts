import { ConfigError } from '../errors';
import type { HfTokenizer } from '../data/tokenizer';
import { noGrad } from '../grad-mode';
import type { CausalLM } from '../models/causal-lm';
import { inEvalMode } from '../models/eval-mode';
import { sampleTokens } from '../ops/sample-tokens';
import { scope } from '../scope';
import { Tensor } from '../tensor';
import { onDevice } from '../tensor-functions';
import { parseGenerationOptions, type GenerationOptions, type GenerationOptionsInput } from './generation-options';
import { endOfSequenceIds, promptIds, type GenerationPrompt } from './prompts';
import { RowStream } from './row-streams';

export interface Generation {
  prompt: GenerationPrompt;
  promptIds: number[];
  /** Generated token ids; the EOS that ended the row is included. */
  ids: number[];
  /** Per generated token: its log-probability under the model (unwarped: what sequence log-probs give). */
  logprobs: number[];
  /** The generated ids decoded without special tokens, cut before a stop string. */
  text: string;
  finishReason: 'eos' | 'stop' | 'length';
}

/** One row while it is generated. */
interface Row {
  index: number;
  prompt: GenerationPrompt;
  promptIds: number[];
  ids: number[];
  logprobs: number[];
  stream: RowStream;
  finish: Generation['finishReason'] | null;
  text: string | null;
}

interface StepChoice {
  ids: number[];
  logprobs: number[];
}

/**
 * Continues each prompt with the model: greedy (temperature 0) or sampled (temperature, top-k, top-p),
 * until EOS (the tokenizer's, and generation_config.json's), a stop string or maxNewTokens. Built-in
 * architectures keep a KV cache (prompts left-padded together, positions counted from each row's
 * first real token, as HF's generate); a traced export has no cache method and re-runs the whole
 * sequence for every new token (right-padded), with a notice. Results are in prompt order.
 */
export async function generate(
  model: CausalLM, tokenizer: HfTokenizer, prompts: GenerationPrompt[], input: GenerationOptionsInput = {}, hooks: { notice?: (message: string) => void } = {},
): Promise<Generation[]> {
  const options = parseGenerationOptions(input);
  const cached = options.useCache && model.info.source === 'builtin';
  if (options.useCache && !cached) hooks.notice?.(`${model.info.path ?? model.info.architecture} is a traced export without a KV cache: every new token re-runs the whole sequence (slow); the built-in architectures cache`);
  const rows: Row[] = prompts.map((prompt, index) => ({
    index, prompt, promptIds: promptIds(tokenizer, prompt), ids: [], logprobs: [], stream: new RowStream(options.seed, index), finish: null, text: null,
  }));
  checkPositions(rows, options, model.info.maxPositions);
  const ends = endOfSequenceIds(model, tokenizer);
  const padId = tokenizer.padId ?? 0;
  // Sampling reads the model as it is: dropout off.
  await inEvalMode(model, () => noGrad(async () => {
    for (let start = 0; start < rows.length; start += options.batchSize) {
      const chunk = rows.slice(start, start + options.batchSize);
      const accept = (choice: StepChoice, active: Row[]) => acceptTokens(active, choice, ends, options, tokenizer);
      if (cached) await generateCached(model, chunk, options, padId, accept);
      else await generateUncached(model, chunk, options, padId, accept);
    }
  }));
  return rows.map((r) => ({
    prompt: r.prompt, promptIds: r.promptIds, ids: r.ids, logprobs: r.logprobs,
    text: r.text ?? tokenizer.decode(r.ids, { skipSpecialTokens: true }), finishReason: r.finish ?? 'length',
  }));
}

function checkPositions(rows: Row[], options: GenerationOptions, maxPositions: number): void {
  const longest = rows.reduce((a, r) => (r.promptIds.length > a.promptIds.length ? r : a), rows[0] ?? null);
  if (longest && longest.promptIds.length + options.maxNewTokens > maxPositions) {
    throw new ConfigError(`generate: prompt ${longest.index} has ${longest.promptIds.length} tokens; with maxNewTokens ${options.maxNewTokens} that is ${longest.promptIds.length + options.maxNewTokens} positions, the model takes ${maxPositions}: lower maxNewTokens or shorten the prompt`);
  }
}

/** Appends each active row's new token; a row ends at EOS, a stop string or maxNewTokens. */
function acceptTokens(active: Row[], choice: StepChoice, ends: Set<number>, options: GenerationOptions, tokenizer: HfTokenizer): void {
  active.forEach((row, i) => {
    if (row.finish) return;
    const id = choice.ids[i];
    row.ids.push(id);
    row.logprobs.push(choice.logprobs[i]);
    if (ends.has(id)) row.finish = 'eos';
    else if (options.stop.length > 0) {
      const text = tokenizer.decode(row.ids, { skipSpecialTokens: true });
      const at = Math.min(...options.stop.map((s) => text.indexOf(s)).filter((p) => p >= 0));
      if (Number.isFinite(at)) [row.finish, row.text] = ['stop', text.slice(0, at)];
    }
    if (!row.finish && row.ids.length >= options.maxNewTokens) row.finish = 'length';
  });
}

/** The next token of each row from its logits [B,V]: uniforms from the rows' own streams. */
async function choose(logits: Tensor, rows: Row[], options: GenerationOptions): Promise<StepChoice> {
  return scope(async () => {
    const uniforms = options.temperature > 0 ? Tensor.from(Float64Array.from(rows, (r) => r.stream.uniform())) : null;
    const { ids, logps } = await sampleTokens(logits, uniforms, options);
    return {
      ids: Array.from(await ids.toTypedArray() as BigInt64Array, Number),
      logprobs: Array.from(await logps.toTypedArray() as Float32Array | Float64Array),
    };
  });
}

/**
 * The cached loop: prompts left-padded to P, a cache of P + maxNewTokens slots per row, one forward
 * over the prompts, then one token per forward. Finished rows keep stepping (rows do not interact)
 * until every row has finished.
 */
async function generateCached(model: CausalLM, rows: Row[], options: GenerationOptions, padId: number, accept: (c: StepChoice, r: Row[]) => void): Promise<void> {
  const device = model.module.device;
  const B = rows.length;
  const P = Math.max(...rows.map((r) => r.promptIds.length));
  const slots = P + options.maxNewTokens;
  await scope(async () => {
    const ids = new BigInt64Array(B * P).fill(BigInt(padId));
    const positions = new BigInt64Array(B * P).fill(1n);
    const mask = new BigInt64Array(B * slots).fill(1n);
    rows.forEach((row, b) => {
      const pad = P - row.promptIds.length;
      for (let t = 0; t < slots; t += 1) if (t < pad) mask[b * slots + t] = 0n;
      row.promptIds.forEach((id, t) => {
        ids[b * P + pad + t] = BigInt(id);
        // HF's generate: position = running count of real tokens − 1 (padding slots read position 1).
        positions[b * P + pad + t] = BigInt(t);
      });
    });
    const fullMask = await onDevice(Tensor.from(mask, { shape: [B, slots] }), device);
    const [kCache, vCache] = (await model.module.run('new_cache', [B, slots])) as Tensor[][];
    const forward = (input: BigInt64Array, at: BigInt64Array, start: number, width: number) => scope(async () => model.module.run('next_token_logits', [
      await onDevice(Tensor.from(input, { shape: [B, width] }), device), await onDevice(Tensor.from(at, { shape: [B, width] }), device),
      await fullMask.narrow(1, 0, start + width), kCache, vCache, start,
    ]) as Promise<Tensor>);
    let logits = await forward(ids, positions, 0, P);
    for (let step = 0; ; step += 1) {
      const choice = await choose(logits, rows, options);
      logits.dispose();
      accept(choice, rows);
      if (rows.every((r) => r.finish)) return;
      const next = BigInt64Array.from(choice.ids, BigInt);
      const at = BigInt64Array.from(rows, (r) => BigInt(r.promptIds.length + step));
      logits = await forward(next, at, P + step, 1);
    }
  });
}

/**
 * Without a cache: every step runs the rows still going, right-padded (positions 0, 1, … along each
 * row, what any exported forward assumes), and reads each row's logits at its last token.
 */
async function generateUncached(model: CausalLM, rows: Row[], options: GenerationOptions, padId: number, accept: (c: StepChoice, r: Row[]) => void): Promise<void> {
  const device = model.module.device;
  for (;;) {
    const active = rows.filter((r) => !r.finish);
    if (active.length === 0) return;
    const lengths = active.map((r) => r.promptIds.length + r.ids.length);
    const width = Math.max(...lengths);
    const ids = new BigInt64Array(active.length * width).fill(BigInt(padId));
    const mask = new BigInt64Array(active.length * width);
    active.forEach((row, b) => {
      [...row.promptIds, ...row.ids].forEach((id, t) => {
        ids[b * width + t] = BigInt(id);
        mask[b * width + t] = 1n;
      });
    });
    const choice = await scope(async () => {
      const logits = await model.forward(await onDevice(Tensor.from(ids, { shape: [active.length, width] }), device), await onDevice(Tensor.from(mask, { shape: [active.length, width] }), device));
      const V = logits.shape[2];
      const last = BigInt64Array.from(lengths, (length, b) => BigInt(b * width + length - 1));
      const rowsLast = await (await logits.view([active.length * width, V])).indexSelect(0, await onDevice(Tensor.from(last), device));
      return choose(rowsLast, active, options);
    });
    accept(choice, active);
  }
}
