import { ConfigError } from '../errors';
import { noGrad } from '../grad-mode';
import type { DType } from '../native/binding';
import type { Tensor } from '../tensor';
import { empty, rand, zeros, type CreationOptions } from '../tensor-functions';
import { ScriptModule } from './script-module';

/**
 * LoRA as PEFT defines it (peft/tuners/lora): a targeted linear layer computes
 * y = base(x) + lora_B(lora_A(dropout(x))) · scaling, scaling = α / r (α / √r with rsLoRA),
 * lora_A [r, in] Kaiming-uniform (a = √5, so U(−1/√in, 1/√in)), lora_B [out, r] zero: at the start
 * the adapted model is the base model exactly. The base weights stay frozen.
 */
export interface LoraOptions {
  r: number;
  alpha: number;
  dropout: number;
  /**
   * PEFT's target_modules: a list of module names (a module matches when its path equals one or ends
   * with "." + one), a regular expression matched against the whole path, 'all-linear', or null for
   * PEFT's default for the architecture.
   */
  targetModules: string[] | string | null;
  useRslora: boolean;
}

/** PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING for the built-in architectures. */
export const DEFAULT_LORA_TARGETS: Record<string, string[]> = {
  gpt2: ['c_attn'],
  llama: ['q_proj', 'v_proj'],
  mistral: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
  qwen3: ['q_proj', 'v_proj'],
};

/** The adapters a model was built with: the options and the paths of the adapted layers. */
export interface AdapterInfo {
  options: LoraOptions;
  /** Adapted module paths in build order, e.g. 'model.layers.0.self_attn.q_proj'. */
  modules: string[];
  /** The dtype of lora_A / lora_B (float32 over a bf16/fp16 base, as PEFT's autocast_adapter_dtype). */
  dtype: DType;
  /** GPT-2's Conv1D stores weights [in, out] (PEFT's fan_in_fan_out). */
  fanInFanOut: boolean;
}

export const loraScaling = (o: LoraOptions) => o.alpha / (o.useRslora ? Math.sqrt(o.r) : o.r);

/** Adapters train in fp32 over a half-precision base (PEFT upcasts them too); fp64 stays fp64. */
export const adapterDtype = (base: DType | undefined): DType => (base === 'float64' ? 'float64' : 'float32');

/** The names of an adapted module's two parameters. */
export const adapterParameterNames = (path: string) => [`${path}.lora_A.weight`, `${path}.lora_B.weight`];
export const isAdapterParameter = (name: string) => /\.lora_[AB]\.weight$/.test(name);

// The adapters compute in the layer's dtype, their fp32 weights cast per call (what autocast does
// under TRL's bf16: true); gradients reach the fp32 weights through the cast. Computing them in fp32
// instead (PEFT without autocast) cost 40% of a bf16 LoRA step on all linear layers here.
const ADAPTER_LINEAR = `
def forward(self, x):
    return torch.matmul(x, self.weight.to(x.dtype).t())
`;

/** PEFT's module selection (check_target_module_exists): names match a path's last parts, a string is a full-path regex. */
export function isLoraTarget(options: LoraOptions, architecture: string, path: string): boolean {
  const t = options.targetModules ?? DEFAULT_LORA_TARGETS[architecture] ?? [];
  if (t === 'all-linear') return true; // callers offer linear layers only, never the output layer
  if (typeof t === 'string') return new RegExp(`^(?:${t})$`).test(path);
  return t.some((name) => path === name || path.endsWith(`.${name}`));
}

/**
 * A TorchScript method `method(self, x)` of a linear layer: `body` computes `y` from `x` (the
 * layer's own maths, or a call of its traced forward); with `adapted`, the low-rank branch is added
 * behind the layer's `lora_enabled` flag, so one model serves as policy (adapters on) and reference
 * (adapters off).
 */
export function linearSource(body: string, adapted: boolean, method = 'forward'): string {
  const lines = body.trim().split('\n').map((line) => `    ${line.trim()}`);
  if (adapted) {
    lines.push(
      '    if self.lora_enabled:',
      '        h = torch.dropout(x, self.lora_dropout, self.training)',
      '        y = y + self.lora_B.forward(self.lora_A.forward(h) * self.lora_scaling)',
    );
  }
  return `\ndef ${method}(self, x):\n${lines.join('\n')}\n    return y\n`;
}

