import { existsSync } from 'node:fs';
import { allocatorEnv } from '../lib/cli/allocator';

describe('CLI allocator choice', () => {
  it('uses a retaining jemalloc when present, unless told not to or already preloaded', () => {
    const present = existsSync('/usr/lib/x86_64-linux-gnu/libjemalloc.so.2') || existsSync('/usr/lib/aarch64-linux-gnu/libjemalloc.so.2') || existsSync('/usr/lib64/libjemalloc.so.2');
    const env = allocatorEnv({});
    if (present) {
      expect(env).toMatchObject({ MALLOC_CONF: 'dirty_decay_ms:-1,muzzy_decay_ms:-1', TORCH_DPO_ALLOCATOR: 'jemalloc' });
      expect(env!.LD_PRELOAD).toMatch(/libjemalloc\.so\.2$/);
      expect(allocatorEnv({ LD_PRELOAD: '/opt/other.so' })!.LD_PRELOAD).toMatch(/jemalloc.*:\/opt\/other\.so$/);
    } else {
      expect(env).toBeNull();
    }
    expect(allocatorEnv({ TORCH_DPO_ALLOCATOR: 'system' })).toBeNull();
    expect(allocatorEnv({ LD_PRELOAD: '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2' })).toBeNull();
  });
});
