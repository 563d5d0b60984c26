import type { z } from 'zod';
import type { DType } from '../native/binding';
import type { Tensor } from '../tensor';
import { ones, zeros } from '../tensor-functions';
import { attendSource, ATTENTION_MASK_SOURCE, attentionKernel, SEGMENT_MASK_SOURCE, type AttentionImplementation } from './attention';
import type { Architecture } from './architecture';
import { LinearLayers, type AdapterInfo, type LoraOptions } from './lora';
import { initialWeight, kvCacheSource, layerStepsSource, leafModule, parseArchitectureConfig, registerAll, sequentialModule, WRITE_CACHE_SOURCE } from './module-builder';
import { ropePositionLimit, ropeSource, type RopeSpec } from './rope';
import { ScriptModule } from './script-module';

/**
 * The Llama family's decoder (Llama, Mistral, Qwen2, Qwen3), in HF's layout and names
 * (model.embed_tokens, model.layers.N.self_attn.{q,k,v,o}_proj, q_norm/k_norm, mlp.{gate,up,down}_proj,
 * input_layernorm, post_attention_layernorm, model.norm, lm_head): pre-norm RMSNorm blocks, rotary
 * embeddings, grouped-query attention, SwiGLU. The architectures differ only in this spec.
 */
export interface DecoderSpec {
  /** Class-name prefix of the TorchScript modules (e.g. 'Qwen3'). */
  family: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  rmsNormEps: number;
  rope: RopeSpec;
  /** Biases on q, k, v (Qwen2: always; Llama/Qwen3: attention_bias). */
  qkvBias: boolean;
  /** Bias on o_proj (Llama/Qwen3: attention_bias; Qwen2: never). */
  outputBias: boolean;
  mlpBias: boolean;
  /** Qwen3: per-head RMSNorm of q and k over head_dim, before rope. */
  qkNorm: boolean;
  /** Per layer: the sliding window, or 0 for full attention. */
  windows: number[];
  attentionDropout: number;
  tieWordEmbeddings: boolean;
  initializerRange: number;
  attnImplementation: AttentionImplementation | null;
  /** Build in this dtype on this device; `init: false` leaves weights uninitialised (they are about to be loaded). */
  dtype?: DType;
  /** LoRA adapters on the targeted linear layers (always initialised). */
  lora?: LoraOptions | null;
  device?: string;
  init: boolean;
}

const LM_HEAD = `
def forward(self, x):
    return torch.matmul(x, self.weight.t())
`;
// The linear layers' maths (y from x; LinearLayers adds the adapters). With a bias, torch.linear adds
// it inside the matmul (addmm), as HF does; matmul + add rounds twice, which moved bf16 logits by 2%
// of their range.
const LINEAR = 'y = torch.matmul(x, self.weight.t())';
const LINEAR_BIAS = 'y = torch.linear(x, self.weight, self.bias)';
// HF's RMSNorm: variance in fp32, normalise, cast back to the input dtype, then scale.
const RMS_NORM = `
def forward(self, x):
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
    return self.weight * h.to(x.dtype)
`;
const EMBEDDING = `
def forward(self, ids):
    return torch.embedding(self.weight, ids)
`;
const MLP = `
def forward(self, x):
    return self.down_proj.forward(torch.silu(self.gate_proj.forward(x)) * self.up_proj.forward(x))
`;

function attentionSource(spec: DecoderSpec): string {
  const norm = (name: string) => (spec.qkNorm ? `self.${name}_norm.forward(${name}_heads)` : `${name}_heads`);
  return `
def rotate_half(self, x):
    half = x.size(-1) // 2
    return torch.cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1)

def project(self, x, cos, sin):
    B = x.size(0)
    T = x.size(1)
    q_heads = self.q_proj.forward(x).view([B, T, ${spec.heads}, ${spec.headDim}])
    k_heads = self.k_proj.forward(x).view([B, T, ${spec.kvHeads}, ${spec.headDim}])
    q = ${norm('q')}.transpose(1, 2)
    k = ${norm('k')}.transpose(1, 2)
    v = self.v_proj.forward(x).view([B, T, ${spec.kvHeads}, ${spec.headDim}]).transpose(1, 2)
    q = q * cos + self.rotate_half(q) * sin
    k = k * cos + self.rotate_half(k) * sin
    return q, k, v

def output(self, y):
    return self.o_proj.forward(y.transpose(1, 2).reshape([y.size(0), y.size(2), ${spec.heads * spec.headDim}]))

def forward(self, x, mask, cos, sin, segment_index, token_slot):
    q, k, v = self.project(x, cos, sin)
    if segment_index.numel() > 0:
        y = self.attend_segments(q, k, v, mask, segment_index, token_slot, self.attention_dropout)
    else:
        y = self.attend(q, k, v, mask, self.attention_dropout)
    return self.output(y)

def forward_cached(self, x, mask, cos, sin, k_cache, v_cache, start: int):
    q, k, v = self.project(x, cos, sin)
    keys, values = self.write_cache(k, v, k_cache, v_cache, start)
    return self.output(self.attend(q, keys, values, mask, self.attention_dropout))
` + attendSource(attentionKernel(spec.attnImplementation)) + WRITE_CACHE_SOURCE;
}

