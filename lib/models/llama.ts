import { z } from 'zod';
import { Tensor } from '../tensor';
import { ones } from '../tensor-functions';
import { ATTENTION_MASK_SOURCE, leafModule, normalInit, parseArchitectureConfig, registerAll, sequentialModule } from './module-builder';
import { ScriptModule } from './script-module';

/** HF LlamaConfig fields the architecture reads (HF names and defaults). */
export const llamaConfigSchema = z
  .object({
    vocab_size: z.number().int().positive().default(32000),
    hidden_size: z.number().int().positive().default(4096),
    intermediate_size: z.number().int().positive().default(11008),
    num_hidden_layers: z.number().int().positive().default(32),
    num_attention_heads: z.number().int().positive().default(32),
    num_key_value_heads: z.number().int().positive().nullable().default(null),
    head_dim: z.number().int().positive().nullable().default(null),
    max_position_embeddings: z.number().int().positive().default(2048),
    rms_norm_eps: z.number().positive().default(1e-6),
    rope_theta: z.number().positive().default(10000),
    attention_dropout: z.number().min(0).max(1).default(0),
    initializer_range: z.number().positive().default(0.02),
    tie_word_embeddings: z.boolean().default(false),
    hidden_act: z.literal('silu').default('silu'),
    attention_bias: z.literal(false).default(false),
    mlp_bias: z.literal(false).default(false),
  })
  .passthrough()
  .superRefine((c, ctx) => {
    const kv = c.num_key_value_heads ?? c.num_attention_heads;
    if (c.num_attention_heads % kv !== 0) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['num_key_value_heads'], message: `${c.num_attention_heads} attention heads are not a multiple of ${kv} key/value heads` });
    }
    if (c.head_dim === null && c.hidden_size % c.num_attention_heads !== 0) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['num_attention_heads'], message: `hidden_size ${c.hidden_size} is not divisible by num_attention_heads` });
    }
  });
export type LlamaConfig = z.output<typeof llamaConfigSchema>;

const LINEAR = `
def forward(self, x):
    return torch.matmul(x, self.weight.t())
`;
// HF's LlamaRMSNorm: normalise in fp32, scale in the input dtype.
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
// Rotary embeddings (HF default rope) applied to q and k; grouped-query attention repeats k/v heads.
const ATTENTION = `
def rotate_half(self, x):
    half = x.size(-1) // 2
    return torch.cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1)

def forward(self, x, mask, cos, sin):
    B = x.size(0)
    T = x.size(1)
    H = self.num_heads
    KV = self.num_kv_heads
    D = self.head_dim
    q = self.q_proj.forward(x).view([B, T, H, D]).transpose(1, 2)
    k = self.k_proj.forward(x).view([B, T, KV, D]).transpose(1, 2)
    v = self.v_proj.forward(x).view([B, T, KV, D]).transpose(1, 2)
    q = q * cos + self.rotate_half(q) * sin
    k = k * cos + self.rotate_half(k) * sin
    if KV != H:
        k = k.repeat_interleave(H // KV, 1)
        v = v.repeat_interleave(H // KV, 1)
    att = torch.matmul(q, k.transpose(2, 3)) * self.scale
    att = att.masked_fill(mask, self.mask_value)
    att = torch.softmax(att.float(), -1).to(q.dtype)
    att = torch.dropout(att, self.attention_dropout, self.training)
    y = torch.matmul(att, v).transpose(1, 2).contiguous().view([B, T, H * D])
    return self.o_proj.forward(y)
`;
const MLP = `
def forward(self, x):
    return self.down_proj.forward(torch.silu(self.gate_proj.forward(x)) * self.up_proj.forward(x))
`;
const LAYER = `
def forward(self, x, mask, cos, sin):
    x = x + self.self_attn.forward(self.input_layernorm.forward(x), mask, cos, sin)
    return x + self.mlp.forward(self.post_attention_layernorm.forward(x))
`;
const LAYERS_ARGS = 'mask, cos, sin';
const MODEL = `
def forward(self, input_ids, attention_mask):
    T = input_ids.size(1)
    x = self.embed_tokens.forward(input_ids)
    positions = torch.arange(T, device=input_ids.device).float()
    freqs = positions.unsqueeze(1) * self.inv_freq.unsqueeze(0)
    emb = torch.cat([freqs, freqs], -1)
    cos = emb.cos().to(x.dtype)
    sin = emb.sin().to(x.dtype)
    x = self.layers.forward(x, self.attention_mask(attention_mask, T), cos, sin)
    return self.norm.forward(x)
` + ATTENTION_MASK_SOURCE;
const CAUSAL_LM = `
def forward_hidden(self, input_ids, attention_mask):
    return self.model.forward(input_ids, attention_mask)

def forward(self, input_ids, attention_mask):
    return self.lm_head.forward(self.forward_hidden(input_ids, attention_mask))
`;

