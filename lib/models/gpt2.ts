import { z } from 'zod';
import { ConfigError } from '../errors';
import { noGrad } from '../grad-mode';
import { Tensor } from '../tensor';
import { ones, randn, zeros } from '../tensor-functions';
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
// HF's Conv1D: weight [in, out], y = x·W + b.
const CONV1D = `
def forward(self, x):
    return torch.matmul(x, self.weight) + self.bias
`;
const ATTENTION = `
def forward(self, x, mask):
    B = x.size(0)
    T = x.size(1)
    E = x.size(2)
    H = self.n_head
    D = E // H
    qkv = self.c_attn.forward(x)
    q = qkv.narrow(2, 0, E).view([B, T, H, D]).transpose(1, 2)
    k = qkv.narrow(2, E, E).view([B, T, H, D]).transpose(1, 2)
    v = qkv.narrow(2, 2 * E, E).view([B, T, H, D]).transpose(1, 2)
    att = torch.matmul(q, k.transpose(2, 3)) * self.scale
    att = att.masked_fill(mask, self.mask_value)
    att = torch.softmax(att, -1)
    att = torch.dropout(att, self.attn_pdrop, self.training)
    y = torch.matmul(att, v).transpose(1, 2).contiguous().view([B, T, E])
    return torch.dropout(self.c_proj.forward(y), self.resid_pdrop, self.training)
`;
const MLP = `
def forward(self, x):
    h = torch.gelu(self.c_fc.forward(x), approximate="tanh")
    return torch.dropout(self.c_proj.forward(h), self.resid_pdrop, self.training)
`;
const BLOCK = `
def forward(self, x, mask):
    x = x + self.attn.forward(self.ln_1.forward(x), mask)
    return x + self.mlp.forward(self.ln_2.forward(x))
`;
const EMBEDDING = `
def forward(self, ids):
    return torch.embedding(self.weight, ids)
`;
// mask: True where attention is NOT allowed (future keys, padding keys), [B,1,T,T].
const TRANSFORMER = `
def forward(self, input_ids, attention_mask):
    T = input_ids.size(1)
    positions = torch.arange(T, device=input_ids.device).unsqueeze(0)
    x = self.wte.forward(input_ids) + self.wpe.forward(positions)
    x = torch.dropout(x, self.embd_pdrop, self.training)
    future = torch.ones([T, T], device=input_ids.device).triu(1) > 0.5
    padding = attention_mask.unsqueeze(1).unsqueeze(2) < 0.5
    mask = torch.logical_or(future.unsqueeze(0).unsqueeze(0), padding)
    x = self.h.forward(x, mask)
    return self.ln_f.forward(x)
`;
const LM_HEAD = `
def forward(self, x):
    return torch.matmul(x, self.weight.t())
`;
const LM_HEAD_MODEL = `
def forward_hidden(self, input_ids, attention_mask):
    return self.transformer.forward(input_ids, attention_mask)

def forward(self, input_ids, attention_mask):
    return self.lm_head.forward(self.forward_hidden(input_ids, attention_mask))
`;

async function param(module: ScriptModule, name: string, value: Promise<Tensor> | Tensor): Promise<void> {
  const tensor = await value;
  await tensor.setRequiresGrad(true);
  await module.registerParameter(name, tensor);
}

async function leaf(name: string, params: Record<string, Promise<Tensor>>, source: string, attrs: Record<string, number> = {}): Promise<ScriptModule> {
  const m = ScriptModule.create(name);
  for (const [key, value] of Object.entries(params)) await param(m, key, value);
  for (const [key, value] of Object.entries(attrs)) await m.registerAttribute(key, value, 'float');
  await m.define(source);
  return m;
}

/**
 * GPT-2 (HF GPT2LMHeadModel layout and parameter names; lm_head tied to transformer.wte) assembled
 * from TorchScript source. forward(input_ids, attention_mask) → logits; forward_hidden → last hidden
 * states (for the fused-linear loss with lm_head.weight).
 */