function layerSource(window: number): string {
  const mask = window > 0 ? 'window_mask' : 'full_mask';
  return `
def forward(self, x, full_mask, window_mask, cos, sin, segment_index, token_slot):
    x = x + self.self_attn.forward(self.input_layernorm.forward(x), ${mask}, cos, sin, segment_index, token_slot)
    return x + self.mlp.forward(self.post_attention_layernorm.forward(x))

def forward_cached(self, x, full_mask, window_mask, cos, sin, k_cache, v_cache, start: int):
    x = x + self.self_attn.forward_cached(self.input_layernorm.forward(x), ${mask}, cos, sin, k_cache, v_cache, start)
    return x + self.mlp.forward(self.post_attention_layernorm.forward(x))
`;
}

function modelSource(spec: DecoderSpec): string {
  const windows = [...new Set(spec.windows.filter((w) => w > 0))];
  // One window size at most across layers (HF configs have one sliding_window); masks built once per forward.
  const windowMask = windows.length ? `self.attention_mask(attention_mask, 0, T, ${windows[0]})` : 'full_mask';
  const windowCached = windows.length ? `self.attention_mask(attention_mask, start, T, ${windows[0]})` : 'full_mask';
  const windowPacked = windows.length ? `self.segment_mask(segment_branches, segment_positions, ${windows[0]})` : 'full_mask';
  // prepare / finish split the forward around the layers for activation checkpointing (layer by layer).
  return `
def prepare(self, input_ids, attention_mask):
    T = input_ids.size(1)
    x = self.embed_tokens.forward(input_ids)
    cos, sin = self.rotary(T, x)
    full_mask = self.attention_mask(attention_mask, 0, T, 0)
    window_mask = ${windowMask}
    # No segments: attention over the rows as they are.
    none = input_ids.new_zeros([0])
    return x, full_mask, window_mask, cos, sin, none, none

def prepare_packed(self, input_ids, position_ids, segment_index, segment_branches, segment_positions, token_slot):
    x = self.embed_tokens.forward(input_ids)
    cos, sin = self.rotary_at(position_ids, x)
    full_mask = self.segment_mask(segment_branches, segment_positions, 0)
    window_mask = ${windowPacked}
    return x, full_mask, window_mask, cos, sin, segment_index, token_slot

def finish(self, x):
    return self.norm.forward(x)

def forward_cached(self, input_ids, position_ids, attention_mask, k_cache: List[Tensor], v_cache: List[Tensor], start: int):
    T = input_ids.size(1)
    x = self.embed_tokens.forward(input_ids)
    cos, sin = self.rotary_at(position_ids, x)
    full_mask = self.attention_mask(attention_mask, start, T, 0)
    window_mask = ${windowCached}
    return self.finish(self.layers.forward_cached(x, full_mask, window_mask, cos, sin, k_cache, v_cache, start))

def forward(self, input_ids, attention_mask):
    x, full_mask, window_mask, cos, sin, segment_index, token_slot = self.prepare(input_ids, attention_mask)
    return self.finish(self.layers.forward(x, full_mask, window_mask, cos, sin, segment_index, token_slot))

def forward_packed(self, input_ids, position_ids, segment_index, segment_branches, segment_positions, token_slot):
    x, full_mask, window_mask, cos, sin, segment_index, token_slot = self.prepare_packed(input_ids, position_ids, segment_index, segment_branches, segment_positions, token_slot)
    return self.finish(self.layers.forward(x, full_mask, window_mask, cos, sin, segment_index, token_slot))
` + ATTENTION_MASK_SOURCE + SEGMENT_MASK_SOURCE + ropeSource(spec.rope, spec.headDim);
}

const causalLmSource = (spec: DecoderSpec) => `
def forward_hidden(self, input_ids, attention_mask):
    return self.model.forward(input_ids, attention_mask)

def forward(self, input_ids, attention_mask):
    return self.lm_head.forward(self.forward_hidden(input_ids, attention_mask))

def forward_hidden_packed(self, input_ids, position_ids, segment_index, segment_branches, segment_positions, token_slot):
    return self.model.forward_packed(input_ids, position_ids, segment_index, segment_branches, segment_positions, token_slot)
` + layerStepsSource('model') + kvCacheSource('model', { layers: spec.layers, kvHeads: spec.kvHeads, headDim: spec.headDim });

/**
 * Builds `<family>ForCausalLM` from the spec, with HF's initialiser (N(0, initializer_range), unit
 * norms, zero biases), and the adapters the spec's LoRA options ask for.
 */
