import type { DType } from '../native/binding';

/**
 * What a torch.jit.trace baked into a graph as constants (read from the inlined graph's text): devices
 * (torch.arange(..., device=cpu)) and floating dtypes (x.to(torch.float32), full_like(..., dtype=...)),
 * which make a traced model wrong or crash on another device or dtype.
 */

/** Device types a traced graph hard-codes. */
export function bakedDevices(graph: string): string[] {
  const found = new Set<string>();
  for (const m of graph.matchAll(/Device = prim::Constant\[value="([a-z]+)/g)) found.add(m[1]);
  return [...found];
}

// c10::ScalarType codes of the floating dtypes.
const FLOAT_CODES: Record<number, DType> = { 5: 'float16', 6: 'float32', 7: 'float64', 15: 'bfloat16' };

/** The position of the dtype argument of the ops that take one, by argument count. */
function dtypeArgument(op: string, count: number): number | null {
  if (op === 'to') return count === 6 ? 2 : count === 5 || count === 8 ? 1 : null;
  if (op === 'full' || op === 'full_like' || op === 'new_zeros' || op === 'new_ones' || op === 'new_empty') return 2;
  if (op === 'new_full') return 3;
  if (op === 'arange') return count - 4;
  return 1; // zeros, ones, empty, rand, randn, *_like, scalar_tensor, tensor
}

const OPS = /aten::(to|full_like|zeros_like|ones_like|empty_like|rand_like|randn_like|zeros|ones|full|empty|rand|randn|arange|scalar_tensor|tensor|new_zeros|new_ones|new_empty|new_full)\(([^)]*)\)/;

export interface BakedDtype {
  dtype: DType;
  /** The graph line, trimmed (e.g. `%x : Tensor = aten::to(%mask, %23, %false, %false, %none)`). */
  node: string;
}

/** Floating dtypes a traced graph hard-codes as op arguments (softmax's dtype= is an intended upcast, not listed). */
export function bakedFloatDtypes(graph: string): BakedDtype[] {
  const constants = new Map<string, number>();
  for (const m of graph.matchAll(/(%[\w.]+) : int = prim::Constant\[value=(-?\d+)\]/g)) constants.set(m[1], Number(m[2]));
  const found: BakedDtype[] = [];
  for (const line of graph.split('\n')) {
    const m = OPS.exec(line);
    if (!m) continue;
    const args = m[2].split(',').map((a) => a.trim());
    const at = dtypeArgument(m[1], args.length);
    const code = at === null ? undefined : constants.get(args[at]);
    const dtype = code === undefined ? undefined : FLOAT_CODES[code];
    if (dtype) found.push({ dtype, node: line.trim().replace(/\s*#.*$/, '') });
  }
  return found;
}
