// spindle::queue: put and get with a timeout, for Queue, LifoQueue and PriorityQueue. Timing
// checks are one-sided (never sooner than the timeout) or have generous upper bounds.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include "queue_test_support.hpp"
#include "spindle/queue.hpp"

namespace {

using namespace std::chrono_literals;
using queue_test::Clock;
using queue_test::drain;
using queue_test::Kind;
using queue_test::Threads;
using spindle::queue::Empty;
using spindle::queue::Full;

// Far longer than any wait in these tests should take, far shorter than ctest's timeout: a
// wait that hangs fails the test instead of stalling it.
constexpr auto kLongWait = 30s;
// Upper bound for a wait of a few milliseconds on a loaded machine under a sanitizer.
constexpr auto kGenerous = 10s;

template <class Q>
void check_GetOnAnEmptyQueueThrowsEmptyAfterTheTimeout() {
  Q queue(2);
  const auto start = Clock::now();
  EXPECT_THROW(queue.get(50ms), Empty);
  const auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 50ms);
  EXPECT_LT(elapsed, kGenerous);
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(Timeout, GetOnAnEmptyQueueThrowsEmptyAfterTheTimeout, int)

template <class Q>
void check_PutOnAFullQueueThrowsFullAfterTheTimeout() {
  Q queue(2);
  queue.put(1);
  queue.put(2);
  const auto start = Clock::now();
  EXPECT_THROW(queue.put(3, 50ms), Full);
  const auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 50ms);
  EXPECT_LT(elapsed, kGenerous);
  EXPECT_EQ(drain(queue), Kind<Q>::order({1, 2}));
}
QUEUE_KINDS_TEST(Timeout, PutOnAFullQueueThrowsFullAfterTheTimeout, int)

template <class Q>
void check_FractionalSecondsAreAccepted() {
  Q queue(1);
  const auto start = Clock::now();
  EXPECT_THROW(queue.get(std::chrono::duration<double>(0.02)), Empty);
  EXPECT_GE(Clock::now() - start, 20ms);
  queue.put(1, std::chrono::duration<double>(0.02));
  EXPECT_THROW(queue.put(2, std::chrono::duration<double, std::milli>(20.5)), Full);
  EXPECT_EQ(queue.get(std::chrono::duration<double>(0.02)), 1);
}
QUEUE_KINDS_TEST(Timeout, FractionalSecondsAreAccepted, int)

template <class Q>
void check_ZeroTimeoutActsAsNowait() {
  Q queue(1);
  EXPECT_THROW(queue.get(0s), Empty);
  queue.put(1, 0s);
  EXPECT_THROW(queue.put(2, 0s), Full);
  EXPECT_THROW(queue.put(2, 0ns), Full);
  EXPECT_EQ(queue.get(0s), 1);
  EXPECT_THROW(queue.get(0ns), Empty);
}
QUEUE_KINDS_TEST(Timeout, ZeroTimeoutActsAsNowait, int)

template <class Q>
void check_AvailableItemOrRoomNeedsNoWait() {
  Q queue(3);
  const auto start = Clock::now();
  queue.put(1, 1h);
  queue.put(2, 1h);
  EXPECT_EQ(queue.qsize(), 2u);
  EXPECT_EQ(queue.get(1h) + queue.get(1h), 3);
  EXPECT_LT(Clock::now() - start, kGenerous);
}
QUEUE_KINDS_TEST(Timeout, AvailableItemOrRoomNeedsNoWait, int)

template <class Q>
void check_HugeTimeoutsAreClampedNotOverflowed() {
  Q queue(2);
  queue.put(1, std::chrono::nanoseconds::max());
  queue.put(2, std::chrono::hours::max());
  EXPECT_TRUE(queue.full());
  EXPECT_NO_THROW(queue.get(std::chrono::hours::max()));
  EXPECT_NO_THROW(queue.get(std::chrono::duration<double>(1e300)));
  EXPECT_TRUE(queue.empty());

  // A getter with an effectively endless timeout still wakes for an item.
  int got = -1;
  Threads getter;
  getter.start([&] { got = queue.get(std::chrono::nanoseconds::max()); });
  queue.put(9);
  getter.join();
  EXPECT_EQ(got, 9);
}
QUEUE_KINDS_TEST(Timeout, HugeTimeoutsAreClampedNotOverflowed, int)

// ---- negative timeouts ---------------------------------------------------------------------

template <class Q>
void check_NegativeTimeoutThrowsInvalidArgument() {
  Q queue(2);
  EXPECT_THROW(queue.get(-1ms), std::invalid_argument);
  EXPECT_THROW(queue.get(std::chrono::duration<double>(-0.5)), std::invalid_argument);
  EXPECT_THROW(queue.put(1, -1ms), std::invalid_argument);
  EXPECT_TRUE(queue.empty()) << "a put with a negative timeout must not add its item";

  queue.put(1);
  EXPECT_THROW(queue.get(-1s), std::invalid_argument);
  EXPECT_EQ(queue.qsize(), 1u) << "a get with a negative timeout must not take an item";

  queue.put(2);  // full
  EXPECT_THROW(queue.put(3, -1ns), std::invalid_argument);
  EXPECT_EQ(drain(queue), Kind<Q>::order({1, 2}));
}
QUEUE_KINDS_TEST(Timeout, NegativeTimeoutThrowsInvalidArgument, int)

