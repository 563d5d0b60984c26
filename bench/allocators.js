'use strict';
// The CPU allocators a benchmark can compare: torch-dpo's caching allocator (the default), plain
// glibc (the cache off), and jemalloc told to retain freed memory, preloaded by hand when the system
// has it (`apt-get install libjemalloc2`; torch-dpo itself never installs or preloads it).
const { existsSync } = require('node:fs');

const JEMALLOC = ['/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2', '/usr/lib64/libjemalloc.so.2'];

/** [{ name, env }] for every allocator available here; `missing` says what could not be compared. */
function allocatorVariants() {
  const variants = [
    { name: 'caching allocator (default)', env: {} },
    { name: 'glibc malloc (TORCH_DPO_CPU_CACHE_LIMIT=0)', env: { TORCH_DPO_CPU_CACHE_LIMIT: '0' } },
  ];
  const jemalloc = JEMALLOC.find((p) => existsSync(p));
  if (jemalloc) {
    variants.push({
      name: 'jemalloc preloaded, retaining (cache off)',
      env: { TORCH_DPO_CPU_CACHE_LIMIT: '0', LD_PRELOAD: jemalloc, MALLOC_CONF: 'dirty_decay_ms:-1,muzzy_decay_ms:-1' },
    });
  }
  return { variants, missing: jemalloc ? null : 'jemalloc not installed (apt-get install libjemalloc2 to add it to the comparison)' };
}

module.exports = { allocatorVariants };
