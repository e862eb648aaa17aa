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
constexpr std::size_t kBatch = 256;  // blocks moved to or from the global pool at once
// At most this many batches kept per class (64 MiB of 64-byte blocks). The pool never holds
// more blocks than were once alive at the same time: a program that queues 100,000 tasks
// finds their blocks again on its next burst instead of asking malloc for them.
constexpr std::size_t kGlobalBatches = 4096;

std::size_t class_of(std::size_t size) {
  return (size + kGranule - 1) / kGranule - 1;
}
std::size_t class_size(std::size_t size_class) {
  return (size_class + 1) * kGranule;
}

using Batch = std::vector<void*>;

// Full batches per class, and empty vectors (with their capacity) to carry the next ones:
// batch vectors go round between the threads, so trading blocks allocates nothing.
struct GlobalPool {
  std::mutex mutex;
  std::vector<Batch> batches[kClasses];
  std::vector<Batch> empties;
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

// The cache of this class is empty: take a full batch, leaving the empty vector in its place.
void refill(std::size_t size_class) {
  GlobalPool& pool = global_pool();
  std::lock_guard guard(pool.mutex);
  auto& batches = pool.batches[size_class];
  if (batches.empty()) return;
  Batch& blocks = cache.blocks[size_class];
  blocks.swap(batches.back());
  batches.back().clear();
  pool.empties.push_back(std::move(batches.back()));
  batches.pop_back();
}

// The cache of this class holds 2 * kBatch blocks: move kBatch of them to the pool.
void spill(std::size_t size_class) {
  Batch& blocks = cache.blocks[size_class];
  GlobalPool& pool = global_pool();
  Batch batch;
  {
    std::lock_guard guard(pool.mutex);
    if (pool.batches[size_class].size() < kGlobalBatches) {
      if (!pool.empties.empty()) {
        batch = std::move(pool.empties.back());
        pool.empties.pop_back();
      }
      // Room for a thread cache's 2 * kBatch: whichever thread takes this vector as its
      // cache later never grows it.
      batch.reserve(2 * kBatch);
      batch.assign(blocks.end() - kBatch, blocks.end());
      blocks.resize(blocks.size() - kBatch);
      pool.batches[size_class].push_back(std::move(batch));
      return;
    }
  }
  batch.assign(blocks.end() - kBatch, blocks.end());
  blocks.resize(blocks.size() - kBatch);
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
  // A recycled block was last written by another thread (the worker that freed it): fetch
  // the next one for writing now, so the caller does not wait for it when it builds the
  // next task (a locked instruction right after would stall on the missing store).
  if (!blocks.empty()) __builtin_prefetch(blocks.back(), 1);
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