/**
 * Llama (HF LlamaForCausalLM layout and names: model.layers.N.self_attn.q_proj.weight, …): RMSNorm,
 * rotary embeddings, SwiGLU MLP, grouped-query attention, optional tied lm_head.
 */
export async function createLlama(input: unknown): Promise<{ module: ScriptModule; config: LlamaConfig }> {
  const c = parseArchitectureConfig(llamaConfigSchema, input, 'llama');
  const E = c.hidden_size, H = c.num_attention_heads, KV = c.num_key_value_heads ?? H, D = c.head_dim ?? E / H;
  const std = c.initializer_range;
  const linear = (name: string, nOut: number, nIn: number) => leafModule(name, { weight: normalInit([nOut, nIn], std) }, LINEAR);
  const rmsNorm = (name: string) => leafModule(name, { weight: ones([E]) }, RMS_NORM, { eps: c.rms_norm_eps });

  const layers: ScriptModule[] = [];
  for (let i = 0; i < c.num_hidden_layers; i += 1) {
    const attn = ScriptModule.create(`LlamaAttention_${i}`);
    await registerAll(attn, {
      q_proj: await linear(`LlamaQ_${i}`, H * D, E),
      k_proj: await linear(`LlamaK_${i}`, KV * D, E),
      v_proj: await linear(`LlamaV_${i}`, KV * D, E),
      o_proj: await linear(`LlamaO_${i}`, E, H * D),
    });
    for (const [key, value] of Object.entries({ num_heads: H, num_kv_heads: KV, head_dim: D })) await attn.registerAttribute(key, value, 'int');
    for (const [key, value] of Object.entries({ scale: 1 / Math.sqrt(D), mask_value: -1e9, attention_dropout: c.attention_dropout })) {
      await attn.registerAttribute(key, value, 'float');
    }
    await attn.define(ATTENTION);
    const mlp = ScriptModule.create(`LlamaMLP_${i}`);
    await registerAll(mlp, {
      gate_proj: await linear(`LlamaGate_${i}`, c.intermediate_size, E),
      up_proj: await linear(`LlamaUp_${i}`, c.intermediate_size, E),
      down_proj: await linear(`LlamaDown_${i}`, E, c.intermediate_size),
    });
    await mlp.define(MLP);
    const layer = ScriptModule.create(`LlamaDecoderLayer_${i}`);
    await registerAll(layer, { input_layernorm: await rmsNorm(`LlamaInNorm_${i}`), self_attn: attn, post_attention_layernorm: await rmsNorm(`LlamaPostNorm_${i}`), mlp });
    await layer.define(LAYER);
    layers.push(layer);
  }

  const embedding = await normalInit([c.vocab_size, E], std);
  const model = ScriptModule.create('LlamaModel');
  await registerAll(model, {
    embed_tokens: await leafModule('LlamaEmbedding', { weight: embedding }, EMBEDDING),
    layers: await sequentialModule('LlamaLayers', layers, LAYERS_ARGS),
    norm: await rmsNorm('LlamaNorm'),
  });
  // inv_freq is a buffer, as in HF (not a parameter, not in checkpoints).
  const invFreq = Tensor.from(Float32Array.from({ length: D / 2 }, (_, i) => 1 / c.rope_theta ** ((2 * i) / D)));
  await model.registerParameter('inv_freq', invFreq, { buffer: true });
  await model.define(MODEL);

  const causal = ScriptModule.create('LlamaForCausalLM');
  await causal.registerModule('model', model);
  const head = c.tie_word_embeddings ? embedding : await normalInit([c.vocab_size, E], std);
  await causal.registerModule('lm_head', await leafModule('LlamaLMHead', { weight: head }, LINEAR));
  await causal.define(CAUSAL_LM);
  return { module: causal, config: c };
}
