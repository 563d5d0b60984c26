export { Tensor, runOp, type TensorOptions } from './tensor';
export * from './tensor-functions';
export { noGrad, enableGrad, isGradEnabled } from './grad-mode';
export * from './runtime';
export * from './errors';
export type { DType, HostArray } from './native/binding';
export type { TensorData } from './host-data';
export { findLibtorch, type LibtorchInstall, type BuildMetadata } from './native/discovery';
