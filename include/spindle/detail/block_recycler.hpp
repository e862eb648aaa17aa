// Recycles the small blocks tasks and futures live in. A task is allocated by the thread that
// submits it and freed by the worker that ran it; malloc handles that cross-thread pattern
// slowly (a third of a tiny task's cost). Each thread keeps a cache of free blocks per size
// class; a thread whose cache grows hands a batch of blocks to a global pool, and a thread
// whose cache is empty takes a batch from it. The global lock is taken once per batch.
//
// Under AddressSanitizer the recycler is bypassed, so use-after-free and leaks stay visible.
#pragma once

#include <cstddef>

namespace spindle::detail {

// Blocks of up to kLargestRecycledBlock bytes are recycled; larger ones use operator new.
inline constexpr std::size_t kLargestRecycledBlock = 256;

// A block of at least `size` bytes, aligned for any fundamental type. Thread-safe.
void* allocate_block(std::size_t size);
// Returns a block from allocate_block(size), from any thread. Thread-safe.
void deallocate_block(void* block, std::size_t size) noexcept;

}  // namespace spindle::detail
