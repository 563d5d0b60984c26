import { DisposedError, NativeError } from './errors';
import { isGradEnabled } from './grad-mode';
import { defaultDtypeOf, inferShape, isBinary, toHostArray, type TensorData } from './host-data';
import { native, type DType, type HostArray, type NativeTensor, type OpAttrs } from './native/binding';
import { registerInScope } from './scope';
import { asyncDisposeSymbol, disposeSymbol } from './dispose-symbols';
import { DTYPE_BYTES } from './dtypes';

// Tests of tensor lifetimes: every Tensor is held here, so garbage collection cannot free what code forgot.
let retained: Tensor[] | null = null;

/** @internal test hook: keep every Tensor reachable from now on (true), or stop (false). */
export function retainAllTensors(on: boolean): void {
  retained = on ? [] : null;
}

/** Native failures (rejected promises carry code ERR_TORCH) become NativeError with the op named. */
export async function settle<T>(what: string, pending: Promise<T>): Promise<T> {
  try {
    return await pending;
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_TORCH') {
      throw new NativeError(`${what}: ${(err as Error).message}`, { cause: err });
    }
    throw err;
  }
}

/** Runs a native op off the JS thread; the result records autograd history unless in noGrad(). */
export async function runOp(name: string, inputs: Tensor[], attrs?: OpAttrs): Promise<Tensor> {
  const handles = inputs.map((t) => t.handle);
  return new Tensor(await settle(name, native().op(name, handles, attrs, isGradEnabled())));
}

/** Runs a native op with several named outputs; each output becomes a Tensor. */
export async function runFusedOp(name: string, inputs: Tensor[], attrs?: OpAttrs): Promise<Record<string, Tensor>> {
  const handles = inputs.map((t) => t.handle);
  const outputs = await settle(name, native().fusedOp(name, handles, attrs, isGradEnabled()));
  return Object.fromEntries(Object.entries(outputs).map(([key, handle]) => [key, new Tensor(handle)]));
}

export interface TensorOptions {
  shape?: number[];
  dtype?: DType;
  requiresGrad?: boolean;
}

type Operand = Tensor | number;

/**
 * A libtorch tensor. Metadata is synchronous; anything that computes returns a Promise and runs on
 * the device's worker thread. Call dispose() (or `using`) to free memory now; GC is only a fallback.
 */
export class Tensor {
  #handle: NativeTensor | null;

  /** @internal wraps a handle from the addon */
  constructor(handle: NativeTensor) {
    this.#handle = handle;
    registerInScope(this);
    retained?.push(this);
  }

  /** A CPU tensor holding a copy of `data` (synchronous: a copy, no compute). */
  static from(data: TensorData, options: TensorOptions = {}): Tensor {
    const dtype = options.dtype ?? defaultDtypeOf(data);
    const host = toHostArray(data, dtype);
    const shape = options.shape ?? (isBinary(data) ? [lengthOf(host, dtype)] : inferShape(data));
    return new Tensor(native().fromData(host, shape, dtype, options.requiresGrad ?? false));
  }

