// The small-block allocator of coroutine frames and task states (see
// detail/asyncio_alloc.hpp).
#include <mutex>
#include <new>
#include <vector>

#include "spindle/detail/asyncio_alloc.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define SPINDLE_ASYNCIO_SLABS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPINDLE_ASYNCIO_SLABS 0
#endif
#endif
#ifndef SPINDLE_ASYNCIO_SLABS
#define SPINDLE_ASYNCIO_SLABS 1
#endif

namespace spindle::asyncio::internal {
namespace {

constexpr std::size_t kGranule = 16;
constexpr std::size_t kLargest = 512;
constexpr std::size_t kClasses = kLargest / kGranule;
constexpr std::size_t kSlabBytes = 64 * 1024;

struct FreeBlock {
  FreeBlock* next;
};

struct ThreadLists {
  FreeBlock* free[kClasses] = {};
  char* bump = nullptr;
  char* bump_end = nullptr;
};
thread_local ThreadLists lists;

// Every slab stays reachable from here (immortal), so blocks parked in the lists of a thread
// that ended are neither lost nor reported as leaks.
struct SlabRegistry {
  std::mutex mutex;
  std::vector<void*> slabs;
};
SlabRegistry& registry() {
  static auto* instance = new SlabRegistry();
  return *instance;
}

void new_slab() {
  char* slab = static_cast<char*>(::operator new(kSlabBytes));
  {
    SlabRegistry& slabs = registry();
    std::lock_guard guard(slabs.mutex);
    slabs.slabs.push_back(slab);
  }
  lists.bump = slab;
  lists.bump_end = slab + kSlabBytes;
}

}  // namespace

void* allocate_small(std::size_t size) {
  if (!SPINDLE_ASYNCIO_SLABS || size > kLargest || size == 0) return ::operator new(size);
  const std::size_t size_class = (size + kGranule - 1) / kGranule - 1;
  if (FreeBlock* block = lists.free[size_class]) {
    lists.free[size_class] = block->next;
    return block;
  }
  const std::size_t bytes = (size_class + 1) * kGranule;
  if (lists.bump == nullptr || static_cast<std::size_t>(lists.bump_end - lists.bump) < bytes)
    new_slab();
  void* block = lists.bump;
  lists.bump += bytes;
  return block;
}

void deallocate_small(void* block, std::size_t size) noexcept {
  if (block == nullptr) return;
  if (!SPINDLE_ASYNCIO_SLABS || size > kLargest || size == 0) {
    ::operator delete(block);
    return;
  }
  const std::size_t size_class = (size + kGranule - 1) / kGranule - 1;
  auto* freed = static_cast<FreeBlock*>(block);
  freed->next = lists.free[size_class];
  lists.free[size_class] = freed;
}

}  // namespace spindle::asyncio::internal
