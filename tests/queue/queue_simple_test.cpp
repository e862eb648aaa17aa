// spindle::queue::SimpleQueue: an unbounded FIFO without task tracking or shutdown.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "queue_test_support.hpp"
#include "spindle/queue.hpp"

namespace {

using namespace std::chrono_literals;
using queue_test::Clock;
using queue_test::Threads;
using spindle::queue::Empty;
using spindle::queue::SimpleQueue;

constexpr auto kGenerous = 10s;

// The interface of Python's SimpleQueue, and nothing of Queue's task tracking or shutdown.
template <class Q>
concept HasTaskTracking = requires(Q& queue) {
  queue.task_done();
  queue.join();
};
template <class Q>
concept HasShutdown = requires(Q& queue) {
  queue.shutdown();
};
template <class Q>
concept HasFull = requires(Q& queue) {
  queue.full();
};

TEST(SimpleQueue, OffersNoTaskTrackingShutdownOrMaxsize) {
  static_assert(!HasTaskTracking<SimpleQueue<int>>);
  static_assert(!HasShutdown<SimpleQueue<int>>);
  static_assert(!HasFull<SimpleQueue<int>>);
  static_assert(HasTaskTracking<spindle::queue::Queue<int>>);
  static_assert(HasShutdown<spindle::queue::Queue<int>>);
  SUCCEED();
}

TEST(SimpleQueue, GetReturnsItemsInPutOrder) {
  SimpleQueue<int> queue;
  for (int item : {111, 333, 222})
    queue.put(item);
  EXPECT_EQ(queue.get(), 111);
  EXPECT_EQ(queue.get(), 333);
  EXPECT_EQ(queue.get(), 222);
}

// CPython's SimpleQueue test_basic: every put and get form, with qsize and empty.
TEST(SimpleQueue, QsizeAndEmptyFollowEveryPutAndGet) {
  SimpleQueue<int> queue;
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.qsize(), 0u);
  queue.put(1);
  EXPECT_FALSE(queue.empty());
  EXPECT_EQ(queue.qsize(), 1u);
  queue.put(2);
  queue.put_nowait(3);
  const int four = 4;
  queue.put(four);
  EXPECT_EQ(queue.qsize(), 4u);

  EXPECT_EQ(queue.get(), 1);
  EXPECT_EQ(queue.qsize(), 3u);
  EXPECT_EQ(queue.get_nowait(), 2);
  EXPECT_EQ(queue.qsize(), 2u);
  EXPECT_EQ(queue.get(0s), 3);
  EXPECT_EQ(queue.qsize(), 1u);
  EXPECT_EQ(queue.get(100ms), 4);
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.qsize(), 0u);

  EXPECT_THROW(queue.get_nowait(), Empty);
  EXPECT_THROW(queue.get(0s), Empty);
  EXPECT_THROW(queue.get(1ms), Empty);
  EXPECT_TRUE(queue.empty());
}

TEST(SimpleQueue, PutNeverBlocks) {
  SimpleQueue<int> queue;
  for (int i = 0; i < 100000; ++i)
    queue.put_nowait(i);
  EXPECT_EQ(queue.qsize(), 100000u);
  for (int i = 0; i < 100000; ++i)
    ASSERT_EQ(queue.get_nowait(), i);
}

TEST(SimpleQueue, GetWithTimeoutOnAnEmptyQueueThrowsEmptyAfterTheTimeout) {
  SimpleQueue<int> queue;
  const auto start = Clock::now();
  EXPECT_THROW(queue.get(50ms), Empty);
  const auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 50ms);
  EXPECT_LT(elapsed, kGenerous);
}

TEST(SimpleQueue, NegativeTimeoutThrowsInvalidArgument) {
  SimpleQueue<int> queue;
  EXPECT_THROW(queue.get(-1ms), std::invalid_argument);
  queue.put(1);
  EXPECT_THROW(queue.get(-1ms), std::invalid_argument);
  EXPECT_THROW(queue.get(std::chrono::duration<double>(-0.1)), std::invalid_argument);
  EXPECT_EQ(queue.qsize(), 1u) << "a get with a negative timeout must not take an item";
}

