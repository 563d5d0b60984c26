import { ConfigError } from '../errors';
import { scope } from '../scope';
import { AdapterBuilder, isLoraTarget, linearSource, noTargetMessage, type AdapterInfo, type LoraOptions } from './lora';
import type { ScriptModule } from './script-module';

/**
 * What a traced layer's forward does with its weight: nn.Linear's aten::linear(x, weight, …)
 * ([out, in]), or a Conv1D's x·weight (aten::addmm(bias, x, weight) as HF's, or aten::matmul(x,
 * weight); [in, out]); null for anything else (an embedding, a norm).
 */
function layerKind(graph: string): 'linear' | 'conv1d' | null {
  const weight = '%weight[.\\d]*\\b';
  if (new RegExp(`aten::linear\\([^,)]+, ${weight}`).test(graph)) return 'linear';
  if (new RegExp(`aten::(addmm\\([^,)]+, [^,)]+, ${weight}|matmul\\([^,)]+, ${weight})`).test(graph)) return 'conv1d';
  return null;
}

/**
 * LoRA on a traced TorchScript export. torch.jit.trace keeps the module tree: each nn.Linear (or
 * GPT-2 Conv1D) is a submodule with its own traced forward (see layerKind) that its parent calls as
 * self.<name>.forward(x). So each targeted layer gets the adapters and a `lora_forward` method (its traced forward plus the low-rank branch, in TorchScript
 * source), and the parent's call is redirected to it. Sound only when each layer and its parent have
 * a TorchScript class of their own (an added attribute belongs to the class) and the parent calls the
 * layer (a trace that inlined it has no call to redirect): both are checked. Must run before the
 * module's first forward (execution plans are compiled once from the graphs).
 */
export async function addTracedAdapters(root: ScriptModule, options: LoraOptions, architecture: string, where: string): Promise<AdapterInfo> {
  return scope(async () => {
    const weights = new Map((await root.namedParameters()).map((p) => [p.name, p.tensor]));
    const layers: { path: string; kind: 'linear' | 'conv1d'; type: string; child: ScriptModule }[] = [];
    for (const [name, weight] of weights) {
      if (!name.endsWith('.weight') || weight.shape.length !== 2 || name === 'lm_head.weight') continue;
      const path = name.slice(0, -'.weight'.length);
      const child = await root.submodule(path);
      const description = await child.describe();
      const graph = description.methods.find((m) => m.name === 'forward')?.graph ?? '';
      const kind = layerKind(graph);
      if (kind) layers.push({ path, kind, type: description.type, child });
      else child.dispose();
    }
    const targets = layers.filter((l) => isLoraTarget(options, architecture, l.path));
    if (targets.length === 0) throw new ConfigError(noTargetMessage(options, architecture, layers.map((l) => l.path)));
    const kinds = new Set(targets.map((l) => l.kind));
    if (kinds.size > 1) throw new ConfigError(`use_peft: ${where} mixes Linear and Conv1D layers among the targets; adapt one kind (lora_target_modules)`);

    const parents = new Map<string, ScriptModule>();
    const types = new Map<string, string>();
    const claim = (type: string, path: string) => {
      const other = types.get(type);
      if (other !== undefined && other !== path) {
        throw new ConfigError(`use_peft: in ${where}, ${other} and ${path} share the TorchScript class ${type}, so an adapter on one would be on both; re-trace the model or load its safetensors into a built-in architecture`);
      }
      types.set(type, path);
    };
    for (const layer of targets) {
      claim(layer.type, layer.path);
      const parentPath = layer.path.split('.').slice(0, -1).join('.');
      if (!parents.has(parentPath)) {
        const parent = parentPath ? await root.submodule(parentPath) : root;
        parents.set(parentPath, parent);
        claim((await parent.describe()).type, parentPath || '(root)');
      }
    }

    // The adapters' dtype follows the layers' (fp32 over bf16/fp16, as for the built-in architectures).
    const dtype = weights.get(`${targets[0].path}.weight`)!.dtype;
    const builder = new AdapterBuilder(options, { dtype, device: root.device }, kinds.has('conv1d'));
    for (const layer of targets) {
      const [a, b] = weights.get(`${layer.path}.weight`)!.shape;
      const [nIn, nOut] = layer.kind === 'linear' ? [b, a] : [a, b];
      await builder.add(layer.child, layer.path, `LoraTraced_${layer.path.replace(/\./g, '_')}`, nIn, nOut);
      await layer.child.define(linearSource('y = self.forward(x)', true, 'lora_forward'));
      const parentPath = layer.path.split('.').slice(0, -1).join('.');
      const redirected = await parents.get(parentPath)!.redirectCalls(layer.path.split('.').pop()!, 'forward', 'lora_forward');
      if (redirected === 0) {
        throw new ConfigError(`use_peft: in ${where}, ${parentPath || 'the model'} does not call ${layer.path} as a submodule (the trace inlined it), so it cannot take an adapter; load the model's safetensors into a built-in architecture`);
      }
    }
    // describe() cached inlined copies of the graphs, from before the redirects.
    await root.forgetOptimizedGraphs();
    for (const l of layers) l.child.dispose();
    for (const [path, parent] of parents) if (path) parent.dispose();
    return builder.finish();
  });
}