// The contract says a negative timeout is always an error, even where Python's unbounded
// put ignores the timeout.
template <class Q>
void check_NegativeTimeoutThrowsOnAnUnboundedQueueToo() {
  Q queue;
  EXPECT_THROW(queue.put(1, -1ms), std::invalid_argument);
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(Timeout, NegativeTimeoutThrowsOnAnUnboundedQueueToo, int)

template <class Q>
void check_NegativeTimeoutLeavesAMoveOnlyItemWithTheCaller() {
  Q queue(1);
  auto item = std::make_unique<int>(5);
  EXPECT_THROW(queue.put(std::move(item), -1ms), std::invalid_argument);
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(*item, 5);
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(Timeout, NegativeTimeoutLeavesAMoveOnlyItemWithTheCaller, std::unique_ptr<int>)

// ---- timed waits that end early --------------------------------------------------------------

template <class Q>
void check_TimedGetReturnsAnItemPutLater() {
  Q queue(1);
  int got = -1;
  Clock::duration waited{};
  Threads getter;
  getter.start([&] {
    const auto start = Clock::now();
    got = queue.get(kLongWait);
    waited = Clock::now() - start;
  });
  queue.put(11);
  getter.join();
  EXPECT_EQ(got, 11);
  EXPECT_LT(waited, kLongWait);
}
QUEUE_KINDS_TEST(Timeout, TimedGetReturnsAnItemPutLater, int)

template <class Q>
void check_TimedPutWaitsForRoom() {
  Q queue(1);
  queue.put(1);
  Threads putter;
  putter.start([&] { queue.put(2, kLongWait); });
  EXPECT_EQ(queue.get(), 1);
  EXPECT_EQ(queue.get(kLongWait), 2);
  putter.join();
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(Timeout, TimedPutWaitsForRoom, int)

template <class Q>
void check_FailedTimedPutLeavesAMoveOnlyItemWithTheCaller() {
  Q queue(1);
  queue.put(std::make_unique<int>(1));
  auto item = std::make_unique<int>(42);
  int* const address = item.get();
  EXPECT_THROW(queue.put(std::move(item), 10ms), Full);
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(item.get(), address);
  EXPECT_EQ(queue.qsize(), 1u);
  EXPECT_EQ(*queue.get(), 1);
}
QUEUE_KINDS_TEST(Timeout, FailedTimedPutLeavesAMoveOnlyItemWithTheCaller, std::unique_ptr<int>)

template <class Q>
void check_TimedOutGetDoesNotSwallowALaterItem() {
  Q queue;
  EXPECT_THROW(queue.get(10ms), Empty);
  queue.put(5);
  EXPECT_EQ(queue.get_nowait(), 5);
}
QUEUE_KINDS_TEST(Timeout, TimedOutGetDoesNotSwallowALaterItem, int)

template <class Q>
void check_TimedOutPutLeavesNoUnfinishedTask() {
  Q queue(1);
  queue.put(1);
  EXPECT_THROW(queue.put(2, 10ms), Full);
  EXPECT_EQ(queue.get(), 1);
  queue.task_done();
  EXPECT_THROW(queue.task_done(), std::invalid_argument);
  queue.join();  // nothing unfinished: returns at once
}
QUEUE_KINDS_TEST(Timeout, TimedOutPutLeavesNoUnfinishedTask, int)

// Getters with short timeouts retry until they receive their share: no item is lost or
// handed out twice when timeouts and wake-ups cross (CPython's test_many_threads_timeout).
template <class Q>
void check_RetryingTimedGettersReceiveEveryItemOnce() {
  constexpr int kItems = 2000;
  constexpr std::size_t kGetters = 4;
  Q queue(8);
  std::vector<std::vector<int>> got(kGetters);
  Threads getters;
  getters.start_n(kGetters, [&](std::size_t index) {
    for (int i = 0; i < kItems / static_cast<int>(kGetters); ++i) {
      for (;;) {
        try {
          got[index].push_back(queue.get(1ms));
          break;
        } catch (const Empty&) {
        }
      }
    }
  });
  for (int item = 0; item < kItems; ++item) {
    for (;;) {
      try {
        queue.put(item, 1ms);
        break;
      } catch (const Full&) {
      }
    }
  }
  getters.join();
  std::vector<int> all;
  for (const auto& some : got)
    all.insert(all.end(), some.begin(), some.end());
  std::sort(all.begin(), all.end());
  std::vector<int> expected(kItems);
  for (int i = 0; i < kItems; ++i)
    expected[i] = i;
  EXPECT_EQ(all, expected);
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(Timeout, RetryingTimedGettersReceiveEveryItemOnce, int)

}  // namespace