export async function createGpt2(input: unknown): Promise<{ module: ScriptModule; config: Gpt2Config }> {
  const parsed = gpt2ConfigSchema.safeParse(input ?? {});
  if (!parsed.success) throw new ConfigError(`gpt2 config is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const c = parsed.data;
  const E = c.n_embd, inner = c.n_inner ?? 4 * E, std = c.initializer_range;
  // HF's init: N(0, 0.02) weights, zero biases, unit LayerNorm; residual projections scaled by 1/√(2·n_layer).
  const normal = (shape: number[], s = std) => noGrad(async () => (await randn(shape)).mul(s));
  const projStd = std / Math.sqrt(2 * c.n_layer);
  const layerNorm = (name: string, dim: number) => leaf(name, { weight: ones([dim]), bias: zeros([dim]) }, LAYER_NORM, { eps: c.layer_norm_epsilon });
  const conv1d = (name: string, nIn: number, nOut: number, s = std) => leaf(name, { weight: normal([nIn, nOut], s), bias: zeros([nOut]) }, CONV1D);

  const transformer = ScriptModule.create('GPT2Model');
  const tied = await normal([c.vocab_size, E]);
  await transformer.registerModule('wte', await leaf('GPT2Wte', { weight: Promise.resolve(tied) }, EMBEDDING));
  await transformer.registerModule('wpe', await leaf('GPT2Wpe', { weight: normal([c.n_positions, E]) }, EMBEDDING));
  const blocks = ScriptModule.create('GPT2Blocks');
  const calls: string[] = [];
  for (let i = 0; i < c.n_layer; i += 1) {
    const attn = ScriptModule.create(`GPT2Attention_${i}`);
    await attn.registerModule('c_attn', await conv1d(`GPT2CAttn_${i}`, E, 3 * E));
    await attn.registerModule('c_proj', await conv1d(`GPT2AttnProj_${i}`, E, E, projStd));
    await attn.registerAttribute('n_head', c.n_head, 'int');
    for (const [key, value] of Object.entries({ scale: 1 / Math.sqrt(E / c.n_head), mask_value: -1e9, attn_pdrop: c.attn_pdrop, resid_pdrop: c.resid_pdrop })) {
      await attn.registerAttribute(key, value, 'float');
    }
    await attn.define(ATTENTION);
    const mlp = ScriptModule.create(`GPT2MLP_${i}`);
    await mlp.registerModule('c_fc', await conv1d(`GPT2Fc_${i}`, E, inner));
    await mlp.registerModule('c_proj', await conv1d(`GPT2MlpProj_${i}`, inner, E, projStd));
    await mlp.registerAttribute('resid_pdrop', c.resid_pdrop, 'float');
    await mlp.define(MLP);
    const block = ScriptModule.create(`GPT2Block_${i}`);
    await block.registerModule('ln_1', await layerNorm(`GPT2Ln1_${i}`, E));
    await block.registerModule('attn', attn);
    await block.registerModule('ln_2', await layerNorm(`GPT2Ln2_${i}`, E));
    await block.registerModule('mlp', mlp);
    await block.define(BLOCK);
    await blocks.registerModule(String(i), block);
    calls.push(`    x = getattr(self, "${i}").forward(x, mask)`);
  }
  await blocks.define(`\ndef forward(self, x, mask):\n${calls.join('\n')}\n    return x\n`);
  await transformer.registerModule('h', blocks);
  await transformer.registerModule('ln_f', await layerNorm('GPT2LnF', E));
  await transformer.registerAttribute('embd_pdrop', c.embd_pdrop, 'float');
  await transformer.define(TRANSFORMER);

  const model = ScriptModule.create('GPT2LMHeadModel');
  await model.registerModule('transformer', transformer);
  // The output projection is the input embedding itself (HF ties them): one tensor, two names.
  await model.registerModule('lm_head', await leaf('GPT2LMHead', { weight: Promise.resolve(tied) }, LM_HEAD));
  await model.define(LM_HEAD_MODEL);
  return { module: model, config: c };
}
