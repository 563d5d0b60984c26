import { AsyncLocalStorage } from 'node:async_hooks';

/** What a scope can dispose: a Tensor (or any handle-owning object registered by its constructor). */
interface Disposable {
  dispose(): void;
}

interface ScopeFrame {
  created: Set<Disposable>;
}

const current = new AsyncLocalStorage<ScopeFrame>();
const keptForever = new WeakSet<Disposable>();

/** Called by the Tensor constructor: the tensor belongs to the innermost enclosing scope, if any. */
export function registerInScope(tensor: Disposable): void {
  current.getStore()?.created.add(tensor);
}

/**
 * Runs `fn` and then disposes every tensor created inside it (in any async call it awaited), except
 * those in its result (a Tensor, or arrays, plain objects and Maps holding Tensors) and those passed
 * to keep(). Returned tensors belong to the enclosing scope, if any. On an error every tensor created
 * inside is disposed and the error rethrown. The hot path runs inside scopes, so nothing waits for
 * the garbage collector (which, on a GPU, never runs in time to free forgotten logits).
 */
export async function scope<T>(fn: () => Promise<T> | T): Promise<T> {
  const frame: ScopeFrame = { created: new Set() };
  const parent = current.getStore();
  let result: T;
  try {
    result = await current.run(frame, fn);
  } catch (err) {
    disposeAllBut(frame, new Set());
    throw err;
  }
  const returned = new Set<Disposable>();
  collectReturned(result, frame.created, returned, new Set());
  disposeAllBut(frame, returned);
  for (const t of returned) parent?.created.add(t);
  return result;
}

/** Marks a tensor created inside a scope as outliving every scope (state that persists: optimizer moments, caches). */
export function keep<T extends Disposable>(tensor: T): T {
  keptForever.add(tensor);
  return tensor;
}

function disposeAllBut(frame: ScopeFrame, returned: Set<Disposable>): void {
  for (const t of frame.created) if (!returned.has(t) && !keptForever.has(t)) t.dispose();
  frame.created.clear();
}

function collectReturned(value: unknown, created: Set<Disposable>, out: Set<Disposable>, seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (created.has(value as Disposable)) {
    out.add(value as Disposable);
    return;
  }
  if (Array.isArray(value)) for (const item of value) collectReturned(item, created, out, seen);
  else if (value instanceof Map) for (const item of value.values()) collectReturned(item, created, out, seen);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const item of Object.values(value)) collectReturned(item, created, out, seen);
}
