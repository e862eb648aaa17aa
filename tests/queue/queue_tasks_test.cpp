// spindle::queue: task_done() and join(), for Queue, LifoQueue and PriorityQueue.
//
// A join() that returned too early is caught without relying on timing: whoever returns from
// join() checks that every item had been processed, which holds whenever join() is right.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <stdexcept>
#include <vector>

#include "queue_test_support.hpp"
#include "spindle/queue.hpp"

namespace {

using queue_test::Threads;
using spindle::queue::Full;
using spindle::queue::ShutDown;

template <class Q>
void check_TaskDoneWithoutAnyPutThrowsInvalidArgument() {
  Q queue;
  EXPECT_THROW(queue.task_done(), std::invalid_argument);
  EXPECT_THROW(queue.task_done(), std::invalid_argument);
}
QUEUE_KINDS_TEST(Tasks, TaskDoneWithoutAnyPutThrowsInvalidArgument, int)

template <class Q>
void check_TaskDoneMoreOftenThanPutThrowsInvalidArgument() {
  Q queue;
  queue.put(1);
  queue.put(2);
  queue.get();
  queue.get();
  queue.task_done();
  queue.task_done();
  EXPECT_THROW(queue.task_done(), std::invalid_argument);
  // The failed call did not disturb the count.
  queue.put(3);
  queue.task_done();
  EXPECT_THROW(queue.task_done(), std::invalid_argument);
  queue.join();
}
QUEUE_KINDS_TEST(Tasks, TaskDoneMoreOftenThanPutThrowsInvalidArgument, int)

// Python counts puts, not gets: task_done() may come before the matching get().
template <class Q>
void check_TaskDoneCountsPutsNotGets() {
  Q queue;
  queue.put(1);
  queue.task_done();
  queue.join();
  EXPECT_EQ(queue.qsize(), 1u);
  EXPECT_THROW(queue.task_done(), std::invalid_argument);
}
QUEUE_KINDS_TEST(Tasks, TaskDoneCountsPutsNotGets, int)

template <class Q>
void check_JoinOnAFreshQueueReturnsAtOnce() {
  Q queue;
  queue.join();
  queue.join();
}
QUEUE_KINDS_TEST(Tasks, JoinOnAFreshQueueReturnsAtOnce, int)

template <class Q>
void check_JoinReturnsOnceEveryItemIsDone() {
  Q queue(5);
  for (int i = 0; i < 5; ++i)
    queue.put(i);
  for (int i = 0; i < 5; ++i) {
    queue.get();
    queue.task_done();
  }
  queue.join();
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(Tasks, JoinReturnsOnceEveryItemIsDone, int)

template <class Q>
void check_FailedPutsAddNoUnfinishedTask() {
  Q queue(1);
  queue.put(1);
  EXPECT_THROW(queue.put_nowait(2), Full);
  queue.get();
  queue.task_done();
  queue.join();
  queue.shutdown();
  EXPECT_THROW(queue.put(3), ShutDown);
  EXPECT_THROW(queue.task_done(), std::invalid_argument);
  queue.join();
}
QUEUE_KINDS_TEST(Tasks, FailedPutsAddNoUnfinishedTask, int)

// CPython's queue_join_test: workers add up items; join() must not return before every item
// was added, and the same queue can be joined again for a second batch.
template <class Q>
void check_JoinWaitsUntilWorkersHaveProcessedEveryItem() {
  Q queue;
  std::atomic<long> sum{0};
  Threads workers;
  workers.start_n(2, [&](std::size_t) {
    for (;;) {
      const int item = queue.get();
      if (item < 0) {
        queue.task_done();
        return;
      }
      sum.fetch_add(item);
      queue.task_done();
    }
  });
  for (int round = 1; round <= 2; ++round) {
    for (int i = 0; i < 100; ++i)
      queue.put(i);
    queue.join();
    EXPECT_EQ(sum.load(), round * 4950L) << "join() returned before every task_done()";
  }
  queue.put(-1);
  queue.put(-1);
  queue.join();
  workers.join();
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(Tasks, JoinWaitsUntilWorkersHaveProcessedEveryItem, int)

// Many producers and consumers; once every put is over, several threads join() at once. Each
// must see every item processed. A non-immediate shutdown then stops the consumers.
template <class Q>
void check_JoinWithManyProducersAndConsumers() {
  constexpr std::size_t kProducers = 4;
  constexpr std::size_t kConsumers = 4;
  constexpr std::size_t kJoiners = 3;
  constexpr int kPerProducer = 2000;
  constexpr long kTotal = static_cast<long>(kProducers) * kPerProducer;
  Q queue(16);
  std::atomic<long> processed{0};
  std::vector<int> shut_down_seen(kConsumers, 0);

  Threads consumers;
  consumers.start_n(kConsumers, [&](std::size_t index) {
    try {
      for (;;) {
        queue.get();
        processed.fetch_add(1);
        queue.task_done();
      }
    } catch (const ShutDown&) {
      shut_down_seen[index] = 1;
    }
  });
  Threads producers;
  producers.start_n(kProducers, [&](std::size_t) {
    for (int i = 0; i < kPerProducer; ++i)
      queue.put(i);
  });
  producers.join();

  std::vector<long> seen_by_joiner(kJoiners, -1);
  Threads joiners;
  joiners.start_n(kJoiners, [&](std::size_t index) {
    queue.join();
    seen_by_joiner[index] = processed.load();
  });
  queue.join();
  EXPECT_EQ(processed.load(), kTotal);
  joiners.join();
  for (long seen : seen_by_joiner)
    EXPECT_EQ(seen, kTotal);

  queue.shutdown();
  consumers.join();
  for (int seen : shut_down_seen)
    EXPECT_EQ(seen, 1);
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(Tasks, JoinWithManyProducersAndConsumers, int)

}  // namespace
