#include "spindle/detail/block_recycler.hpp"

#include <mutex>
#include <new>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define SPINDLE_RECYCLE_BLOCKS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPINDLE_RECYCLE_BLOCKS 0
#endif
#endif
#ifndef SPINDLE_RECYCLE_BLOCKS
#define SPINDLE_RECYCLE_BLOCKS 1
#endif

namespace spindle::detail {
namespace {

constexpr std::size_t kGranule = 64;  // size classes: 64, 128, 192, 256 bytes
constexpr std::size_t kClasses = kLargestRecycledBlock / kGranule;
constexpr std::size_t kBatch = 256;         // blocks moved to or from the global pool at once
constexpr std::size_t kGlobalBatches = 64;  // at most this many batches kept per class

std::size_t class_of(std::size_t size) {
  return (size + kGranule - 1) / kGranule - 1;
}
std::size_t class_size(std::size_t size_class) {
  return (size_class + 1) * kGranule;
}

using Batch = std::vector<void*>;

struct GlobalPool {
  std::mutex mutex;
  std::vector<Batch> batches[kClasses];
};
GlobalPool& global_pool() {
  static auto* pool = new GlobalPool();  // immortal: thread caches return blocks at exit
  return *pool;
}

struct ThreadCache {
  Batch blocks[kClasses];
  ~ThreadCache() {
    for (std::size_t size_class = 0; size_class < kClasses; ++size_class) {
      for (void* block : blocks[size_class])
        ::operator delete(block);
    }
  }
};
thread_local ThreadCache cache;

void refill(std::size_t size_class) {
  GlobalPool& pool = global_pool();
  std::lock_guard guard(pool.mutex);
  auto& batches = pool.batches[size_class];
  if (batches.empty()) return;
  cache.blocks[size_class].swap(batches.back());
  batches.pop_back();
}

void spill(std::size_t size_class) {
  Batch& blocks = cache.blocks[size_class];
  Batch batch(blocks.end() - kBatch, blocks.end());
  blocks.resize(blocks.size() - kBatch);
  GlobalPool& pool = global_pool();
  {
    std::lock_guard guard(pool.mutex);
    if (pool.batches[size_class].size() < kGlobalBatches) {
      pool.batches[size_class].push_back(std::move(batch));
      return;
    }
  }
  for (void* block : batch)
    ::operator delete(block);  // the pool is full: give memory back
}

}  // namespace

void* allocate_block(std::size_t size) {
  if (!SPINDLE_RECYCLE_BLOCKS || size > kLargestRecycledBlock) return ::operator new(size);
  const std::size_t size_class = class_of(size);
  Batch& blocks = cache.blocks[size_class];
  if (blocks.empty()) refill(size_class);
  if (blocks.empty()) return ::operator new(class_size(size_class));
  void* block = blocks.back();
  blocks.pop_back();
  return block;
}

void deallocate_block(void* block, std::size_t size) noexcept {
  if (!SPINDLE_RECYCLE_BLOCKS || size > kLargestRecycledBlock) {
    ::operator delete(block);
    return;
  }
  const std::size_t size_class = class_of(size);
  try {
    Batch& blocks = cache.blocks[size_class];
    blocks.push_back(block);
    if (blocks.size() >= 2 * kBatch) spill(size_class);
  } catch (...) {  // no memory for the cache itself: free the block instead
    ::operator delete(block);
  }
}

}  // namespace spindle::detail
