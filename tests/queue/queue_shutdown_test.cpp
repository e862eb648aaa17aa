// spindle::queue: shutdown() and shutdown(immediate = true), Python 3.13's semantics, for
// Queue, LifoQueue and PriorityQueue.
//
// Tests of threads "blocked" in put, get or join never wait for a thread to be blocked: a
// thread that reaches its call only after the shutdown must see the same outcome, so every
// check holds whatever the timing.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include "queue_test_support.hpp"
#include "spindle/queue.hpp"
#include "spindle/threading.hpp"

namespace {

using namespace std::chrono_literals;
using queue_test::Clock;
using queue_test::drain;
using queue_test::Kind;
using queue_test::Outcome;
using queue_test::outcome_of;
using queue_test::Threads;
using spindle::queue::Empty;
using spindle::queue::Full;
using spindle::queue::PriorityQueue;
using spindle::queue::Queue;
using spindle::queue::ShutDown;
using spindle::threading::Barrier;
using spindle::threading::Event;

constexpr auto kLongWait = 30s;
constexpr auto kGenerous = 10s;

// ---- shutdown(): no more puts, gets drain --------------------------------------------------

template <class Q>
void check_IsShutdownBecomesTrueOnShutdown() {
  Q queue;
  EXPECT_FALSE(queue.is_shutdown());
  queue.shutdown();
  EXPECT_TRUE(queue.is_shutdown());

  Q other;
  other.shutdown(true);
  EXPECT_TRUE(other.is_shutdown());
}
QUEUE_KINDS_TEST(Shutdown, IsShutdownBecomesTrueOnShutdown, int)

template <class Q>
void check_PutAfterShutdownThrowsShutDown() {
  Q queue(2);
  queue.put(1);
  queue.shutdown();
  const int item = 2;
  EXPECT_THROW(queue.put(item), ShutDown);
  EXPECT_THROW(queue.put(2), ShutDown);
  EXPECT_THROW(queue.put_nowait(2), ShutDown);
  EXPECT_THROW(queue.put(2, 1s), ShutDown);
  EXPECT_THROW(queue.put(2, 0s), ShutDown);
  EXPECT_EQ(queue.qsize(), 1u);
}
QUEUE_KINDS_TEST(Shutdown, PutAfterShutdownThrowsShutDown, int)

template <class Q>
void check_PutOnAFullShutDownQueueThrowsShutDownNotFull() {
  Q queue(1);
  queue.put(1);
  queue.shutdown();
  EXPECT_THROW(queue.put_nowait(2), ShutDown);
  EXPECT_THROW(queue.put(2, 10ms), ShutDown);
  EXPECT_THROW(queue.put(2), ShutDown);
}
QUEUE_KINDS_TEST(Shutdown, PutOnAFullShutDownQueueThrowsShutDownNotFull, int)

template <class Q>
void check_FailedPutAfterShutdownLeavesAMoveOnlyItemWithTheCaller() {
  Q queue(4);
  queue.shutdown();
  auto item = std::make_unique<int>(42);
  int* const address = item.get();
  EXPECT_THROW(queue.put(std::move(item)), ShutDown);
  EXPECT_THROW(queue.put_nowait(std::move(item)), ShutDown);
  EXPECT_THROW(queue.put(std::move(item), 1s), ShutDown);
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(item.get(), address);
  EXPECT_EQ(*item, 42);
}
QUEUE_KINDS_TEST(Shutdown, FailedPutAfterShutdownLeavesAMoveOnlyItemWithTheCaller,
                 std::unique_ptr<int>)

template <class Q>
void check_GetDrainsTheItemsLeftThenThrowsShutDown() {
  Q queue(5);
  for (int item : {30, 10, 50, 20, 40})
    queue.put(item);
  queue.shutdown();
  EXPECT_EQ(queue.qsize(), 5u);
  std::vector<int> got;
  got.push_back(queue.get());
  got.push_back(queue.get_nowait());
  got.push_back(queue.get(1s));
  got.push_back(queue.get(0s));
  got.push_back(queue.get());
  EXPECT_EQ(got, Kind<Q>::order({30, 10, 50, 20, 40}));
  EXPECT_THROW(queue.get(), ShutDown);
  EXPECT_THROW(queue.get(), ShutDown);
}
QUEUE_KINDS_TEST(Shutdown, GetDrainsTheItemsLeftThenThrowsShutDown, int)

template <class Q>
void check_GetOnAnEmptyShutDownQueueThrowsShutDownAtOnce() {
  Q queue;
  queue.shutdown();
  const auto start = Clock::now();
  EXPECT_THROW(queue.get(), ShutDown);
  EXPECT_THROW(queue.get_nowait(), ShutDown) << "ShutDown, not Empty";
  EXPECT_THROW(queue.get(kLongWait), ShutDown) << "ShutDown at once, not Empty after the wait";
  EXPECT_THROW(queue.get(0s), ShutDown);
  EXPECT_LT(Clock::now() - start, kGenerous);
}
QUEUE_KINDS_TEST(Shutdown, GetOnAnEmptyShutDownQueueThrowsShutDownAtOnce, int)

// A non-immediate shutdown keeps the unfinished-task count: join() still waits for the items
// left to be taken and marked done.
template <class Q>
void check_ShutdownDoesNotReleaseJoin() {
  Q queue;
  for (int i = 0; i < 3; ++i)
    queue.put(i);
  std::atomic<int> done{0};
  int done_when_joined = -1;
  Threads joiner;
  joiner.start([&] {
    queue.join();
    done_when_joined = done.load();
  });
  queue.shutdown();
  for (int i = 0; i < 3; ++i) {
    queue.get();
    done.fetch_add(1);
    queue.task_done();
  }
  joiner.join();
  EXPECT_EQ(done_when_joined, 3) << "join() returned before every task_done()";
  EXPECT_THROW(queue.task_done(), std::invalid_argument);
}
QUEUE_KINDS_TEST(Shutdown, ShutdownDoesNotReleaseJoin, int)

template <class Q>
void check_ShutdownTwiceIsHarmless() {
  Q queue;
  queue.put(1);
  queue.shutdown();
  queue.shutdown();
  EXPECT_TRUE(queue.is_shutdown());
  EXPECT_EQ(queue.get(), 1);
  EXPECT_THROW(queue.get(), ShutDown);
}
QUEUE_KINDS_TEST(Shutdown, ShutdownTwiceIsHarmless, int)

template <class Q>
void check_ImmediateShutdownAfterShutdownDropsWhatIsLeft() {
  Q queue;
  for (int i = 0; i < 4; ++i)
    queue.put(i);
  queue.shutdown();
  queue.get();
  queue.task_done();
  queue.shutdown(true);
  EXPECT_EQ(queue.qsize(), 0u);
  EXPECT_THROW(queue.get(), ShutDown);
  queue.join();
}
QUEUE_KINDS_TEST(Shutdown, ImmediateShutdownAfterShutdownDropsWhatIsLeft, int)

// ---- shutdown(immediate = true) ------------------------------------------------------------

template <class Q>
void check_ImmediateShutdownDropsTheItems() {
  Q queue(5);
  for (int i = 0; i < 5; ++i)
    queue.put(i);
  queue.shutdown(true);
  EXPECT_EQ(queue.qsize(), 0u);
  EXPECT_TRUE(queue.empty());
  EXPECT_FALSE(queue.full());
  const auto start = Clock::now();
  EXPECT_THROW(queue.get(), ShutDown);
  EXPECT_THROW(queue.get_nowait(), ShutDown);
  EXPECT_THROW(queue.get(kLongWait), ShutDown);
  EXPECT_LT(Clock::now() - start, kGenerous);
  EXPECT_THROW(queue.put(9), ShutDown);
}
QUEUE_KINDS_TEST(Shutdown, ImmediateShutdownDropsTheItems, int)

template <class Q>
void check_ImmediateShutdownDestroysTheDroppedItems() {
  auto item = std::make_shared<int>(1);
  Q queue;
  for (int i = 0; i < 5; ++i)
    queue.put(item);
  EXPECT_EQ(item.use_count(), 6);
  queue.shutdown(true);
  EXPECT_EQ(item.use_count(), 1);
}
QUEUE_KINDS_TEST(Shutdown, ImmediateShutdownDestroysTheDroppedItems, std::shared_ptr<int>)

template <class Q>
void check_ImmediateShutdownReleasesJoin() {
  Q queue;
  for (int i = 0; i < 3; ++i)
    queue.put(i);
  queue.shutdown(true);
  queue.join();  // the dropped items count as done
  EXPECT_THROW(queue.task_done(), std::invalid_argument);
}
QUEUE_KINDS_TEST(Shutdown, ImmediateShutdownReleasesJoin, int)

template <class Q>
void check_ImmediateShutdownWakesAThreadInJoin() {
  Q queue;
  for (int i = 0; i < 3; ++i)
    queue.put(i);
  bool joined = false;
  Threads joiner;
  joiner.start([&] {
    queue.join();
    joined = true;
  });
  queue.shutdown(true);
  joiner.join();
  EXPECT_TRUE(joined);
}
QUEUE_KINDS_TEST(Shutdown, ImmediateShutdownWakesAThreadInJoin, int)

// Items already taken by get() are not dropped: they still need their task_done().
template <class Q>
void check_ImmediateShutdownKeepsTasksAlreadyTakenUnfinished() {
  Q queue;
  for (int i = 0; i < 3; ++i)
    queue.put(i);
  queue.get();
  queue.shutdown(true);

  std::atomic<bool> done{false};
  bool done_when_joined = false;
  Threads joiner;
  joiner.start([&] {
    queue.join();
    done_when_joined = done.load();
  });
  done.store(true);
  queue.task_done();
  joiner.join();
  EXPECT_TRUE(done_when_joined) << "join() returned before the taken item was done";
  EXPECT_THROW(queue.task_done(), std::invalid_argument);
}
QUEUE_KINDS_TEST(Shutdown, ImmediateShutdownKeepsTasksAlreadyTakenUnfinished, int)

// An item whose destructor uses the queue: dropping it must not deadlock the shutdown.
struct UsesQueueWhenDestroyed {
  Queue<UsesQueueWhenDestroyed>* queue = nullptr;
  std::size_t* size_seen = nullptr;
  UsesQueueWhenDestroyed(Queue<UsesQueueWhenDestroyed>* q, std::size_t* seen)
      : queue(q), size_seen(seen) {}
  UsesQueueWhenDestroyed(UsesQueueWhenDestroyed&& other) noexcept
      : queue(std::exchange(other.queue, nullptr)), size_seen(other.size_seen) {}
  UsesQueueWhenDestroyed& operator=(UsesQueueWhenDestroyed&& other) noexcept {
    queue = std::exchange(other.queue, nullptr);
    size_seen = other.size_seen;
    return *this;
  }
  ~UsesQueueWhenDestroyed() {
    if (queue != nullptr) *size_seen = queue->qsize();
  }
};

TEST(QueueShutdown, DroppedItemsMayUseTheQueueWhenDestroyed) {
  Queue<UsesQueueWhenDestroyed> queue;
  std::size_t size_seen = 99;
  queue.put(UsesQueueWhenDestroyed(&queue, &size_seen));
  queue.shutdown(true);
  EXPECT_EQ(size_seen, 0u);
}

// ---- threads blocked in get(), put() -------------------------------------------------------

// Starts `count` threads that meet at a barrier with the test, then call `call`; returns
// after the barrier, so the threads are about to call (or in) `call`.
template <class Call>
void start_at_barrier(Threads& threads, Barrier& barrier, std::size_t count,
                      std::vector<Outcome>& outcomes, Call call) {
  outcomes.assign(count, Outcome::returned);
  threads.start_n(count, [&barrier, &outcomes, call](std::size_t index) {
    barrier.wait();
    outcomes[index] = outcome_of([&] { call(index); });
  });
  barrier.wait();
}

template <class Q>
void check_ShutdownWakesThreadsBlockedInGet(bool immediate) {
  constexpr std::size_t kGetters = 6;
  Q queue(3);
  Barrier barrier(kGetters + 1);
  std::vector<Outcome> outcomes;
  Threads getters;
  start_at_barrier(getters, barrier, kGetters, outcomes, [&](std::size_t index) {
    if (index % 2 == 0) {
      queue.get();
    } else {
      queue.get(kLongWait);
    }
  });
  const auto start = Clock::now();
  queue.shutdown(immediate);
  getters.join();
  EXPECT_LT(Clock::now() - start, kGenerous) << "timed getters waited for their timeout";
  for (std::size_t i = 0; i < kGetters; ++i) {
    EXPECT_EQ(outcomes[i], Outcome::shut_down) << "getter " << i;
  }
}
template <class Q>
void check_ShutdownWakesThreadsBlockedInGet() {
  check_ShutdownWakesThreadsBlockedInGet<Q>(false);
}
template <class Q>
void check_ImmediateShutdownWakesThreadsBlockedInGet() {
  check_ShutdownWakesThreadsBlockedInGet<Q>(true);
}
QUEUE_KINDS_TEST(Shutdown, ShutdownWakesThreadsBlockedInGet, int)
QUEUE_KINDS_TEST(Shutdown, ImmediateShutdownWakesThreadsBlockedInGet, int)

// Putters on a full queue, which nobody empties: each gets ShutDown and keeps its item.
template <class Q>
void check_ShutdownWakesThreadsBlockedInPut(bool immediate) {
  constexpr std::size_t kPutters = 6;
  Q queue(1);
  queue.put(std::make_unique<int>(-1));
  std::vector<std::unique_ptr<int>> items;
  for (std::size_t i = 0; i < kPutters; ++i)
    items.push_back(std::make_unique<int>(int(i)));
  Barrier barrier(kPutters + 1);
  std::vector<Outcome> outcomes;
  Threads putters;
  start_at_barrier(putters, barrier, kPutters, outcomes, [&](std::size_t index) {
    if (index % 2 == 0) {
      queue.put(std::move(items[index]));
    } else {
      queue.put(std::move(items[index]), kLongWait);
    }
  });
  const auto start = Clock::now();
  queue.shutdown(immediate);
  putters.join();
  EXPECT_LT(Clock::now() - start, kGenerous) << "timed putters waited for their timeout";
  for (std::size_t i = 0; i < kPutters; ++i) {
    EXPECT_EQ(outcomes[i], Outcome::shut_down) << "putter " << i;
    ASSERT_NE(items[i], nullptr) << "putter " << i << " lost its item";
    EXPECT_EQ(*items[i], static_cast<int>(i));
  }
  if (immediate) {
    EXPECT_TRUE(queue.empty());
  } else {
    EXPECT_EQ(*queue.get(), -1);
  }
  EXPECT_THROW(queue.get(), ShutDown);
}
template <class Q>
void check_ShutdownWakesThreadsBlockedInPut() {
  check_ShutdownWakesThreadsBlockedInPut<Q>(false);
}
template <class Q>
void check_ImmediateShutdownWakesThreadsBlockedInPut() {
  check_ShutdownWakesThreadsBlockedInPut<Q>(true);
}
QUEUE_KINDS_TEST(Shutdown, ShutdownWakesThreadsBlockedInPut, std::unique_ptr<int>)
QUEUE_KINDS_TEST(Shutdown, ImmediateShutdownWakesThreadsBlockedInPut, std::unique_ptr<int>)

// ---- shutdown while producers and consumers are busy ---------------------------------------

// Producers put distinct numbers until ShutDown; consumers get until ShutDown; the test shuts
// the queue down once items flow. Returns how often each number was put and taken.
struct BusyRun {
  std::vector<std::uint8_t> put;    // per number: 1 if a put of it succeeded
  std::vector<std::uint8_t> taken;  // per number: how many times a get returned it
  std::vector<Outcome> producer_ends;
  std::vector<Outcome> consumer_ends;
};

template <class Q>
BusyRun run_busy_then_shutdown(Q& queue, bool immediate) {
  constexpr std::size_t kProducers = 4;
  constexpr std::size_t kConsumers = 4;
  constexpr int kPerProducer = 1 << 20;  // far more than flow before the shutdown
  constexpr long kFlowBeforeShutdown = 2000;
  BusyRun run;
  run.put.assign(kProducers * kPerProducer, 0);
  run.taken.assign(kProducers * kPerProducer, 0);
  run.producer_ends.assign(kProducers, Outcome::returned);
  run.consumer_ends.assign(kConsumers, Outcome::returned);
  std::vector<std::vector<int>> taken_by(kConsumers);
  std::atomic<long> taken_count{0};
  Event flowing;

  Threads threads;
  threads.start_n(kProducers, [&](std::size_t index) {
    run.producer_ends[index] = outcome_of([&] {
      for (int i = 0; i < kPerProducer; ++i) {
        const int number = static_cast<int>(index) * kPerProducer + i;
        queue.put(number);
        run.put[number] = 1;  // each number belongs to one producer
      }
    });
  });
  threads.start_n(kConsumers, [&](std::size_t index) {
    run.consumer_ends[index] = outcome_of([&] {
      for (;;) {
        taken_by[index].push_back(queue.get());
        queue.task_done();
        if (taken_count.fetch_add(1) + 1 == kFlowBeforeShutdown) flowing.set();
      }
    });
  });
  flowing.wait();
  queue.shutdown(immediate);
  threads.join();
  queue.join();  // every item was taken and done, or dropped
  for (const auto& numbers : taken_by) {
    for (int number : numbers)
      ++run.taken[number];
  }
  return run;
}

template <class Q>
void check_ShutdownStopsBusyProducersAndConsumersWithoutLosingItems() {
  Q queue(16);
  const BusyRun run = run_busy_then_shutdown(queue, false);
  for (Outcome end : run.producer_ends)
    EXPECT_EQ(end, Outcome::shut_down);
  for (Outcome end : run.consumer_ends)
    EXPECT_EQ(end, Outcome::shut_down);
  std::size_t mismatches = 0;
  for (std::size_t number = 0; number < run.put.size(); ++number) {
    if (run.put[number] != run.taken[number]) ++mismatches;
  }
  EXPECT_EQ(mismatches, 0u) << "items put but not taken exactly once after a shutdown";
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(Shutdown, ShutdownStopsBusyProducersAndConsumersWithoutLosingItems, int)

template <class Q>
void check_ImmediateShutdownStopsBusyProducersAndConsumers() {
  Q queue(16);
  const BusyRun run = run_busy_then_shutdown(queue, true);
  for (Outcome end : run.producer_ends)
    EXPECT_EQ(end, Outcome::shut_down);
  for (Outcome end : run.consumer_ends)
    EXPECT_EQ(end, Outcome::shut_down);
  std::size_t taken_not_put = 0;
  std::size_t taken_twice = 0;
  for (std::size_t number = 0; number < run.put.size(); ++number) {
    if (run.taken[number] > run.put[number]) ++taken_not_put;
    if (run.taken[number] > 1) ++taken_twice;
  }
  EXPECT_EQ(taken_not_put, 0u);
  EXPECT_EQ(taken_twice, 0u);
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(Shutdown, ImmediateShutdownStopsBusyProducersAndConsumers, int)

// ---- PriorityQueue comparators -------------------------------------------------------------

// A comparator that is meaningless without the state given to it; default-constructing one is
// a mistake it reports by throwing. The everyday case is a lambda that captures, which has no
// default constructor at all:
//   auto by_rank = [&rank](int a, int b) { return rank[a] < rank[b]; };
//   PriorityQueue<int, decltype(by_rank)> queue(0, by_rank);
//   queue.shutdown();  // does not compile
struct ByRank {
  const std::vector<int>* rank;
  explicit ByRank(const std::vector<int>& ranks) : rank(&ranks) {}
  ByRank() : rank(nullptr) { throw std::logic_error("ByRank needs its ranking"); }
  bool operator()(int a, int b) const { return (*rank)[a] < (*rank)[b]; }
};

// Regression test: shutdown() once built its container policy with `Items dropped{};`, which
// default-constructs the comparator, so a PriorityQueue whose comparator is not
// default-constructible could not be shut down (with a capturing lambda: a compile error).
TEST(PriorityQueueShutdown, ShutdownNeedsNoDefaultConstructibleComparator) {
  const std::vector<int> rank{2, 0, 1};  // item 1 first, then 2, then 0
  PriorityQueue<int, ByRank> queue(0, ByRank(rank));
  for (int item : {0, 1, 2})
    queue.put(item);
  EXPECT_NO_THROW(queue.shutdown());
  EXPECT_TRUE(queue.is_shutdown());
  EXPECT_EQ(queue.get(), 1);
  EXPECT_NO_THROW(queue.shutdown(true));
  EXPECT_TRUE(queue.empty());
}

}  // namespace