  /** @internal the live native handle */
  get handle(): NativeTensor {
    if (!this.#handle || this.#handle.disposed) throw new DisposedError('Tensor');
    return this.#handle;
  }

  get shape(): number[] { return this.handle.shape; }
  get dtype(): DType { return this.handle.dtype; }
  get device(): string { return this.handle.device; }
  get numel(): number { return this.handle.numel; }
  get requiresGrad(): boolean { return this.handle.requiresGrad; }
  get disposed(): boolean { return !this.#handle || this.#handle.disposed; }

  /** Frees this reference now. Idempotent; any later use throws DisposedError. */
  dispose(): void {
    this.#handle?.dispose();
    this.#handle = null;
  }
  [disposeSymbol](): void { this.dispose(); }
  async [asyncDisposeSymbol](): Promise<void> { this.dispose(); }

  /** Copies to another device and/or dtype (a new tensor; differentiable). */
  async to(target: string | { device?: string; dtype?: DType }): Promise<Tensor> {
    const { device, dtype } = typeof target === 'string'
      ? (isDtype(target) ? { device: undefined, dtype: target } : { device: target, dtype: undefined })
      : target;
    return new Tensor(await settle('to', this.handle.to(device, dtype, isGradEnabled())));
  }

  /** A host copy of the values (waits for the device). float16/bfloat16 come back as raw Uint16Array words. */
  toTypedArray(): Promise<HostArray> { return settle('toTypedArray', this.handle.toTypedArray()); }
  /** The single value of a one-element tensor: number, bigint for int64, boolean for bool. */
  item(): Promise<number | bigint | boolean> { return settle('item', this.handle.item()); }

  /** Values as a flat JS array (numbers, bigints or booleans). */
  async toArray(): Promise<number[] | bigint[] | boolean[]> {
    const values = await this.toTypedArray();
    if (this.dtype === 'bool') return Array.from(values as Uint8Array, (v) => v === 1);
    return Array.from(values as ArrayLike<number>) as number[] | bigint[];
  }

  backward(gradient?: Tensor, options: { retainGraph?: boolean } = {}): Promise<void> {
    return settle('backward', this.handle.backward(gradient?.handle, options.retainGraph ?? false));
  }
  /** The accumulated gradient, or null when none has been computed. */
  async grad(): Promise<Tensor | null> {
    const grad = await settle('grad', this.handle.grad());
    return grad ? new Tensor(grad) : null;
  }
  async setRequiresGrad(flag = true): Promise<this> {
    await settle('setRequiresGrad', this.handle.setRequiresGrad(flag));
    return this;
  }
  /** A view that shares storage but records no history (synchronous). */
  detach(): Tensor { return new Tensor(this.handle.detach()); }

  // Arithmetic and comparison: the other operand is a tensor (broadcast) or a number.
  add(other: Operand) { return this.binary('add', other); }
  sub(other: Operand) { return this.binary('sub', other); }
  mul(other: Operand) { return this.binary('mul', other); }
  div(other: Operand) { return this.binary('div', other); }
  pow(other: Operand) { return this.binary('pow', other); }
  eq(other: Operand) { return this.binary('eq', other); }
  ne(other: Operand) { return this.binary('ne', other); }
  gt(other: Operand) { return this.binary('gt', other); }
  ge(other: Operand) { return this.binary('ge', other); }
  lt(other: Operand) { return this.binary('lt', other); }
  le(other: Operand) { return this.binary('le', other); }
  maximum(other: Tensor) { return runOp('maximum', [this, other]); }
  minimum(other: Tensor) { return runOp('minimum', [this, other]); }
  /** scalar − this */
  rsub(scalar: number) { return runOp('rsub', [this], { scalar }); }

  neg() { return runOp('neg', [this]); }
  exp() { return runOp('exp', [this]); }
  log() { return runOp('log', [this]); }
  log1p() { return runOp('log1p', [this]); }
  sqrt() { return runOp('sqrt', [this]); }
  abs() { return runOp('abs', [this]); }
  square() { return runOp('square', [this]); }
  sigmoid() { return runOp('sigmoid', [this]); }
  logSigmoid() { return runOp('logsigmoid', [this]); }
  relu() { return runOp('relu', [this]); }
  tanh() { return runOp('tanh', [this]); }
  isFinite() { return runOp('isfinite', [this]); }
  logicalNot() { return runOp('logical_not', [this]); }
  clone() { return runOp('clone', [this]); }
  contiguous() { return runOp('contiguous', [this]); }
  clamp(bounds: { min?: number; max?: number }) { return runOp('clamp', [this], bounds); }
  maskedFill(mask: Tensor, value: number) { return runOp('masked_fill', [this, mask], { value }); }

  // Reductions: over every element, or over `dim` (a number or a list).
  sum(dim?: number | number[], options: { keepdim?: boolean } = {}) { return runOp('sum', [this], { dim, ...options }); }
  mean(dim?: number | number[], options: { keepdim?: boolean } = {}) { return runOp('mean', [this], { dim, ...options }); }
  amax(dim?: number | number[], options: { keepdim?: boolean } = {}) { return runOp('amax', [this], { dim, ...options }); }
  amin(dim?: number | number[], options: { keepdim?: boolean } = {}) { return runOp('amin', [this], { dim, ...options }); }
  logsumexp(dim: number | number[], options: { keepdim?: boolean } = {}) { return runOp('logsumexp', [this], { dim, ...options }); }
  argmax(dim?: number, options: { keepdim?: boolean } = {}) { return runOp('argmax', [this], { dim, ...options }); }
  all() { return runOp('all', [this]); }
  any() { return runOp('any', [this]); }

  // In place: the values of this tensor change; on parameters, call inside noGrad().
  async copy_(source: Tensor): Promise<this> { return this.inPlace('copy_', [source]); }
  /** this += alpha · other (or += other when a number) */
  async add_(other: Tensor | number, alpha = 1): Promise<this> {
    return typeof other === 'number' ? this.inPlace('add_', [], { scalar: other }) : this.inPlace('add_', [other], { alpha });
  }
  async mul_(other: Tensor | number): Promise<this> {
    return typeof other === 'number' ? this.inPlace('mul_', [], { scalar: other }) : this.inPlace('mul_', [other]);
  }
  async zero_(): Promise<this> { return this.inPlace('zero_', []); }
  /** Fills this contiguous CPU tensor with its byte size of `path` from `offset` (positioned reads, on the worker). */
  async readFile_(path: string, offset: number): Promise<this> { return this.inPlace('read_file_', [], { path, offset }); }

  // Shape.
  reshape(shape: number[]) { return runOp('reshape', [this], { shape }); }
  /** Like reshape, but always a view of this tensor's storage (rejects strides that would need a copy). */
  view(shape: number[]) { return runOp('view', [this], { shape }); }
  transpose(dim0: number, dim1: number) { return runOp('transpose', [this], { dim0, dim1 }); }
  permute(dims: number[]) { return runOp('permute', [this], { dims }); }
  unsqueeze(dim: number) { return runOp('unsqueeze', [this], { dim }); }
  squeeze(dim?: number) { return runOp('squeeze', [this], { dim }); }
  narrow(dim: number, start: number, length: number) { return runOp('narrow', [this], { dim, start, length }); }
  expand(shape: number[]) { return runOp('expand', [this], { shape }); }
  flatten(start = 0, end = -1) { return runOp('flatten', [this], { start, end }); }

  // Building blocks.
  matmul(other: Tensor) { return runOp('matmul', [this, other]); }
  logSoftmax(dim: number) { return runOp('log_softmax', [this], { dim }); }
  softmax(dim: number) { return runOp('softmax', [this], { dim }); }
  gather(dim: number, index: Tensor) { return runOp('gather', [this, index], { dim }); }
  indexSelect(dim: number, index: Tensor) { return runOp('index_select', [this, index], { dim }); }

  toString(): string {
    return this.disposed ? 'Tensor(disposed)' : `Tensor(shape=[${this.shape}], dtype=${this.dtype}, device=${this.device})`;
  }

  private async inPlace(name: string, others: Tensor[], attrs?: OpAttrs): Promise<this> {
    (await runOp(name, [this, ...others], attrs)).dispose(); // the result aliases this tensor
    return this;
  }

  private binary(name: string, other: Operand): Promise<Tensor> {
    return typeof other === 'number' ? runOp(name, [this], { scalar: other }) : runOp(name, [this, other]);
  }
}

const DTYPES: readonly string[] = ['float32', 'float64', 'float16', 'bfloat16', 'int32', 'int64', 'uint8', 'bool'];
function isDtype(value: string): value is DType {
  return DTYPES.includes(value);
}

function lengthOf(host: ArrayBufferView | ArrayBuffer, dtype: DType): number {
  const bytes = host.byteLength;
  return Math.floor(bytes / DTYPE_BYTES[dtype]);
}
