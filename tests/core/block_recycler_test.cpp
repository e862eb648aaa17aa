#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "spindle/detail/block_recycler.hpp"
#include "spindle/queue.hpp"
#include "spindle/threading.hpp"

namespace {

using spindle::detail::allocate_block;
using spindle::detail::deallocate_block;

TEST(BlockRecycler, BlocksAreAlignedAndWritableForEverySize) {
  for (std::size_t size : {1u, 8u, 63u, 64u, 65u, 128u, 200u, 256u, 257u, 4096u}) {
    void* block = allocate_block(size);
    ASSERT_NE(block, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(block) % alignof(std::max_align_t), 0u) << size;
    std::memset(block, 0xAB, size);
    deallocate_block(block, size);
  }
}

TEST(BlockRecycler, LiveBlocksNeverOverlap) {
  std::vector<void*> blocks;
  std::set<void*> distinct;
  for (int i = 0; i < 5000; ++i) {
    blocks.push_back(allocate_block(100));
    std::memset(blocks.back(), i & 0xFF, 100);
    distinct.insert(blocks.back());
  }
  EXPECT_EQ(distinct.size(), blocks.size());
  for (void* block : blocks)
    deallocate_block(block, 100);
}

TEST(BlockRecycler, BlocksAllocatedInOneThreadMayBeFreedInAnother) {
  spindle::queue::Queue<void*> handoff(64);
  constexpr int kBlocks = 20000;
  spindle::threading::Thread freer([&] {
    for (int i = 0; i < kBlocks; ++i)
      deallocate_block(handoff.get(), 128);
  });
  freer.start();
  for (int i = 0; i < kBlocks; ++i) {
    void* block = allocate_block(128);
    std::memset(block, 1, 128);
    handoff.put(block);
  }
  freer.join();
  // What the other thread freed comes back here in batches; reuse must still be sound.
  std::vector<void*> again;
  for (int i = 0; i < kBlocks; ++i)
    again.push_back(allocate_block(128));
  EXPECT_EQ(std::set<void*>(again.begin(), again.end()).size(), again.size());
  for (void* block : again)
    deallocate_block(block, 128);
}

}  // namespace
