// Memory for coroutine frames and task states: small blocks handed out from per-thread free
// lists (16-byte size classes up to 512 bytes) carved from 64 KiB slabs. A sleeping task is
// two such blocks; malloc would add a header to each and, with a million of them, spend
// more time in its bookkeeping than the tasks spend running.
//
// Slabs are never returned to the system: freed blocks are reused by later tasks of the
// same size (of any thread: a block freed on another thread joins that thread's list).
// Under AddressSanitizer everything goes to operator new, so leaks and use-after-free stay
// visible.
#pragma once

#include <cstddef>

namespace spindle::asyncio::internal {

// A block of at least `size` bytes aligned to 16. Thread-safe (per-thread lists).
void* allocate_small(std::size_t size);
// Returns a block from allocate_small(size), from any thread.
void deallocate_small(void* block, std::size_t size) noexcept;

}  // namespace spindle::asyncio::internal
