#include "cpu_caching_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace torch_dpo {

namespace {

// c10's alignment (gAlignment): enough for AVX-512 loads. Every block starts with a header of this
// size that remembers the block's size class, so freeing needs no lookup.
constexpr size_t kAlignment = 64;
constexpr size_t kHeader = kAlignment;

struct BlockHeader {
  size_t classBytes;
  size_t requestedBytes;  // of the allocation now using the block
};

// Size classes: multiples of 64 up to 512 bytes, then four per power of two, so a block is at most
// 25% larger than asked for and the same request always lands in the same class.
size_t SizeClass(size_t n) {
  if (n <= 512) return n <= kAlignment ? kAlignment : (n + kAlignment - 1) / kAlignment * kAlignment;
  size_t power = size_t{1} << (63 - __builtin_clzll(static_cast<unsigned long long>(n - 1)));
  size_t step = power / 4;
  return (n + step - 1) / step * step;
}

// A cached block of at most this many times the requested class may serve a request: reuses pages
// across slightly different shapes (varying sequence lengths) without wasting much.
constexpr size_t kReuseSlackNumerator = 3;
constexpr size_t kReuseSlackDenominator = 2;

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(size_t limit) : limit_(limit) {}

  // libtorch 1.13 declares allocate() const, 2.3+ non-const: defining both overrides whichever exists.
  c10::DataPtr allocate(size_t n) const { return Allocate(n); }
  c10::DataPtr allocate(size_t n) { return Allocate(n); }
  // Pure virtual in libtorch 2.x, absent in 1.13 (hence no `override`).
  void copy_data(void* dest, const void* src, size_t count) const { std::memcpy(dest, src, count); }
  c10::DeleterFnPtr raw_deleter() const override { return &Free; }

  static CachingCpuAllocator* instance;

  CpuAllocatorStats Stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {true, allocated_, peak_, requested_, peakRequested_, cached_, limit_, hits_, misses_};
  }

  void ResetPeak() {
    std::lock_guard<std::mutex> lock(mutex_);
    peak_ = allocated_;
    peakRequested_ = requested_;
  }

  void SetLimit(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      limit_ = bytes;
    }
    Trim(bytes);
  }

  // Gives cached blocks back to the system until at most `target` bytes stay cached.
  void Trim(size_t target) {
    std::vector<void*> released;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Largest first: fewest blocks to give back for the same bytes.
      while (cached_ > target && !free_.empty()) {
        auto last = std::prev(free_.end());
        cached_ -= last->first;
        released.push_back(last->second);
        free_.erase(last);
      }
    }
    for (void* base : released) std::free(base);
  }

 private:
  c10::DataPtr Allocate(size_t n) const {
    auto* self = const_cast<CachingCpuAllocator*>(this);
    if (n == 0) return {nullptr, nullptr, &Free, c10::Device(c10::DeviceType::CPU)};
    size_t classBytes = SizeClass(n);
    void* base = self->TakeCached(classBytes);
    if (!base) base = self->AllocateFresh(classBytes);
    static_cast<BlockHeader*>(base)->requestedBytes = n;
    {
      std::lock_guard<std::mutex> lock(self->mutex_);
      self->requested_ += n;
      if (self->requested_ > self->peakRequested_) self->peakRequested_ = self->requested_;
    }
    void* data = static_cast<char*>(base) + kHeader;
    return {data, data, &Free, c10::Device(c10::DeviceType::CPU)};
  }

  // A cached block of this class or up to 1.5× larger; null when none.
  void* TakeCached(size_t classBytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.lower_bound(classBytes);
    if (it == free_.end() || it->first > classBytes / kReuseSlackDenominator * kReuseSlackNumerator) {
      misses_ += 1;
      return nullptr;
    }
    void* base = it->second;
    size_t blockBytes = it->first;
    free_.erase(it);
    cached_ -= blockBytes;
    hits_ += 1;
    Count(blockBytes);
    return base;
  }

  void* AllocateFresh(size_t classBytes) {
    void* base = nullptr;
    if (posix_memalign(&base, kAlignment, classBytes + kHeader) != 0) {
      // Out of memory: what the cache holds may be enough, give it back and try once more.
      Trim(0);
      if (posix_memalign(&base, kAlignment, classBytes + kHeader) != 0) {
        TORCH_CHECK(false, "CPU allocator: not enough memory: you tried to allocate ", classBytes, " bytes");
      }
    }
    static_cast<BlockHeader*>(base)->classBytes = classBytes;
    std::lock_guard<std::mutex> lock(mutex_);
    Count(classBytes);
    return base;
  }

  void Count(size_t blockBytes) {
    allocated_ += blockBytes;
    if (allocated_ > peak_) peak_ = allocated_;
  }

  static void Free(void* data) {
    if (!data) return;
    void* base = static_cast<char*>(data) - kHeader;
    size_t blockBytes = static_cast<BlockHeader*>(base)->classBytes;
    CachingCpuAllocator* self = instance;
    {
      std::lock_guard<std::mutex> lock(self->mutex_);
      self->allocated_ -= blockBytes;
      self->requested_ -= static_cast<BlockHeader*>(base)->requestedBytes;
      if (self->cached_ + blockBytes <= self->limit_) {
        self->free_.emplace(blockBytes, base);
        self->cached_ += blockBytes;
        return;
      }
    }
    std::free(base);
  }

  std::mutex mutex_;
  std::multimap<size_t, void*> free_;  // block bytes → block (its header)
  size_t limit_;
  size_t cached_ = 0;
  size_t allocated_ = 0;
  size_t peak_ = 0;
  size_t requested_ = 0;
  size_t peakRequested_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

