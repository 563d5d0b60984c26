import { ConfigError } from '../errors';

/**
 * Rotary position embeddings as transformers computes them (modeling_rope_utils.py): the rope types
 * `default`, `linear`, `dynamic` (NTK) and `llama3`, read from either config layout — transformers 5's
 * `rope_parameters: {rope_type, rope_theta, factor, …}` or 4.x's top-level `rope_theta` with
 * `rope_scaling: {rope_type | type, factor, …}`. Pairs are (j, j + d/2) (rotate_half); frequencies and
 * cos/sin are computed in fp32, cos/sin then cast to the activations' dtype, as HF does.
 */
export const ROPE_TYPES = ['default', 'linear', 'dynamic', 'llama3'] as const;
export type RopeType = (typeof ROPE_TYPES)[number];

export interface RopeSpec {
  type: RopeType;
  theta: number;
  /** linear, dynamic, llama3. */
  factor: number;
  /** llama3. */
  lowFreqFactor: number;
  highFreqFactor: number;
  /** llama3: the pretraining context; dynamic: max_position_embeddings, where rescaling starts. */
  originalMaxPositions: number;
}

type Json = Record<string, unknown>;

function numberField(source: Json, key: string, where: string): number {
  const value = source[key];
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new ConfigError(`${where}.${key}: expected a number, got ${JSON.stringify(value)}`);
  return value;
}

/** The rope settings of an HF config (either layout); `defaultTheta` is the architecture's rope_theta default. */
export function ropeSpecOf(config: Json, defaultTheta: number): RopeSpec {
  const parameters = (config.rope_parameters ?? null) as Json | null;
  const scaling = (parameters && (parameters.rope_type ?? parameters.type) !== undefined ? parameters : (config.rope_scaling ?? null)) as Json | null;
  const where = parameters ? 'rope_parameters' : 'rope_scaling';
  const type = String(scaling?.rope_type ?? scaling?.type ?? 'default');
  if (!(ROPE_TYPES as readonly string[]).includes(type)) {
    throw new ConfigError(`${where}.rope_type: '${type}' is not supported by the built-in architectures (supported: ${ROPE_TYPES.join(', ')}); export the model to TorchScript instead`);
  }
  const theta = (parameters?.rope_theta ?? config.rope_theta ?? defaultTheta) as number;
  if (typeof theta !== 'number' || !(theta > 0)) throw new ConfigError(`rope_theta: expected a positive number, got ${JSON.stringify(theta)}`);
  const maxPositions = Number(config.max_position_embeddings);
  const spec: RopeSpec = { type: type as RopeType, theta, factor: 1, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: maxPositions };
  if (type === 'default') return spec;
  spec.factor = numberField(scaling!, 'factor', where);
  if (type === 'llama3') {
    spec.lowFreqFactor = numberField(scaling!, 'low_freq_factor', where);
    spec.highFreqFactor = numberField(scaling!, 'high_freq_factor', where);
    spec.originalMaxPositions = numberField(scaling!, 'original_max_position_embeddings', where);
  }
  return spec;
}

/** inv_freq of length dim/2 (for `dynamic`: the value up to max_position_embeddings). */
export function inverseFrequencies(spec: RopeSpec, dim: number): Float32Array {
  const base = Array.from({ length: dim / 2 }, (_, i) => Math.fround(1 / spec.theta ** ((2 * i) / dim)));
  if (spec.type === 'linear') return Float32Array.from(base, (f) => f / spec.factor);
  if (spec.type !== 'llama3') return Float32Array.from(base);
  // Llama 3.1: long wavelengths divided by factor, short ones kept, a smooth blend in between.
  const { factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: context } = spec;
  return Float32Array.from(base, (f) => {
    const wavelength = (2 * Math.PI) / f;
    if (wavelength > context / low) return f / factor;
    if (wavelength < context / high) return f;
    const smooth = (context / wavelength - low) / (high - low);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

/**
 * TorchScript `rotary(T, x) -> (cos, sin)` [T, dim] in x's dtype, and `rotary_at(positions, x)` for
 * given position ids [R, T] (packed rows) -> [R, 1, T, dim]. The fp32 frequencies are constants of
 * the source, not a buffer: a dtype cast of the model cannot round them (HF keeps them in fp32 too).
 * `dynamic` recomputes the frequencies for a forward longer than max_position_embeddings, with HF's
 * formula at seq_len = T (HF caches the longest length seen so far; this is stateless, equal to HF
 * for every forward of a freshly loaded model).
 */
export function ropeSource(spec: RopeSpec, dim: number): string {
  const dynamic = spec.type !== 'dynamic' ? '' : `
    if T > ${spec.originalMaxPositions}:
        base = ${spec.theta} * ((${spec.factor} * T / ${spec.originalMaxPositions}) - (${spec.factor} - 1.0)) ** (${dim}.0 / (${dim}.0 - 2.0))
        inv_freq = 1.0 / torch.pow(base, torch.arange(0, ${dim}, 2, device=x.device).float() / ${dim}.0)`;
  return `
def inverse_frequencies(self, T: int, x):
    inv_freq = torch.tensor([${Array.from(inverseFrequencies(spec, dim), scriptFloat).join(', ')}], device=x.device)${dynamic}
    return inv_freq

def rotary(self, T: int, x):
    inv_freq = self.inverse_frequencies(T, x)
    positions = torch.arange(T, device=x.device).float()
    freqs = positions.unsqueeze(1) * inv_freq.unsqueeze(0)
    emb = torch.cat([freqs, freqs], -1)
    return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

def rotary_at(self, positions, x):
    # Packed rows: each token's own position; [R,1,T,dim] broadcasts over heads. Dynamic rope takes
    # the longest sequence (max position + 1) as the padded forward takes its width.
    inv_freq = self.inverse_frequencies(int(positions.max()) + 1, x)
    freqs = positions.float().unsqueeze(-1) * inv_freq
    emb = torch.cat([freqs, freqs], -1)
    return emb.cos().to(x.dtype).unsqueeze(1), emb.sin().to(x.dtype).unsqueeze(1)
`;
}

/** A float literal for TorchScript source (1 → "1.0": a list literal must not mix int and float). */
function scriptFloat(value: number): string {
  return Number.isInteger(value) ? value.toFixed(1) : String(value);
}

/** Positions the architecture can take: dynamic NTK rope extends past max_position_embeddings. */
export function ropePositionLimit(spec: RopeSpec, maxPositions: number): number {
  return spec.type === 'dynamic' ? Number.POSITIVE_INFINITY : maxPositions;
}
