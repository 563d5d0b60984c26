import { scope } from './scope';
import type { Tensor } from './tensor';
import { stack } from './tensor-functions';

/**
 * Scalars (0-d tensors of one dtype) read back by name in one transfer (one device sync): values cross the native
 * boundary keyed by what they are, never by position in an array both sides must agree on.
 */
export async function readScalars(named: Record<string, Tensor>): Promise<Record<string, number>> {
  const names = Object.keys(named);
  if (names.length === 0) return {};
  return scope(async () => {
    const values = Array.from((await (await stack(names.map((n) => named[n]))).toTypedArray()) as ArrayLike<number>);
    return Object.fromEntries(names.map((name, i) => [name, Number(values[i])]));
  });
}
