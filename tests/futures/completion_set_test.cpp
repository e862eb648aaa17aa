// spindle::detail::CompletionSet, what as_completed and wait are built on: each watched
// future is reported once, in completion order; the set lives exactly as long as someone
// refers to it (AddressSanitizer's leak check sees the rest). And has_duplicate_states, which
// tells whether a list of futures repeats one.
#include <gtest/gtest.h>

#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

#include "spindle/detail/completion_set.hpp"
#include "spindle/futures.hpp"

namespace {

using spindle::detail::CompletionSetHandle;
using spindle::detail::make_completion_set;
using spindle::futures::Future;
using spindle::futures::internal::state_of;

TEST(CompletionSet, ReportsWatchedFuturesInCompletionOrder) {
  std::vector<Future<int>> futures(4);
  CompletionSetHandle set = make_completion_set(futures.size());
  for (std::size_t i = 0; i < futures.size(); ++i)
    set->watch(*state_of(futures[i]), i);
  EXPECT_FALSE(set->any());
  futures[2].set_result(2);
  futures[0].set_result(0);
  EXPECT_TRUE(set->any());
  std::vector<std::size_t> taken;
  set->take(taken);
  EXPECT_EQ(taken, (std::vector<std::size_t>{2, 0}));
  EXPECT_FALSE(set->any());
  futures[3].cancel();
  futures[1].set_result(1);
  set->take(taken);
  EXPECT_EQ(taken, (std::vector<std::size_t>{2, 0, 3, 1}));
}

TEST(CompletionSet, FutureAlreadyDoneIsReportedAtOnce) {
  Future<int> future;
  future.set_result(7);
  CompletionSetHandle set = make_completion_set(1);
  set->watch(*state_of(future), 0);
  std::vector<std::size_t> taken;
  set->take(taken);
  EXPECT_EQ(taken, std::vector<std::size_t>{0});
}

TEST(CompletionSet, FuturesCompletingAfterTheOwnerClosedItFreeIt) {
  std::vector<Future<int>> futures(3);
  {
    CompletionSetHandle set = make_completion_set(futures.size());
    for (std::size_t i = 0; i < futures.size(); ++i)
      set->watch(*state_of(futures[i]), i);
    futures[0].set_result(0);  // collected by close()
  }
  futures[1].set_result(1);  // completes after close: drops its own reference
  futures[2].set_result(2);  // the last reference: frees the set
}

TEST(CompletionSet, FuturesDestroyedUnfinishedFreeIt) {
  auto futures = std::make_unique<std::vector<Future<int>>>(3);
  {
    CompletionSetHandle set = make_completion_set(4);  // one index never watched
    for (std::size_t i = 0; i < futures->size(); ++i)
      set->watch(*state_of((*futures)[i]), i);
    std::vector<std::size_t> taken;
    (*futures)[1].set_result(1);
    set->take(taken);
  }
  futures.reset();  // the two pending futures discard their nodes
}

TEST(CompletionSet, CompletionsFromManyThreadsAreEachReportedOnce) {
  constexpr std::size_t kFutures = 10'000;
  std::vector<Future<int>> futures(kFutures);
  CompletionSetHandle set = make_completion_set(kFutures);
  for (std::size_t i = 0; i < kFutures; ++i)
    set->watch(*state_of(futures[i]), i);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&futures, t] {
      for (std::size_t i = t; i < kFutures; i += 4)
        futures[i].set_result(static_cast<int>(i));
    });
  }
  std::vector<std::size_t> taken;
  while (taken.size() < kFutures) {
    spindle::detail::block_until([&] { return set->any(); }, nullptr);
    set->take(taken);
  }
  for (auto& thread : threads)
    thread.join();
  std::vector<bool> seen(kFutures);
  for (std::size_t index : taken) {
    ASSERT_LT(index, kFutures);
    EXPECT_FALSE(seen[index]) << "index " << index << " reported twice";
    seen[index] = true;
  }
}

bool has_duplicates(const std::vector<const void*>& states) {
  return spindle::detail::has_duplicate_states(states.size(),
                                               [&](std::size_t i) { return states[i]; });
}

TEST(HasDuplicateStates, FindsARepeatedFutureAmongManyAllocatedTogether) {
  std::vector<Future<int>> futures(1000);
  std::vector<const void*> states;
  for (const auto& future : futures)
    states.push_back(state_of(future));
  EXPECT_FALSE(has_duplicates(states));
  states.push_back(state_of(futures[500]));
  EXPECT_TRUE(has_duplicates(states));
}

TEST(HasDuplicateStates, FindsARepeatedFutureAmongScatteredOnes) {
  // Addresses far apart (only compared, never dereferenced): the bitmap would be too big.
  static char region_a[64];
  static char region_b[64];
  auto far = std::make_unique<char[]>(1 << 20);
  std::vector<const void*> states = {region_a, far.get(), region_b, far.get() + (1 << 19)};
  EXPECT_FALSE(has_duplicates(states));
  states.push_back(region_b);
  EXPECT_TRUE(has_duplicates(states));
}

TEST(HasDuplicateStates, NoneInAnEmptyOrSingleList) {
  std::vector<const void*> states;
  EXPECT_FALSE(has_duplicates(states));
  int one = 0;
  states.push_back(&one);
  EXPECT_FALSE(has_duplicates(states));
}

}  // namespace