export async function createDecoder(spec: DecoderSpec, architecture: string): Promise<{ module: ScriptModule; adapters: AdapterInfo | null }> {
  const E = spec.hiddenSize, H = spec.heads, KV = spec.kvHeads, D = spec.headDim, F = spec.family;
  const creation = { dtype: spec.dtype, device: spec.device };
  const weight = (shape: number[]) => initialWeight(shape, spec.initializerRange, spec.init, creation);
  const linears = new LinearLayers(architecture, spec.lora ?? null, creation);
  const linear = async (path: string, name: string, nOut: number, nIn: number, bias: boolean) =>
    linears.create(path, name, bias ? { weight: await weight([nOut, nIn]), bias: await zeros([nOut], creation) } : { weight: await weight([nOut, nIn]) }, bias ? LINEAR_BIAS : LINEAR, nIn, nOut);
  const rmsNorm = (name: string, dim: number) => leafModule(name, { weight: ones([dim], creation) }, RMS_NORM, { eps: spec.rmsNormEps });

  const layers: ScriptModule[] = [];
  for (let i = 0; i < spec.layers; i += 1) {
    const attn = ScriptModule.create(`${F}Attention_${i}`);
    const at = `model.layers.${i}`;
    await registerAll(attn, {
      q_proj: await linear(`${at}.self_attn.q_proj`, `${F}Q_${i}`, H * D, E, spec.qkvBias),
      k_proj: await linear(`${at}.self_attn.k_proj`, `${F}K_${i}`, KV * D, E, spec.qkvBias),
      v_proj: await linear(`${at}.self_attn.v_proj`, `${F}V_${i}`, KV * D, E, spec.qkvBias),
      o_proj: await linear(`${at}.self_attn.o_proj`, `${F}O_${i}`, E, H * D, spec.outputBias),
      ...(spec.qkNorm ? { q_norm: await rmsNorm(`${F}QNorm_${i}`, D), k_norm: await rmsNorm(`${F}KNorm_${i}`, D) } : {}),
    });
    await attn.registerAttribute('scale', 1 / Math.sqrt(D), 'float');
    await attn.registerAttribute('attention_dropout', spec.attentionDropout, 'float');
    await attn.define(attentionSource(spec));
    const mlp = ScriptModule.create(`${F}MLP_${i}`);
    await registerAll(mlp, {
      gate_proj: await linear(`${at}.mlp.gate_proj`, `${F}Gate_${i}`, spec.intermediateSize, E, spec.mlpBias),
      up_proj: await linear(`${at}.mlp.up_proj`, `${F}Up_${i}`, spec.intermediateSize, E, spec.mlpBias),
      down_proj: await linear(`${at}.mlp.down_proj`, `${F}Down_${i}`, E, spec.intermediateSize, spec.mlpBias),
    });
    await mlp.define(MLP);
    const layer = ScriptModule.create(`${F}DecoderLayer_${i}`);
    await registerAll(layer, { input_layernorm: await rmsNorm(`${F}InNorm_${i}`, E), self_attn: attn, post_attention_layernorm: await rmsNorm(`${F}PostNorm_${i}`, E), mlp });
    await layer.define(layerSource(spec.windows[i]));
    layers.push(layer);
  }

  const embedding = await weight([spec.vocabSize, E]);
  const model = ScriptModule.create(`${F}Model`);
  await registerAll(model, {
    embed_tokens: await leafModule(`${F}Embedding`, { weight: embedding }, EMBEDDING),
    layers: await sequentialModule(`${F}Layers`, layers, 'full_mask, window_mask, cos, sin, segment_index, token_slot', 'full_mask, window_mask, cos, sin'),
    norm: await rmsNorm(`${F}Norm`, E),
  });
  await model.define(modelSource(spec));

  const causal = ScriptModule.create(`${F}ForCausalLM`);
  await causal.registerModule('model', model);
  const head: Tensor = spec.tieWordEmbeddings ? embedding : await weight([spec.vocabSize, E]);
  await causal.registerModule('lm_head', await leafModule(`${F}LMHead`, { weight: head }, LM_HEAD));
  await causal.define(causalLmSource(spec));
  return { module: causal, adapters: await linears.finish() };
}

/** What an architecture's config maps to; the build adds its family, dtype, device and init. */
export type ArchitectureSpec = Omit<DecoderSpec, 'family' | 'init' | 'dtype' | 'device' | 'lora'>;

/** A Llama-family Architecture from its config schema and the mapping to a DecoderSpec; `family` names its classes (Qwen3 → Qwen3ForCausalLM). */
export function decoderArchitecture<S extends z.ZodTypeAny>(name: string, schema: S, toSpec: (config: z.output<S>) => ArchitectureSpec, family: string): Architecture {
  return {
    className: `${family}ForCausalLM`,
    async create(input, options) {
      const config = parseArchitectureConfig(schema, input, name);
      const { module, adapters } = await createDecoder({ ...toSpec(config), family, ...options }, name);
      return { module, config, adapters };
    },
    layers(config) {
      return { prefix: 'model.layers', count: (config as { num_hidden_layers: number }).num_hidden_layers };
    },
    maxPositions(config) {
      const spec = toSpec(parseArchitectureConfig(schema, config, name));
      return ropePositionLimit(spec.rope, (config as { max_position_embeddings: number }).max_position_embeddings);
    },
  };
}
