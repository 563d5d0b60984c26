import { z } from 'zod';
import { ones, zeros } from '../tensor-functions';
import type { Architecture, ArchitectureBuild } from './architecture';
import { LinearLayers, type AdapterInfo } from './lora';
import { attendSource, ATTENTION_MASK_SOURCE, attentionKernel, ATTENTION_IMPLEMENTATIONS, SEGMENT_MASK_SOURCE, type AttentionImplementation } from './attention';
import { initialWeight, kvCacheSource, layerStepsSource, leafModule, parseArchitectureConfig, registerAll, sequentialModule, WRITE_CACHE_SOURCE } from './module-builder';
import { ScriptModule } from './script-module';

/** HF GPT2Config fields the architecture reads (HF names and defaults). */
export const gpt2ConfigSchema = z
  .object({
    vocab_size: z.number().int().positive().default(50257),
    n_positions: z.number().int().positive().default(1024),
    n_embd: z.number().int().positive().default(768),
    n_layer: z.number().int().positive().default(12),
    n_head: z.number().int().positive().default(12),
    n_inner: z.number().int().positive().nullable().default(null),
    layer_norm_epsilon: z.number().positive().default(1e-5),
    resid_pdrop: z.number().min(0).max(1).default(0.1),
    embd_pdrop: z.number().min(0).max(1).default(0.1),
    attn_pdrop: z.number().min(0).max(1).default(0.1),
    initializer_range: z.number().positive().default(0.02),
    activation_function: z.literal('gelu_new').default('gelu_new'),
    attn_implementation: z.enum(ATTENTION_IMPLEMENTATIONS).nullish(),
  })
  .passthrough()
  .superRefine((c, ctx) => {
    if (c.n_embd % c.n_head !== 0) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['n_head'], message: `n_embd ${c.n_embd} is not divisible by n_head ${c.n_head}` });
  });
export type Gpt2Config = z.output<typeof gpt2ConfigSchema>;

