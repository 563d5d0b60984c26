import type { DType } from './native/binding';
import { runOp, type Tensor } from './tensor';

export interface CreationOptions {
  dtype?: DType;
  device?: string;
}

export const zeros = (shape: number[], options: CreationOptions = {}) => runOp('zeros', [], { shape, ...options });
/** Uninitialised memory (its pages are touched only when written): for tensors about to be filled. */
export const empty = (shape: number[], options: CreationOptions = {}) => runOp('empty', [], { shape, ...options });
export const ones = (shape: number[], options: CreationOptions = {}) => runOp('ones', [], { shape, ...options });
export const full = (shape: number[], value: number, options: CreationOptions = {}) =>
  runOp('full', [], { shape, value, ...options });
/** Uniform on [0, 1). */
export const rand = (shape: number[], options: CreationOptions = {}) => runOp('rand', [], { shape, ...options });
/** Standard normal. */
export const randn = (shape: number[], options: CreationOptions = {}) => runOp('randn', [], { shape, ...options });
/** Integers uniform on [low, high). */
export const randint = (low: number, high: number, shape: number[], options: CreationOptions = {}) =>
  runOp('randint', [], { low, high, shape, ...options });
/** start, start+step, … below end (int64 unless a dtype is given). */
export const arange = (start: number, end: number, step = 1, options: CreationOptions = {}) =>
  runOp('arange', [], { start, end, step, ...options });

export const where = (condition: Tensor, a: Tensor, b: Tensor) => runOp('where', [condition, a, b]);
export const cat = (tensors: Tensor[], dim = 0) => runOp('cat', tensors, { dim });
export const stack = (tensors: Tensor[], dim = 0) => runOp('stack', tensors, { dim });
/** x · weightᵀ + bias */
export const linear = (x: Tensor, weight: Tensor, bias?: Tensor) => runOp('linear', bias ? [x, weight, bias] : [x, weight]);

/** `tensor` on `device`: itself when it is there already (host-built inputs on a CPU model), else a copy. */
export const onDevice = async (tensor: Tensor, device: string): Promise<Tensor> => (tensor.device === device ? tensor : tensor.to(device));
