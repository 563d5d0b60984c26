import { AsyncLocalStorage } from 'node:async_hooks';

// libtorch's grad mode is thread-local and our ops run on device worker threads, so the mode
// travels with each call instead: it is read here when an op is submitted. AsyncLocalStorage
// keeps it correct across awaits and concurrent scopes.
const gradScope = new AsyncLocalStorage<boolean>();

/** Whether ops submitted from the current async context record autograd history. */
export function isGradEnabled(): boolean {
  return gradScope.getStore() ?? true;
}

/** Runs `fn` with autograd off for every op it submits, awaited or not. */
export function noGrad<T>(fn: () => T): T {
  return gradScope.run(false, fn);
}

/** Runs `fn` with autograd on (undoes an enclosing noGrad). */
export function enableGrad<T>(fn: () => T): T {
  return gradScope.run(true, fn);
}