// TorchScript sources. Only aten builtins resolve inside define(); submodules are called with .forward.
const LAYER_NORM = `
def forward(self, x):
    return torch.layer_norm(x, [self.weight.size(0)], self.weight, self.bias, self.eps, True)
`;
// HF's Conv1D: weight [in, out], y = x·W + b as one addmm (bias added before the single rounding,
// which is what bf16 results depend on).
const CONV1D = `
shape = x.size()[:-1] + [self.weight.size(1)]
y = torch.addmm(self.bias, x.reshape([-1, x.size(-1)]), self.weight).view(shape)
`;
const attentionSource = (implementation: AttentionImplementation | null) => `
def project(self, x):
    B = x.size(0)
    T = x.size(1)
    E = x.size(2)
    H = self.n_head
    D = E // H
    qkv = self.c_attn.forward(x)
    q = qkv.narrow(2, 0, E).view([B, T, H, D]).transpose(1, 2)
    k = qkv.narrow(2, E, E).view([B, T, H, D]).transpose(1, 2)
    v = qkv.narrow(2, 2 * E, E).view([B, T, H, D]).transpose(1, 2)
    return q, k, v

def output(self, y):
    y = y.transpose(1, 2).reshape([y.size(0), y.size(2), y.size(1) * y.size(3)])
    return torch.dropout(self.c_proj.forward(y), self.resid_pdrop, self.training)

def forward(self, x, mask, segment_index, token_slot):
    q, k, v = self.project(x)
    if segment_index.numel() > 0:
        y = self.attend_segments(q, k, v, mask, segment_index, token_slot, self.attn_pdrop)
    else:
        y = self.attend(q, k, v, mask, self.attn_pdrop)
    return self.output(y)

def forward_cached(self, x, mask, k_cache, v_cache, start: int):
    q, k, v = self.project(x)
    keys, values = self.write_cache(k, v, k_cache, v_cache, start)
    return self.output(self.attend(q, keys, values, mask, self.attn_pdrop))
` + attendSource(attentionKernel(implementation)) + WRITE_CACHE_SOURCE;
const MLP = `
def forward(self, x):
    h = torch.gelu(self.c_fc.forward(x), approximate="tanh")
    return torch.dropout(self.c_proj.forward(h), self.resid_pdrop, self.training)
`;
const BLOCK = `
def forward(self, x, mask, segment_index, token_slot):
    x = x + self.attn.forward(self.ln_1.forward(x), mask, segment_index, token_slot)
    return x + self.mlp.forward(self.ln_2.forward(x))

def forward_cached(self, x, mask, k_cache, v_cache, start: int):
    x = x + self.attn.forward_cached(self.ln_1.forward(x), mask, k_cache, v_cache, start)
    return x + self.mlp.forward(self.ln_2.forward(x))
`;
const EMBEDDING = `
def forward(self, ids):
    return torch.embedding(self.weight, ids)
`;
const TRANSFORMER = `
def prepare(self, input_ids, attention_mask):
    T = input_ids.size(1)
    positions = torch.arange(T, device=input_ids.device).unsqueeze(0)
    x = self.wte.forward(input_ids) + self.wpe.forward(positions)
    x = torch.dropout(x, self.embd_pdrop, self.training)
    # No segments: attention over the rows as they are.
    none = input_ids.new_zeros([0])
    return x, self.attention_mask(attention_mask, 0, T, 0), none, none

def finish(self, x):
    return self.ln_f.forward(x)

def forward_cached(self, input_ids, position_ids, attention_mask, k_cache: List[Tensor], v_cache: List[Tensor], start: int):
    x = self.wte.forward(input_ids) + self.wpe.forward(position_ids)
    x = torch.dropout(x, self.embd_pdrop, self.training)
    mask = self.attention_mask(attention_mask, start, input_ids.size(1), 0)
    return self.finish(self.h.forward_cached(x, mask, k_cache, v_cache, start))

def prepare_packed(self, input_ids, position_ids, segment_index, segment_branches, segment_positions, token_slot):
    x = self.wte.forward(input_ids) + self.wpe.forward(position_ids)
    x = torch.dropout(x, self.embd_pdrop, self.training)
    return x, self.segment_mask(segment_branches, segment_positions, 0), segment_index, token_slot

def forward(self, input_ids, attention_mask):
    x, mask, segment_index, token_slot = self.prepare(input_ids, attention_mask)
    return self.finish(self.h.forward(x, mask, segment_index, token_slot))

def forward_packed(self, input_ids, position_ids, segment_index, segment_branches, segment_positions, token_slot):
    x, mask, segment_index, token_slot = self.prepare_packed(input_ids, position_ids, segment_index, segment_branches, segment_positions, token_slot)
    return self.finish(self.h.forward(x, mask, segment_index, token_slot))
` + ATTENTION_MASK_SOURCE + SEGMENT_MASK_SOURCE;
const LM_HEAD = `
def forward(self, x):
    return torch.matmul(x, self.weight.t())
`;
const lmHeadModelSource = (c: Gpt2Config) => `
def forward_hidden(self, input_ids, attention_mask):
    return self.transformer.forward(input_ids, attention_mask)

def forward(self, input_ids, attention_mask):
    return self.lm_head.forward(self.forward_hidden(input_ids, attention_mask))

def forward_hidden_packed(self, input_ids, position_ids, segment_index, segment_branches, segment_positions, token_slot):
    return self.transformer.forward_packed(input_ids, position_ids, segment_index, segment_branches, segment_positions, token_slot)
` + layerStepsSource('transformer') + kvCacheSource('transformer', { layers: c.n_layer, kvHeads: c.n_head, headDim: c.n_embd / c.n_head });

/**
 * GPT-2 (HF GPT2LMHeadModel layout and parameter names; lm_head tied to transformer.wte) assembled
 * from TorchScript source. forward(input_ids, attention_mask) → logits; forward_hidden → last hidden
 * states (for the fused-linear loss with lm_head.weight).
 */
