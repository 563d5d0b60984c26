/**
 * Items grouped in order, greedily, up to `maxBytes` per group (an item larger than that gets a group
 * of its own), with a new group also wherever `splitBefore(i)` says: lists of indices. Gradient
 * buckets (DDP's rule) and weight shards (transformers' rule) are both this.
 */
export function consecutiveGroups(sizes: number[], maxBytes: number, splitBefore: (i: number) => boolean = () => false): number[][] {
  const groups: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  sizes.forEach((size, i) => {
    if (current.length > 0 && (bytes + size > maxBytes || splitBefore(i))) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(i);
    bytes += size;
  });
  if (current.length > 0) groups.push(current);
  return groups;
}
