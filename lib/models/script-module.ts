import { DisposedError } from '../errors';
import { isGradEnabled } from '../grad-mode';
import { native, type DType, type NativeModule, type NativeModuleValue } from '../native/binding';
import { settle, Tensor } from '../tensor';
import { disposeSymbol } from '../dispose-symbols';
import type { ShardedUnits } from '../distributed/sharded-units';

export type ModuleValue = Tensor | number | boolean | string | null | ModuleValue[] | { [key: string]: ModuleValue };
/** A method argument; an array of tensors is a TorchScript List[Tensor]. */
export type ModuleInput = Tensor | Tensor[] | number | boolean | null;

/**
 * ZeRO-3: the called layer is unit `unit` of `units` — gathered around its forward and its re-run in
 * backward, its gradients reduce-scattered, freed after each; `next` / `previous` are prefetched.
 */
export interface ZeroUnitCall {
  units: ShardedUnits;
  unit: number;
  next?: number;
  previous?: number;
}

export interface NamedTensor {
  name: string;
  tensor: Tensor;
  /** Other names of the same tensor (tied weights); the tensor is listed once. */
  aliases: string[];
}

function wrapValue(value: NativeModuleValue): ModuleValue {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(wrapValue);
  if ('numel' in value && 'dtype' in value && typeof (value as { dispose?: unknown }).dispose === 'function') {
    return new Tensor(value as never);
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, wrapValue(v)]));
}


/**
 * A TorchScript module (loaded from a file or assembled from TorchScript source). All work runs off
 * the JS thread on the worker of the module's device.
 */
export class ScriptModule {
  #handle: NativeModule | null;

  private constructor(handle: NativeModule) {
    this.#handle = handle;
  }

  /** Loads a TorchScript file (torch.jit.save output) onto a device. */
  static async load(path: string, options: { device?: string } = {}): Promise<ScriptModule> {
    return new ScriptModule(await settle(`loading ${path}`, native().loadModule(path, options.device ?? 'cpu')));
  }

  /** An empty module to assemble with registerParameter / registerModule / define. */
  static create(name: string): ScriptModule {
    return new ScriptModule(native().createModule(name));
  }

  /** @internal */
  get handle(): NativeModule {
    if (!this.#handle || this.#handle.disposed) throw new DisposedError('Module');
    return this.#handle;
  }

  get device(): string { return this.handle.device; }
  get disposed(): boolean { return !this.#handle || this.#handle.disposed; }
  dispose(): void {
    this.#handle?.dispose();
    this.#handle = null;
  }
  [disposeSymbol](): void { this.dispose(); }

  /** Calls a method (records autograd history unless inside noGrad()). */
  async run(method: string, inputs: ModuleInput[]): Promise<ModuleValue> {
    const raw = inputs.map((x) => (x instanceof Tensor ? x.handle : Array.isArray(x) ? x.map((t) => t.handle) : x));
    return wrapValue(await settle(`${method}()`, this.handle.run(method, raw, isGradEnabled())));
  }
  forward(...inputs: ModuleInput[]): Promise<ModuleValue> { return this.run('forward', inputs); }

  /**
   * Submodule `path`'s method (e.g. 'model.layers.3', 'forward') with activation checkpointing: the
   * forward keeps only the inputs; backward re-runs the call with the same RNG states (dropout
   * matches) and backpropagates through it. Returns the call's one tensor.
   */
  async runCheckpointed(path: string, method: string, inputs: Tensor[], zero?: ZeroUnitCall): Promise<Tensor> {
    const unit = zero ? { units: zero.units.handle, unit: zero.unit, next: zero.next ?? -1, previous: zero.previous ?? -1 } : undefined;
    return wrapValue(await settle(`${path}.${method}() (checkpointed)`, this.handle.runCheckpointed(path, method, inputs.map((x) => x.handle), unit))) as Tensor;
  }

  describe() { return settle('describe', this.handle.describe()); }

  async namedParameters(): Promise<NamedTensor[]> {
    const list = await settle('namedParameters', this.handle.namedParameters());
    return list.map((p) => ({ name: p.name, tensor: new Tensor(p.tensor), aliases: p.aliases }));
  }
  async namedBuffers(): Promise<NamedTensor[]> {
    const list = await settle('namedBuffers', this.handle.namedBuffers());
    return list.map((p) => ({ name: p.name, tensor: new Tensor(p.tensor), aliases: p.aliases }));
  }
  /** Distinct parameters (a tied weight appears once), ready for an optimizer. */
  async parameters(): Promise<Tensor[]> { return (await this.namedParameters()).map((p) => p.tensor); }

  train(on = true): Promise<void> { return settle('train', this.handle.setTraining(on)); }
  eval(): Promise<void> { return this.train(false); }
  /** requires_grad off for every parameter. */
  freeze(): Promise<void> { return settle('freeze', this.handle.setRequiresGrad(false)); }
  unfreeze(): Promise<void> { return settle('unfreeze', this.handle.setRequiresGrad(true)); }
  /** A handle on submodule `path` (dotted); what is registered or defined through it changes this module. */
  async submodule(path: string): Promise<ScriptModule> { return new ScriptModule(await settle(`submodule ${path}`, this.handle.submodule(path))); }
  /** In this module's method graphs, self.<child>.<from>(…) calls become self.<child>.<to>(…); returns how many. Before the first run only. */
  redirectCalls(child: string, from: string, to: string): Promise<number> { return settle(`redirectCalls ${child}`, this.handle.redirectCalls(child, from, to)); }
  /** Drops the cached optimized (inlined) copies of every method's graph in the tree: after redirectCalls, before the first run. */
  forgetOptimizedGraphs(): Promise<void> { return settle('forgetOptimizedGraphs', this.handle.forgetOptimizedGraphs()); }
  /** Sets the bool attribute `name` on this module and every submodule that has one (e.g. lora_enabled); returns how many. */
  setFlag(name: string, on: boolean): Promise<number> { return settle(`setFlag ${name}`, this.handle.setFlag(name, on)); }
  to(target: { device?: string; dtype?: DType }): Promise<void> { return settle('to', this.handle.to(target.device, target.dtype)); }
  /** An independent copy (parameters copied; tied weights stay tied within the copy). */
  async deepCopy(): Promise<ScriptModule> { return new ScriptModule(await settle('deepCopy', this.handle.deepCopy())); }
  /** TorchScript file, reloadable by torch.jit.load and ScriptModule.load; written atomically. */
  save(path: string): Promise<void> { return settle(`saving ${path}`, this.handle.save(path)); }

  registerParameter(name: string, value: Tensor, options: { buffer?: boolean } = {}): Promise<void> {
    return settle(`registerParameter ${name}`, this.handle.registerParameter(name, value.handle, options.buffer ?? false));
  }
  registerModule(name: string, module: ScriptModule): Promise<void> {
    return settle(`registerModule ${name}`, this.handle.registerModule(name, module.handle));
  }
  registerAttribute(name: string, value: boolean | number, kind?: 'int' | 'float'): Promise<void> {
    return settle(`registerAttribute ${name}`, this.handle.registerAttribute(name, value, kind));
  }
  /** Compiles TorchScript methods into this module (only aten builtins resolve; call submodules with .forward). */
  define(source: string): Promise<void> { return settle('define', this.handle.define(source)); }
}
