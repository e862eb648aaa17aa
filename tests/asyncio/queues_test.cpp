// Queue, LifoQueue, PriorityQueue (CPython's test_queues.py behaviours).
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "spindle/asyncio.hpp"

namespace {

namespace asyncio = spindle::asyncio;
using asyncio::Task;
using namespace std::chrono_literals;

Task<> yield_times(int n) {
  for (int i = 0; i < n; ++i)
    co_await asyncio::sleep(0s);
}

TEST(Queue, FifoOrderAndSizes) {
  auto main = []() -> Task<> {
    asyncio::Queue<int> queue;
    EXPECT_TRUE(queue.empty());
    EXPECT_FALSE(queue.full());
    for (int i = 0; i < 3; ++i)
      co_await queue.put(i);
    EXPECT_EQ(queue.qsize(), 3u);
    for (int i = 0; i < 3; ++i)
      EXPECT_EQ(co_await queue.get(), i);
    EXPECT_EQ(queue.maxsize(), 0u);
  };
  asyncio::run(main());
}

TEST(Queue, NowaitRaisesEmptyAndFull) {
  asyncio::Queue<int> queue(1);
  EXPECT_THROW(queue.get_nowait(), asyncio::QueueEmpty);
  queue.put_nowait(1);
  EXPECT_TRUE(queue.full());
  EXPECT_THROW(queue.put_nowait(2), asyncio::QueueFull);
  EXPECT_EQ(queue.get_nowait(), 1);
}

TEST(Queue, GetWaitsForPut) {
  auto main = []() -> Task<> {
    asyncio::Queue<std::string> queue;
    auto getter = asyncio::create_task(queue.get());
    co_await yield_times(1);
    EXPECT_FALSE(getter.done());
    queue.put_nowait("item");
    EXPECT_EQ(co_await getter, "item");
  };
  asyncio::run(main());
}

TEST(Queue, PutWaitsWhenFull) {
  auto main = []() -> Task<> {
    asyncio::Queue<int> queue(1);
    co_await queue.put(1);
    auto putter = asyncio::create_task(queue.put(2));
    co_await yield_times(1);
    EXPECT_FALSE(putter.done());
    EXPECT_EQ(co_await queue.get(), 1);
    co_await putter;
    EXPECT_EQ(co_await queue.get(), 2);
  };
  asyncio::run(main());
}

TEST(Queue, CancelledGetterLosesNothing) {
  auto main = []() -> Task<> {
    asyncio::Queue<int> queue;
    auto first = asyncio::create_task(queue.get());
    auto second = asyncio::create_task(queue.get());
    co_await yield_times(1);
    queue.put_nowait(7);  // wakes `first`
    first.cancel();
    EXPECT_THROW(co_await first, asyncio::CancelledError);
    EXPECT_EQ(co_await second, 7);
  };
  asyncio::run(main());
}

TEST(Queue, TaskDoneAndJoin) {
  auto main = []() -> Task<> {
    asyncio::Queue<int> queue;
    int processed = 0;
    for (int i = 0; i < 5; ++i)
      queue.put_nowait(i);
    // A named lambda: a coroutine lambda's captures live in the closure, which must
    // outlive the task.
    auto worker_body = [&]() -> Task<> {
      while (true) {
        (void)co_await queue.get();
        co_await asyncio::sleep(0s);
        ++processed;
        queue.task_done();
      }
    };
    auto worker = asyncio::create_task(worker_body());
    co_await queue.join();
    EXPECT_EQ(processed, 5);
    worker.cancel();
    EXPECT_THROW(co_await worker, asyncio::CancelledError);
    EXPECT_THROW(queue.task_done(), std::invalid_argument);
  };
  asyncio::run(main());
}

TEST(Queue, JoinOnEmptyQueueReturnsAtOnce) {
  auto main = []() -> Task<> {
    asyncio::Queue<int> queue;
    co_await queue.join();
  };
  asyncio::run(main());
}

TEST(Queue, ShutdownWakesGettersAndRejectsPuts) {
  auto main = []() -> Task<> {
    asyncio::Queue<int> queue;
    auto getter = asyncio::create_task(queue.get());
    co_await yield_times(1);
    queue.shutdown();
    EXPECT_THROW(co_await getter, asyncio::QueueShutDown);
    EXPECT_THROW(queue.put_nowait(1), asyncio::QueueShutDown);
    EXPECT_THROW(co_await queue.put(1), asyncio::QueueShutDown);
  };
  asyncio::run(main());
}

TEST(Queue, ShutdownKeepsItemsUnlessImmediate) {
  auto main = []() -> Task<> {
    asyncio::Queue<int> queue;
    queue.put_nowait(1);
    queue.put_nowait(2);
    queue.shutdown();
    EXPECT_EQ(co_await queue.get(), 1);
    asyncio::Queue<int> dropped;
    dropped.put_nowait(1);
    dropped.shutdown(true);
    EXPECT_TRUE(dropped.empty());
    EXPECT_THROW(co_await dropped.get(), asyncio::QueueShutDown);
    co_await dropped.join();  // immediate shutdown released join
  };
  asyncio::run(main());
}

TEST(Queue, ShutdownWakesBlockedPutters) {
  auto main = []() -> Task<> {
    asyncio::Queue<int> queue(1);
    queue.put_nowait(0);
    auto putter = asyncio::create_task(queue.put(1));
    co_await yield_times(1);
    queue.shutdown();
    EXPECT_THROW(co_await putter, asyncio::QueueShutDown);
  };
  asyncio::run(main());
}

TEST(LifoQueue, LastInFirstOut) {
  asyncio::LifoQueue<int> queue;
  for (int i = 0; i < 3; ++i)
    queue.put_nowait(i);
  EXPECT_EQ(queue.get_nowait(), 2);
  EXPECT_EQ(queue.get_nowait(), 1);
  EXPECT_EQ(queue.get_nowait(), 0);
}

TEST(PriorityQueue, SmallestFirst) {
  asyncio::PriorityQueue<std::pair<int, std::string>> queue;
  queue.put_nowait({3, "c"});
  queue.put_nowait({1, "a"});
  queue.put_nowait({2, "b"});
  EXPECT_EQ(queue.get_nowait().second, "a");
  EXPECT_EQ(queue.get_nowait().second, "b");
  EXPECT_EQ(queue.get_nowait().second, "c");
}

TEST(Queue, ProducersAndConsumers) {
  auto main = []() -> Task<> {
    asyncio::Queue<int> queue(4);
    long total = 0;
    auto producer = [&](int base) -> Task<> {
      for (int i = 0; i < 100; ++i)
        co_await queue.put(base + i);
    };
    auto consumer = [&]() -> Task<> {
      while (true) {
        total += co_await queue.get();
        queue.task_done();
      }
    };
    std::vector<Task<>> consumers;
    for (int i = 0; i < 3; ++i)
      consumers.push_back(asyncio::create_task(consumer()));
    co_await asyncio::gather(producer(0), producer(1000));
    co_await queue.join();
    for (auto& c : consumers)
      c.cancel();
    co_await asyncio::gather(asyncio::return_exceptions, consumers);
    EXPECT_EQ(total, 2 * 4950 + 100 * 1000);
  };
  asyncio::run(main());
}

}  // namespace
