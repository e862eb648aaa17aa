// spindle::queue: ordering, sizes, the _nowait forms, item ownership and blocking put/get of
// Queue, LifoQueue and PriorityQueue.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "queue_test_support.hpp"
#include "spindle/errors.hpp"
#include "spindle/queue.hpp"

namespace {

using namespace std::chrono_literals;
using queue_test::drain;
using queue_test::Kind;
using queue_test::Threads;
using spindle::queue::Empty;
using spindle::queue::Full;
using spindle::queue::LifoQueue;
using spindle::queue::PriorityQueue;
using spindle::queue::Queue;
using spindle::queue::ShutDown;

// ---- ordering ----------------------------------------------------------------------------

TEST(Queue, GetReturnsItemsInPutOrder) {
  Queue<int> queue;
  for (int item : {111, 333, 222})
    queue.put(item);
  EXPECT_EQ(queue.get(), 111);
  EXPECT_EQ(queue.get(), 333);
  EXPECT_EQ(queue.get(), 222);
}

TEST(LifoQueue, GetReturnsTheMostRecentItemFirst) {
  LifoQueue<int> queue;
  for (int item : {111, 333, 222})
    queue.put(item);
  EXPECT_EQ(queue.get(), 222);
  EXPECT_EQ(queue.get(), 333);
  EXPECT_EQ(queue.get(), 111);
}

TEST(PriorityQueue, GetReturnsTheSmallestItemFirst) {
  PriorityQueue<int> queue;
  for (int item : {111, 333, 222, -5, 40})
    queue.put(item);
  EXPECT_EQ(drain(queue), (std::vector<int>{-5, 40, 111, 222, 333}));
}

TEST(PriorityQueue, GreaterComparatorReturnsTheLargestItemFirst) {
  PriorityQueue<int, std::greater<int>> queue;
  for (int item : {111, 333, 222, -5, 40})
    queue.put(item);
  EXPECT_EQ(drain(queue), (std::vector<int>{333, 222, 111, 40, -5}));
}

TEST(PriorityQueue, StringsComeOutInLexicographicOrder) {
  PriorityQueue<std::string> queue;
  for (const char* item : {"pear", "apple", "fig", "banana"})
    queue.put(item);
  EXPECT_EQ(drain(queue), (std::vector<std::string>{"apple", "banana", "fig", "pear"}));
}

// Python's idiom: (priority, data) tuples, compared element by element.
TEST(PriorityQueue, PairsComeOutByPriorityThenByData) {
  PriorityQueue<std::pair<int, std::string>> queue;
  queue.put({2, "write docs"});
  queue.put({1, "fix bug"});
  queue.put({2, "review"});
  queue.put({0, "release"});
  EXPECT_EQ(drain(queue), (std::vector<std::pair<int, std::string>>{
                              {0, "release"}, {1, "fix bug"}, {2, "review"}, {2, "write docs"}}));
}

struct Job {
  int priority;
  std::string name;
};

// Orders jobs by priority alone; Job itself has no operator<.
struct ByPriority {
  bool operator()(const Job& a, const Job& b) const { return a.priority < b.priority; }
};

TEST(PriorityQueue, StructWithCustomComparatorComesOutByPriority) {
  PriorityQueue<Job, ByPriority> queue;
  queue.put({30, "low"});
  queue.put({10, "high"});
  queue.put({20, "middle"});
  std::vector<std::string> names;
  for (const Job& job : drain(queue))
    names.push_back(job.name);
  EXPECT_EQ(names, (std::vector<std::string>{"high", "middle", "low"}));
}

// A comparator with state: the item closest to `target` is the smallest.
struct ByDistanceFrom {
  int target = 0;
  bool operator()(int a, int b) const { return std::abs(a - target) < std::abs(b - target); }
};

TEST(PriorityQueue, ComparatorGivenToTheConstructorIsUsed) {
  PriorityQueue<int, ByDistanceFrom> queue(0, ByDistanceFrom{100});
  for (int item : {0, 90, 250, 103, 160})
    queue.put(item);
  EXPECT_EQ(drain(queue), (std::vector<int>{103, 90, 160, 0, 250}));
}

TEST(PriorityQueue, EqualItemsAllComeOut) {
  PriorityQueue<Job, ByPriority> queue;
  for (const char* name : {"a", "b", "c", "d"})
    queue.put({7, name});
  queue.put({1, "first"});
  const std::vector<Job> jobs = drain(queue);
  ASSERT_EQ(jobs.size(), 5u);
  EXPECT_EQ(jobs[0].name, "first");
  std::multiset<std::string> rest;
  for (std::size_t i = 1; i < jobs.size(); ++i)
    rest.insert(jobs[i].name);
  EXPECT_EQ(rest, (std::multiset<std::string>{"a", "b", "c", "d"}));
}

TEST(PriorityQueue, InterleavedPutsAndGetsAlwaysReturnTheSmallestLeft) {
  PriorityQueue<int> queue;
  std::multiset<int> model;
  std::mt19937 random(12345);
  for (int step = 0; step < 5000; ++step) {
    if (model.empty() || random() % 3 != 0) {
      const int item = static_cast<int>(random() % 1000);
      queue.put(item);
      model.insert(item);
    } else {
      ASSERT_EQ(queue.get(), *model.begin()) << "at step " << step;
      model.erase(model.begin());
    }
    ASSERT_EQ(queue.qsize(), model.size());
  }
  for (int item : model)
    ASSERT_EQ(queue.get(), item);
  EXPECT_TRUE(queue.empty());
}

TEST(LifoQueue, InterleavedPutsAndGetsBehaveAsAStack) {
  LifoQueue<int> queue;
  std::vector<int> model;
  std::mt19937 random(777);
  for (int step = 0; step < 5000; ++step) {
    if (model.empty() || random() % 3 != 0) {
      queue.put(step);
      model.push_back(step);
    } else {
      ASSERT_EQ(queue.get(), model.back()) << "at step " << step;
      model.pop_back();
    }
  }
  while (!model.empty()) {
    ASSERT_EQ(queue.get(), model.back());
    model.pop_back();
  }
  EXPECT_TRUE(queue.empty());
}

TEST(Queue, InterleavedPutsAndGetsBehaveAsALine) {
  Queue<int> queue;
  std::deque<int> model;
  std::mt19937 random(4242);
  for (int step = 0; step < 5000; ++step) {
    if (model.empty() || random() % 3 != 0) {
      queue.put(step);
      model.push_back(step);
    } else {
      ASSERT_EQ(queue.get(), model.front()) << "at step " << step;
      model.pop_front();
    }
  }
  while (!model.empty()) {
    ASSERT_EQ(queue.get(), model.front());
    model.pop_front();
  }
  EXPECT_TRUE(queue.empty());
}

// ---- sizes and the _nowait forms, for every kind -----------------------------------------

template <class Q>
void check_NewQueueIsEmptyAndNotFull() {
  Q bounded(3);
  EXPECT_TRUE(bounded.empty());
  EXPECT_FALSE(bounded.full());
  EXPECT_EQ(bounded.qsize(), 0u);
  EXPECT_EQ(bounded.maxsize(), 3u);
  EXPECT_FALSE(bounded.is_shutdown());

  Q unbounded;
  EXPECT_TRUE(unbounded.empty());
  EXPECT_FALSE(unbounded.full());
  EXPECT_EQ(unbounded.maxsize(), 0u);
}
QUEUE_KINDS_TEST(, NewQueueIsEmptyAndNotFull, int)

template <class Q>
void check_QsizeEmptyAndFullFollowPutsAndGets() {
  Q queue(5);
  for (int i = 0; i < 4; ++i) {
    queue.put(i);
    EXPECT_EQ(queue.qsize(), static_cast<std::size_t>(i + 1));
    EXPECT_FALSE(queue.empty());
    EXPECT_FALSE(queue.full());
  }
  queue.put(4);
  EXPECT_EQ(queue.qsize(), 5u);
  EXPECT_TRUE(queue.full());
  queue.get();
  EXPECT_EQ(queue.qsize(), 4u);
  EXPECT_FALSE(queue.full());
  for (int i = 0; i < 4; ++i)
    queue.get();
  EXPECT_EQ(queue.qsize(), 0u);
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(, QsizeEmptyAndFullFollowPutsAndGets, int)

template <class Q>
void check_UnboundedQueueIsNeverFull() {
  Q queue;  // maxsize 0
  for (int i = 0; i < 10000; ++i)
    queue.put_nowait(i);
  EXPECT_EQ(queue.qsize(), 10000u);
  EXPECT_FALSE(queue.full());
}
QUEUE_KINDS_TEST(, UnboundedQueueIsNeverFull, int)

template <class Q>
void check_PutNowaitOnAFullQueueThrowsFullAndChangesNothing() {
  Q queue(3);
  for (int item : {5, 1, 9})
    queue.put_nowait(item);
  EXPECT_THROW(queue.put_nowait(4), Full);
  EXPECT_THROW(queue.put_nowait(0), Full);
  EXPECT_EQ(queue.qsize(), 3u);
  EXPECT_EQ(drain(queue), Kind<Q>::order({5, 1, 9}));
}
QUEUE_KINDS_TEST(, PutNowaitOnAFullQueueThrowsFullAndChangesNothing, int)

template <class Q>
void check_GetNowaitOnAnEmptyQueueThrowsEmpty() {
  Q queue(3);
  EXPECT_THROW(queue.get_nowait(), Empty);
  queue.put(1);
  EXPECT_EQ(queue.get_nowait(), 1);
  EXPECT_THROW(queue.get_nowait(), Empty);
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(, GetNowaitOnAnEmptyQueueThrowsEmpty, int)

template <class Q>
void check_NowaitFormsWorkUpToMaxsize() {
  Q queue(5);
  for (int i = 0; i < 5; ++i)
    queue.put_nowait(i);
  EXPECT_THROW(queue.put_nowait(99), Full);
  std::vector<int> got;
  for (int i = 0; i < 5; ++i)
    got.push_back(queue.get_nowait());
  EXPECT_THROW(queue.get_nowait(), Empty);
  EXPECT_EQ(got, Kind<Q>::order({0, 1, 2, 3, 4}));
}
QUEUE_KINDS_TEST(, NowaitFormsWorkUpToMaxsize, int)

// CPython runs its basic checks twice on one instance: an emptied queue is as good as new.
template <class Q>
void check_EmptiedQueueWorksAsNew() {
  Q queue(4);
  for (int round = 0; round < 3; ++round) {
    for (int item : {3, 8, 1, 6})
      queue.put(item + round);
    EXPECT_TRUE(queue.full());
    EXPECT_THROW(queue.put_nowait(0), Full);
    EXPECT_EQ(drain(queue), Kind<Q>::order({3 + round, 8 + round, 1 + round, 6 + round}));
    EXPECT_TRUE(queue.empty());
    EXPECT_THROW(queue.get_nowait(), Empty);
  }
}
QUEUE_KINDS_TEST(, EmptiedQueueWorksAsNew, int)

TEST(Queue, ExceptionsAreSpindleErrors) {
  Queue<int> queue(1);
  queue.put(1);
  try {
    queue.put_nowait(2);
    ADD_FAILURE() << "put_nowait on a full queue returned";
  } catch (const spindle::Error& error) {
    EXPECT_NE(dynamic_cast<const Full*>(&error), nullptr);
    EXPECT_STREQ(error.what(), "queue is full");
  }
  queue.get();
  try {
    queue.get_nowait();
    ADD_FAILURE() << "get_nowait on an empty queue returned";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(dynamic_cast<const Empty*>(&error), nullptr);
    EXPECT_STREQ(error.what(), "queue is empty");
  }
  queue.shutdown();
  try {
    queue.get();
    ADD_FAILURE() << "get on a shut down, empty queue returned";
  } catch (const spindle::Error& error) {
    EXPECT_NE(dynamic_cast<const ShutDown*>(&error), nullptr);
    EXPECT_STREQ(error.what(), "queue is shut down");
  }
}

// ---- item ownership ------------------------------------------------------------------------

template <class Q>
void check_MoveOnlyItemsPassThroughEveryPutAndGet() {
  Q queue(6);
  auto a = std::make_unique<int>(1);
  queue.put(std::move(a));
  EXPECT_EQ(a, nullptr);  // moved into the queue
  queue.put(std::make_unique<int>(2));
  queue.put_nowait(std::make_unique<int>(3));
  queue.put(std::make_unique<int>(4), 1s);
  queue.put(std::make_unique<int>(5), 0s);
  queue.put(std::make_unique<int>(6), std::chrono::duration<double>(0.5));
  EXPECT_TRUE(queue.full());

  std::vector<int> got;
  got.push_back(*queue.get());
  got.push_back(*queue.get_nowait());
  got.push_back(*queue.get(1s));
  got.push_back(*queue.get(0s));
  got.push_back(*queue.get());
  got.push_back(*queue.get());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<int>{1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(, MoveOnlyItemsPassThroughEveryPutAndGet, std::unique_ptr<int>)

// Orders unique_ptrs by the value they point to.
struct ByPointee {
  bool operator()(const std::unique_ptr<int>& a, const std::unique_ptr<int>& b) const {
    return *a < *b;
  }
};

TEST(PriorityQueue, MoveOnlyItemsComeOutByTheirComparator) {
  PriorityQueue<std::unique_ptr<int>, ByPointee> queue;
  for (int item : {5, 3, 9, 1, 7})
    queue.put(std::make_unique<int>(item));
  std::vector<int> got;
  while (!queue.empty())
    got.push_back(*queue.get());
  EXPECT_EQ(got, (std::vector<int>{1, 3, 5, 7, 9}));
}

TEST(Queue, MoveOnlyItemsKeepTheirOrder) {
  Queue<std::unique_ptr<int>> queue;
  LifoQueue<std::unique_ptr<int>> stack;
  for (int item : {5, 3, 9}) {
    queue.put(std::make_unique<int>(item));
    stack.put(std::make_unique<int>(item));
  }
  EXPECT_EQ(*queue.get(), 5);
  EXPECT_EQ(*queue.get(), 3);
  EXPECT_EQ(*queue.get(), 9);
  EXPECT_EQ(*stack.get(), 9);
  EXPECT_EQ(*stack.get(), 3);
  EXPECT_EQ(*stack.get(), 5);
}

template <class Q>
void check_PutOfAnLvalueCopiesTheItem() {
  Q queue;
  const std::string item = "a long enough string to live on the heap, not in the SSO buffer";
  queue.put(item);
  queue.put_nowait(item);
  queue.put(item, 1s);
  EXPECT_EQ(item, "a long enough string to live on the heap, not in the SSO buffer");
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(queue.get(), item);
}
QUEUE_KINDS_TEST(, PutOfAnLvalueCopiesTheItem, std::string)

template <class Q>
void check_FailedPutNowaitLeavesAMoveOnlyItemWithTheCaller() {
  Q queue(1);
  queue.put(std::make_unique<int>(1));
  auto item = std::make_unique<int>(42);
  int* const address = item.get();
  EXPECT_THROW(queue.put_nowait(std::move(item)), Full);
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(item.get(), address);
  EXPECT_EQ(*item, 42);
  EXPECT_EQ(queue.qsize(), 1u);
}
QUEUE_KINDS_TEST(, FailedPutNowaitLeavesAMoveOnlyItemWithTheCaller, std::unique_ptr<int>)

// CPython's test_references: once get() has returned an item, the queue keeps no hold on it.
template <class Q>
void check_GetLetsGoOfTheItem() {
  Q queue;
  auto item = std::make_shared<int>(7);
  queue.put(item);
  EXPECT_EQ(item.use_count(), 2);
  {
    auto got = queue.get();
    EXPECT_EQ(got, item);
  }
  EXPECT_EQ(item.use_count(), 1);
}
QUEUE_KINDS_TEST(, GetLetsGoOfTheItem, std::shared_ptr<int>)

template <class Q>
void check_DestroyingTheQueueDestroysTheItemsLeft() {
  auto item = std::make_shared<int>(7);
  {
    Q queue;
    for (int i = 0; i < 10; ++i)
      queue.put(item);
    EXPECT_EQ(item.use_count(), 11);
  }
  EXPECT_EQ(item.use_count(), 1);
}
QUEUE_KINDS_TEST(, DestroyingTheQueueDestroysTheItemsLeft, std::shared_ptr<int>)

// ---- blocking put and get ------------------------------------------------------------------

// The item the getter receives is put only after it started: get() must have waited for it.
template <class Q>
void check_BlockingGetReturnsAnItemPutLater() {
  Q queue(1);
  int got = -1;
  Threads getter;
  getter.start([&] { got = queue.get(); });
  queue.put(7);
  getter.join();
  EXPECT_EQ(got, 7);
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(, BlockingGetReturnsAnItemPutLater, int)

// The putter's item cannot enter before the first item leaves, whatever the timing.
template <class Q>
void check_BlockingPutWaitsForRoom() {
  Q queue(1);
  queue.put(1);
  Threads putter;
  putter.start([&] { queue.put(2); });
  EXPECT_EQ(queue.get(), 1);
  EXPECT_EQ(queue.get(), 2);  // waits for the putter if it has not put yet
  putter.join();
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(, BlockingPutWaitsForRoom, int)

template <class Q>
void check_BlockedGettersEachReceiveOneItem() {
  constexpr std::size_t kGetters = 8;
  Q queue;
  std::vector<int> got(kGetters, -1);
  Threads getters;
  getters.start_n(kGetters, [&](std::size_t index) { got[index] = queue.get(); });
  for (int item = 0; item < static_cast<int>(kGetters); ++item)
    queue.put(item);
  getters.join();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(, BlockedGettersEachReceiveOneItem, int)

template <class Q>
void check_BlockedPuttersAllGetThroughAsRoomIsMade() {
  constexpr std::size_t kPutters = 8;
  Q queue(2);
  Threads putters;
  putters.start_n(kPutters, [&](std::size_t index) { queue.put(static_cast<int>(index)); });
  std::vector<int> got;
  for (std::size_t i = 0; i < kPutters; ++i)
    got.push_back(queue.get());
  putters.join();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_TRUE(queue.empty());
}
QUEUE_KINDS_TEST(, BlockedPuttersAllGetThroughAsRoomIsMade, int)

TEST(Queue, OneProducerAndOneConsumerKeepTheOrder) {
  Queue<int> queue(3);
  std::vector<int> got;
  Threads consumer;
  consumer.start([&] {
    for (int i = 0; i < 2000; ++i)
      got.push_back(queue.get());
  });
  for (int i = 0; i < 2000; ++i)
    queue.put(i);
  consumer.join();
  std::vector<int> expected(2000);
  for (int i = 0; i < 2000; ++i)
    expected[i] = i;
  EXPECT_EQ(got, expected);
}

}  // namespace
