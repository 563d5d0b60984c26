// A caching CPU allocator for libtorch: freed blocks are kept by size and handed out again, so a
// training step reuses pages it has already touched instead of faulting fresh ones in (glibc returns
// big blocks to the kernel on every free; on VMs the page faults cost as much as the arithmetic).
#pragma once

#include <cstddef>
#include <cstdint>

namespace torch_dpo {

struct CpuAllocatorStats {
  bool caching;           // false: TORCH_DPO_CPU_CACHE_LIMIT=0, libtorch's own allocator is in use
  size_t allocatedBytes;  // in tensors now (size classes, not requested bytes)
  size_t peakAllocatedBytes;
  size_t requestedBytes;  // in tensors now, as requested (what the tensors themselves take)
  size_t peakRequestedBytes;
  size_t cachedBytes;     // freed, kept for reuse
  size_t cacheLimitBytes;
  uint64_t hits;          // allocations served from the cache
  uint64_t misses;        // allocations that asked the system
};

// Installs the allocator as libtorch's CPU allocator once per process (idempotent). The cache limit
// comes from TORCH_DPO_CPU_CACHE_LIMIT (bytes, or with K/M/G/KiB/MiB/GiB; 0 keeps libtorch's own
// allocator); the default is a quarter of physical memory. Throws std::invalid_argument on a bad value.
void InstallCachingCpuAllocator();

CpuAllocatorStats CachingCpuAllocatorStats();

// The peaks start again from what is allocated now (to measure one phase of a run).
void ResetCpuPeak();

// Returns every cached block to the system; blocks in use are not affected.
void EmptyCpuCache();

// Changes the cap on cached bytes and releases what is above it.
void SetCpuCacheLimit(size_t bytes);

// Parses a byte count such as "512MiB", "2G" or "1048576"; throws std::invalid_argument naming the value.
size_t ParseByteSize(const char* text);

}  // namespace torch_dpo