async function createGpt2(input: unknown, options: ArchitectureBuild): Promise<{ module: ScriptModule; config: Gpt2Config; adapters: AdapterInfo | null }> {
  const c = parseArchitectureConfig(gpt2ConfigSchema, input, 'gpt2');
  const creation = { dtype: options.dtype, device: options.device };
  const weight = (shape: number[], s: number) => initialWeight(shape, s, options.init, creation);
  const E = c.n_embd, inner = c.n_inner ?? 4 * E, std = c.initializer_range;
  // HF's init: N(0, 0.02) weights, zero biases, unit LayerNorm; residual projections scaled by 1/√(2·n_layer).
  const projStd = std / Math.sqrt(2 * c.n_layer);
  const layerNorm = (name: string, dim: number) => leafModule(name, { weight: ones([dim], creation), bias: zeros([dim], creation) }, LAYER_NORM, { eps: c.layer_norm_epsilon });
  // Conv1D layers take adapters (PEFT: fan_in_fan_out, lora_A [r, in], lora_B [out, r]).
  const linears = new LinearLayers('gpt2', options.lora ?? null, creation, true);
  const conv1d = async (path: string, name: string, nIn: number, nOut: number, s = std) =>
    linears.create(path, name, { weight: await weight([nIn, nOut], s), bias: await zeros([nOut], creation) }, CONV1D, nIn, nOut);

  const blocks: ScriptModule[] = [];
  for (let i = 0; i < c.n_layer; i += 1) {
    const attn = ScriptModule.create(`GPT2Attention_${i}`);
    const at = `transformer.h.${i}`;
    await registerAll(attn, { c_attn: await conv1d(`${at}.attn.c_attn`, `GPT2CAttn_${i}`, E, 3 * E), c_proj: await conv1d(`${at}.attn.c_proj`, `GPT2AttnProj_${i}`, E, E, projStd) });
    await attn.registerAttribute('n_head', c.n_head, 'int');
    for (const [key, value] of Object.entries({ scale: 1 / Math.sqrt(E / c.n_head), attn_pdrop: c.attn_pdrop, resid_pdrop: c.resid_pdrop })) {
      await attn.registerAttribute(key, value, 'float');
    }
    await attn.define(attentionSource(c.attn_implementation ?? null));
    const mlp = ScriptModule.create(`GPT2MLP_${i}`);
    await registerAll(mlp, { c_fc: await conv1d(`${at}.mlp.c_fc`, `GPT2Fc_${i}`, E, inner), c_proj: await conv1d(`${at}.mlp.c_proj`, `GPT2MlpProj_${i}`, inner, E, projStd) });
    await mlp.registerAttribute('resid_pdrop', c.resid_pdrop, 'float');
    await mlp.define(MLP);
    const block = ScriptModule.create(`GPT2Block_${i}`);
    await registerAll(block, { ln_1: await layerNorm(`GPT2Ln1_${i}`, E), attn, ln_2: await layerNorm(`GPT2Ln2_${i}`, E), mlp });
    await block.define(BLOCK);
    blocks.push(block);
  }

  const tied = await weight([c.vocab_size, E], std);
  const transformer = ScriptModule.create('GPT2Model');
  await registerAll(transformer, {
    wte: await leafModule('GPT2Wte', { weight: tied }, EMBEDDING),
    wpe: await leafModule('GPT2Wpe', { weight: weight([c.n_positions, E], std) }, EMBEDDING),
    h: await sequentialModule('GPT2Blocks', blocks, 'mask, segment_index, token_slot', 'mask'),
    ln_f: await layerNorm('GPT2LnF', E),
  });
  await transformer.registerAttribute('embd_pdrop', c.embd_pdrop, 'float');
  await transformer.define(TRANSFORMER);

  const model = ScriptModule.create('GPT2LMHeadModel');
  await model.registerModule('transformer', transformer);
  // The output projection is the input embedding itself (HF ties them): one tensor, two names.
  await model.registerModule('lm_head', await leafModule('GPT2LMHead', { weight: tied }, LM_HEAD));
  await model.define(lmHeadModelSource(c));
  return { module: model, config: c, adapters: await linears.finish() };
}

export const gpt2: Architecture = {
  className: 'GPT2LMHeadModel',
  create: createGpt2,
  layers: (config) => ({ prefix: 'transformer.h', count: (config as { n_layer: number }).n_layer }),
  maxPositions: (config) => parseArchitectureConfig(gpt2ConfigSchema, config, 'gpt2').n_positions,
};
