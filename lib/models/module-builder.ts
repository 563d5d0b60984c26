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

/** A container whose children are named "0", "1", … (HF's ModuleList layout), run in order. */
export async function sequentialModule(name: string, children: ScriptModule[], args: string): Promise<ScriptModule> {
  const container = ScriptModule.create(name);
  const calls: string[] = [];
  for (const [i, child] of children.entries()) {
    await container.registerModule(String(i), child);
    // TorchScript cannot spell self.0; getattr with a literal name resolves at compile time.
    calls.push(`    x = getattr(self, "${i}").forward(x, ${args})`);
  }
  await container.define(`\ndef forward(self, x, ${args}):\n${calls.join('\n')}\n    return x\n`);
  return container;
}

/** N(0, std) weights, as HF's _init_weights draws them. */
export function normalInit(shape: number[], std: number): Promise<Tensor> {
  return noGrad(async () => (await randn(shape)).mul(std));
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

/** Registers several submodules in order. */
export async function registerAll(parent: ScriptModule, children: Record<string, ScriptModule>): Promise<void> {
  for (const [key, child] of Object.entries(children)) await parent.registerModule(key, child);
}

export function parseArchitectureConfig<S extends z.ZodTypeAny>(schema: S, input: unknown, architecture: string): z.output<S> {
  return parseOnce(schema, input, `${architecture} config`);
}