/**
 * Gives layers their adapters (lora_A / lora_B submodules and the flag, scaling and dropout
 * attributes) and, once every layer has them, draws the lora_A weights in order.
 */
export class AdapterBuilder {
  readonly modules: string[] = [];
  private readonly unfilled: Tensor[] = [];

  constructor(
    readonly options: LoraOptions,
    private readonly creation: CreationOptions,
    private readonly fanInFanOut: boolean,
  ) {}

  async add(m: ScriptModule, path: string, className: string, nIn: number, nOut: number): Promise<void> {
    const o = this.options;
    const creation = { dtype: adapterDtype(this.creation.dtype), device: this.creation.device };
    // Filled by finish(), after every base weight is drawn: the base does not depend on the adapters.
    const a = await empty([o.r, nIn], creation);
    this.unfilled.push(a);
    const b = await zeros([nOut, o.r], creation);
    for (const [name, weight] of [['lora_A', a], ['lora_B', b]] as const) {
      const child = ScriptModule.create(`${className}_${name}`);
      await weight.setRequiresGrad(true);
      await child.registerParameter('weight', weight);
      await child.define(ADAPTER_LINEAR);
      await m.registerModule(name, child);
    }
    await m.registerAttribute('lora_enabled', true);
    await m.registerAttribute('lora_scaling', loraScaling(o), 'float');
    await m.registerAttribute('lora_dropout', o.dropout, 'float');
    this.modules.push(path);
  }

  /** Draws lora_A (Kaiming-uniform, a = √5: U(−1/√in, 1/√in)) for every adapter, in the order they were added. */
  async finish(): Promise<AdapterInfo> {
    await noGrad(async () => {
      for (const a of this.unfilled.splice(0)) {
        // Drawn on the CPU in fp32 (as initialWeight): the same seed gives the same adapters everywhere.
        const bound = 1 / Math.sqrt(a.shape[1]);
        const u = await rand(a.shape);
        const drawn = await (await u.mul(2 * bound)).sub(bound);
        u.dispose();
        await a.copy_(drawn);
        drawn.dispose();
      }
    });
    return { options: this.options, modules: this.modules, dtype: adapterDtype(this.creation.dtype), fanInFanOut: this.fanInFanOut };
  }
}

/** The distinct layer names of module paths, in first-seen order ('model.layers.0.self_attn.q_proj' → 'q_proj'). */
export const layerNames = (paths: string[]) => [...new Set(paths.map((p) => p.split('.').pop()!))];

/** The target list as an error message shows it, with the layers there are to choose from. */
export function noTargetMessage(options: LoraOptions, architecture: string, layerPaths: string[]): string {
  const names = layerNames(layerPaths);
  return `lora_target_modules ${JSON.stringify(options.targetModules)} matches no linear layer of ${architecture} (its linear layers: ${names.join(', ')}; or 'all-linear')`;
}

/**
 * Builds the linear layers of a built-in architecture (`body` computes `y` from `x` in TorchScript),
 * adding adapters to those the LoRA options target.
 */
export class LinearLayers {
  private readonly linears: string[] = [];
  private readonly adapters: AdapterBuilder | null;

  constructor(
    private readonly architecture: string,
    private readonly options: LoraOptions | null,
    private readonly creation: CreationOptions,
    fanInFanOut = false,
  ) {
    this.adapters = options ? new AdapterBuilder(options, creation, fanInFanOut) : null;
  }

  async create(path: string, className: string, params: Record<string, Tensor>, body: string, nIn: number, nOut: number): Promise<ScriptModule> {
    this.linears.push(path);
    const m = ScriptModule.create(className);
    for (const [key, tensor] of Object.entries(params)) {
      await tensor.setRequiresGrad(true);
      await m.registerParameter(key, tensor);
    }
    const adapted = this.adapters !== null && isLoraTarget(this.options!, this.architecture, path);
    if (adapted) await this.adapters!.add(m, path, className, nIn, nOut);
    await m.define(linearSource(body, adapted));
    return m;
  }

  /** The adapters, their lora_A drawn once the whole model is built; targets that matched nothing are an error (as in PEFT). */
  async finish(): Promise<AdapterInfo | null> {
    if (!this.adapters) return null;
    if (this.adapters.modules.length === 0) throw new ConfigError(noTargetMessage(this.options!, this.architecture, this.linears));
    return this.adapters.finish();
  }
}