TEST(SimpleQueue, MoveOnlyItemsPassThrough) {
  SimpleQueue<std::unique_ptr<std::string>> queue;
  auto first = std::make_unique<std::string>("first");
  queue.put(std::move(first));
  EXPECT_EQ(first, nullptr);
  queue.put_nowait(std::make_unique<std::string>("second"));
  queue.put(std::make_unique<std::string>("third"));
  EXPECT_EQ(*queue.get(), "first");
  EXPECT_EQ(*queue.get_nowait(), "second");
  EXPECT_EQ(*queue.get(1s), "third");
}

TEST(SimpleQueue, GetLetsGoOfTheItem) {
  SimpleQueue<std::shared_ptr<int>> queue;
  auto item = std::make_shared<int>(3);
  for (int i = 0; i < 20; ++i)
    queue.put(item);
  EXPECT_EQ(item.use_count(), 21);
  for (int i = 0; i < 20; ++i) {
    queue.get();
    EXPECT_EQ(item.use_count(), 20 - i);
  }
}

TEST(SimpleQueue, BlockingGetReturnsAnItemPutLater) {
  SimpleQueue<int> queue;
  int got = -1;
  int got_timed = -1;
  Threads getters;
  getters.start([&] {
    got = queue.get();
    got_timed = queue.get(30s);
  });
  queue.put(5);
  queue.put(6);
  getters.join();
  EXPECT_EQ(got, 5);
  EXPECT_EQ(got_timed, 6);
}

TEST(SimpleQueue, OneProducerAndOneConsumerKeepTheOrder) {
  SimpleQueue<int> queue;
  std::vector<int> got;
  Threads consumer;
  consumer.start([&] {
    for (int i = 0; i < 5000; ++i)
      got.push_back(queue.get());
  });
  for (int i = 0; i < 5000; ++i)
    queue.put(i);
  consumer.join();
  std::vector<int> expected(5000);
  for (int i = 0; i < 5000; ++i)
    expected[i] = i;
  EXPECT_EQ(got, expected);
}

// CPython's test_many_threads and its variants: several feeders and consumers, a sentinel
// per consumer; every item arrives exactly once, whatever form of get() the consumers use.
enum class GetForm { blocking, nowait, timed };

std::vector<int> run_many_threads(GetForm form) {
  constexpr std::size_t kThreads = 6;
  constexpr int kPerFeeder = 2000;
  constexpr int kSentinel = -1;
  SimpleQueue<int> queue;
  std::vector<std::vector<int>> got(kThreads);
  Threads threads;
  threads.start_n(kThreads, [&](std::size_t index) {
    for (int i = 0; i < kPerFeeder; ++i)
      queue.put(static_cast<int>(index) * kPerFeeder + i);
    queue.put(kSentinel);
  });
  threads.start_n(kThreads, [&](std::size_t index) {
    for (;;) {
      int item = 0;
      switch (form) {
        case GetForm::blocking:
          item = queue.get();
          break;
        case GetForm::nowait:
          for (;;) {
            try {
              item = queue.get_nowait();
              break;
            } catch (const Empty&) {
              std::this_thread::yield();
            }
          }
          break;
        case GetForm::timed:
          for (;;) {
            try {
              item = queue.get(100us);
              break;
            } catch (const Empty&) {
            }
          }
          break;
      }
      if (item == kSentinel) return;
      got[index].push_back(item);
    }
  });
  threads.join();
  EXPECT_TRUE(queue.empty());
  std::vector<int> all;
  for (const auto& some : got)
    all.insert(all.end(), some.begin(), some.end());
  std::sort(all.begin(), all.end());
  return all;
}

std::vector<int> numbers_below(int count) {
  std::vector<int> numbers(count);
  for (int i = 0; i < count; ++i)
    numbers[i] = i;
  return numbers;
}

TEST(SimpleQueue, ManyThreadsWithBlockingGetReceiveEveryItemOnce) {
  EXPECT_EQ(run_many_threads(GetForm::blocking), numbers_below(6 * 2000));
}

TEST(SimpleQueue, ManyThreadsWithGetNowaitReceiveEveryItemOnce) {
  EXPECT_EQ(run_many_threads(GetForm::nowait), numbers_below(6 * 2000));
}

TEST(SimpleQueue, ManyThreadsWithTimedGetReceiveEveryItemOnce) {
  EXPECT_EQ(run_many_threads(GetForm::timed), numbers_below(6 * 2000));
}

}  // namespace