CachingCpuAllocator* CachingCpuAllocator::instance = nullptr;

size_t DefaultLimit() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long pageSize = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || pageSize <= 0) return size_t{4} << 30;
  return static_cast<size_t>(pages) * static_cast<size_t>(pageSize) / 4;
}

}  // namespace

size_t ParseByteSize(const char* text) {
  std::string value(text);
  const std::string bad = "TORCH_DPO_CPU_CACHE_LIMIT='" + value + "' is not a byte count (e.g. 0, 1073741824, 512MiB, 4G)";
  size_t end = 0;
  while (end < value.size() && (std::isdigit(static_cast<unsigned char>(value[end])) || value[end] == '.')) end += 1;
  if (end == 0) throw std::invalid_argument(bad);
  double number = std::strtod(value.substr(0, end).c_str(), nullptr);
  std::string unit = value.substr(end);
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double scale = 1;
  if (unit.empty() || unit == "b") scale = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") scale = 1024.0;
  else if (unit == "m" || unit == "mb" || unit == "mib") scale = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib") scale = 1024.0 * 1024 * 1024;
  else throw std::invalid_argument(bad);
  return static_cast<size_t>(number * scale);
}

void InstallCachingCpuAllocator() {
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
    size_t limit = DefaultLimit();
    if (const char* env = std::getenv("TORCH_DPO_CPU_CACHE_LIMIT")) {
      try {
        limit = ParseByteSize(env);
      } catch (const std::invalid_argument& e) {
        failure = e.what();
        return;
      }
    }
    if (limit == 0) return;  // libtorch's own allocator (the plain system malloc)
    // Never destroyed: tensors may be freed during process teardown, after static destructors.
    CachingCpuAllocator::instance = new CachingCpuAllocator(limit);
    c10::SetCPUAllocator(CachingCpuAllocator::instance, /*priority=*/1);
  });
  if (!failure.empty()) throw std::invalid_argument(failure);
}

CpuAllocatorStats CachingCpuAllocatorStats() {
  if (!CachingCpuAllocator::instance) return {false, 0, 0, 0, 0, 0, 0, 0, 0};
  return CachingCpuAllocator::instance->Stats();
}

void ResetCpuPeak() {
  if (CachingCpuAllocator::instance) CachingCpuAllocator::instance->ResetPeak();
}

void EmptyCpuCache() {
  if (!CachingCpuAllocator::instance) return;
  CachingCpuAllocator::instance->Trim(0);
}

void SetCpuCacheLimit(size_t bytes) {
  if (CachingCpuAllocator::instance) CachingCpuAllocator::instance->SetLimit(bytes);
}

}  // namespace torch_dpo
