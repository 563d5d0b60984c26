import type { z } from 'zod';
import { parseOnce } from '../config/parse';
import { noGrad } from '../grad-mode';
import type { Tensor } from '../tensor';
import { empty, randn, type CreationOptions } from '../tensor-functions';
import { ScriptModule } from './script-module';

/** Helpers shared by the built-in architectures, which assemble TorchScript modules from source. */

/** A module holding parameters (made trainable), float attributes and TorchScript methods. */
export async function leafModule(
  name: string,
  params: Record<string, Tensor | Promise<Tensor>>,
  source: string,
  attrs: Record<string, number> = {},
): Promise<ScriptModule> {
  const m = ScriptModule.create(name);
  for (const [key, value] of Object.entries(params)) {
    const tensor = await value;
    await tensor.setRequiresGrad(true);
    await m.registerParameter(key, tensor);
  }
  for (const [key, value] of Object.entries(attrs)) await m.registerAttribute(key, value, 'float');
  await m.define(source);
  return m;
}

/**
 * A container whose children are named "0", "1", … (HF's ModuleList layout), run in order:
 * `forward(x, <args>)`, and `forward_cached(x, <cachedArgs>, k_cache, v_cache, start)` where child i
 * reads and extends its own slot of the per-layer KV cache lists (see kvCacheSource).
 */
export async function sequentialModule(name: string, children: ScriptModule[], args: string, cachedArgs: string): Promise<ScriptModule> {
  const container = ScriptModule.create(name);
  const calls: string[] = [];
  const cachedCalls: string[] = [];
  for (const [i, child] of children.entries()) {
    await container.registerModule(String(i), child);
    // TorchScript cannot spell self.0; getattr with a literal name resolves at compile time.
    calls.push(`    x = getattr(self, "${i}").forward(x, ${args})`);
    cachedCalls.push(`    x = getattr(self, "${i}").forward_cached(x, ${cachedArgs}, k_cache[${i}], v_cache[${i}], start)`);
  }
  await container.define(`
def forward(self, x, ${args}):
${calls.join('\n')}
    return x

def forward_cached(self, x, ${cachedArgs}, k_cache: List[Tensor], v_cache: List[Tensor], start: int):
${cachedCalls.join('\n')}
    return x
`);
  return container;
}

/** N(0, std) weights, as HF's _init_weights draws them (scaled in place: no unowned temporary the size of the weight). */
export function normalInit(shape: number[], std: number): Promise<Tensor> {
  return noGrad(async () => (await randn(shape)).mul_(std));
}

/**
 * A weight drawn like normalInit (then moved to the target dtype and device), or, with init false,
 * uninitialised memory there:
 * a model about to be loaded from a checkpoint needs no random draw and no fp32 detour.
 */
export async function initialWeight(shape: number[], std: number, init: boolean, target: CreationOptions = {}): Promise<Tensor> {
  if (!init) return empty(shape, target);
  // Drawn on the CPU whatever the device: the same seed gives the same model everywhere.
  const drawn = await normalInit(shape, std);
  if ((!target.dtype || target.dtype === drawn.dtype) && (!target.device || target.device === 'cpu')) return drawn;
  try {
    return await noGrad(() => drawn.to({ dtype: target.dtype, device: target.device }));
  } finally {
    drawn.dispose();
  }
}

/**
 * The causal LM's forward in three steps around its layers, for activation checkpointing layer by
 * layer (CausalLM runs the layers in between): `body` is the submodule with prepare() and finish().
 */
export function layerStepsSource(body: string): string {
  return `
def prepare_layers(self, input_ids, attention_mask):
    return self.${body}.prepare(input_ids, attention_mask)

def prepare_packed_layers(self, input_ids, position_ids, segment_index, segment_branches, segment_positions, token_slot):
    return self.${body}.prepare_packed(input_ids, position_ids, segment_index, segment_branches, segment_positions, token_slot)

def finish_layers(self, x):
    return self.${body}.finish(x)

def logits_from_hidden(self, hidden):
    return self.lm_head.forward(hidden)
`;
}

/** The shape of a model's KV cache: one [B, kvHeads, L, headDim] key and value tensor per layer. */
export interface KvCacheShape {
  layers: number;
  kvHeads: number;
  headDim: number;
}

/**
 * The causal LM's generation methods, for a `body` submodule with forward_cached(input_ids,
 * position_ids, attention_mask, k_cache, v_cache, start) → hidden states:
 * - `new_cache(B, L)`: zeroed key and value lists, one [B, kvHeads, L, headDim] tensor per layer in
 *   the model's own dtype and device (slots are written in place as tokens arrive, never reallocated);
 * - `next_token_logits(...)`: the new tokens (slots start … start+T−1) through the model, their keys
 *   and values written into the cache, and the logits [B, V] of the last one.
 */
export function kvCacheSource(body: string, shape: KvCacheShape): string {
  return `
def new_cache(self, B: int, L: int) -> Tuple[List[Tensor], List[Tensor]]:
    like = self.lm_head.weight
    k_cache: List[Tensor] = []
    v_cache: List[Tensor] = []
    for i in range(${shape.layers}):
        k_cache.append(torch.zeros([B, ${shape.kvHeads}, L, ${shape.headDim}], dtype=like.dtype, device=like.device))
        v_cache.append(torch.zeros([B, ${shape.kvHeads}, L, ${shape.headDim}], dtype=like.dtype, device=like.device))
    return k_cache, v_cache

def next_token_logits(self, input_ids, position_ids, attention_mask, k_cache: List[Tensor], v_cache: List[Tensor], start: int):
    hidden = self.${body}.forward_cached(input_ids, position_ids, attention_mask, k_cache, v_cache, start)
    return self.lm_head.forward(hidden.select(1, hidden.size(1) - 1))
`;
}

/**
 * TorchScript `write_cache(k, v, k_cache, v_cache, start) -> (keys, values)` for an attention module:
 * this step's keys and values [B, kv, T, D] stored in slots start … start+T−1, and every slot so far
 * returned for attention.
 */
export const WRITE_CACHE_SOURCE = `
def write_cache(self, k, v, k_cache, v_cache, start: int):
    T = k.size(2)
    k_cache.narrow(2, start, T).copy_(k)
    v_cache.narrow(2, start, T).copy_(v)
    return k_cache.narrow(2, 0, start + T), v_cache.narrow(2, 0, start + T)
`;

/** Registers several submodules in order. */
export async function registerAll(parent: ScriptModule, children: Record<string, ScriptModule>): Promise<void> {
  for (const [key, child] of Object.entries(children)) await parent.registerModule(key, child);
}

export function parseArchitectureConfig<S extends z.ZodTypeAny>(schema: S, input: unknown, architecture: string): z.output<S> {
  return parseOnce(schema, input, `${architecture} config`);
}
