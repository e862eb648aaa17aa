// Lock, Event, Condition, Semaphore, BoundedSemaphore, Barrier (CPython's test_locks.py
// behaviours).
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
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

TEST(Lock, AcquireReleaseAndLocked) {
  auto main = []() -> Task<> {
    asyncio::Lock lock;
    EXPECT_FALSE(lock.locked());
    co_await lock.acquire();
    EXPECT_TRUE(lock.locked());
    lock.release();
    EXPECT_FALSE(lock.locked());
    EXPECT_THROW(lock.release(), std::logic_error);
  };
  asyncio::run(main());
}

TEST(Lock, WaitersAcquireInFifoOrder) {
  auto main = []() -> Task<> {
    asyncio::Lock lock;
    std::vector<int> order;
    co_await lock.acquire();
    auto worker = [&](int id) -> Task<> {
      auto held = co_await lock.scoped();
      order.push_back(id);
    };
    auto a = asyncio::create_task(worker(1));
    auto b = asyncio::create_task(worker(2));
    auto c = asyncio::create_task(worker(3));
    co_await yield_times(2);
    lock.release();
    co_await asyncio::gather(a, b, c);
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
    EXPECT_FALSE(lock.locked());
  };
  asyncio::run(main());
}

TEST(Lock, CancelledWaiterDoesNotGetTheLock) {
  auto main = []() -> Task<> {
    asyncio::Lock lock;
    co_await lock.acquire();
    auto waiter = asyncio::create_task(lock.acquire());
    co_await yield_times(1);
    waiter.cancel();
    EXPECT_THROW(co_await waiter, asyncio::CancelledError);
    lock.release();
    EXPECT_FALSE(lock.locked());
  };
  asyncio::run(main());
}

TEST(Lock, WokenWaiterCancelledPassesTheLockOn) {
  auto main = []() -> Task<> {
    asyncio::Lock lock;
    co_await lock.acquire();
    auto first = asyncio::create_task(lock.acquire());
    auto second = asyncio::create_task(lock.acquire());
    co_await yield_times(1);
    lock.release();  // wakes `first`
    first.cancel();  // before it runs
    EXPECT_THROW(co_await first, asyncio::CancelledError);
    co_await second;
    EXPECT_TRUE(lock.locked());
    lock.release();
  };
  asyncio::run(main());
}

TEST(Lock, NoBargingPastAWokenWaiter) {
  auto main = []() -> Task<> {
    asyncio::Lock lock;
    std::vector<std::string> order;
    co_await lock.acquire();
    // A named lambda: a coroutine lambda's captures live in the closure, which must
    // outlive the task.
    auto waiter_body = [&]() -> Task<> {
      co_await lock.acquire();
      order.push_back("waiter");
      lock.release();
    };
    auto waiter = asyncio::create_task(waiter_body());
    co_await yield_times(1);
    lock.release();
    co_await lock.acquire();  // queued behind the woken waiter
    order.push_back("main");
    lock.release();
    co_await waiter;
    EXPECT_EQ(order, (std::vector<std::string>{"waiter", "main"}));
  };
  asyncio::run(main());
}

TEST(Event, WaitSetClear) {
  auto main = []() -> Task<> {
    asyncio::Event event;
    int woken = 0;
    auto waiter = [&]() -> Task<> {
      co_await event.wait();
      ++woken;
    };
    auto a = asyncio::create_task(waiter());
    auto b = asyncio::create_task(waiter());
    co_await yield_times(1);
    EXPECT_EQ(woken, 0);
    EXPECT_FALSE(event.is_set());
    event.set();
    EXPECT_TRUE(event.is_set());
    co_await asyncio::gather(a, b);
    EXPECT_EQ(woken, 2);
    co_await event.wait();  // already set: no suspension
    event.clear();
    EXPECT_FALSE(event.is_set());
  };
  asyncio::run(main());
}

TEST(Event, CancelledWaiterLeaves) {
  auto main = []() -> Task<> {
    asyncio::Event event;
    auto waiter = asyncio::create_task(event.wait());
    co_await yield_times(1);
    waiter.cancel();
    EXPECT_THROW(co_await waiter, asyncio::CancelledError);
    event.set();
  };
  asyncio::run(main());
}

TEST(Condition, WaitNotifyReacquiresTheLock) {
  auto main = []() -> Task<> {
    asyncio::Condition condition;
    std::vector<int> seen;
    auto waiter = [&](int id) -> Task<> {
      auto held = co_await condition.scoped();
      co_await condition.wait();
      EXPECT_TRUE(condition.locked());
      seen.push_back(id);
    };
    auto a = asyncio::create_task(waiter(1));
    auto b = asyncio::create_task(waiter(2));
    co_await yield_times(2);
    {
      auto held = co_await condition.scoped();
      condition.notify(1);
    }
    co_await yield_times(3);
    EXPECT_EQ(seen, std::vector<int>{1});
    {
      auto held = co_await condition.scoped();
      condition.notify_all();
    }
    co_await asyncio::gather(a, b);
    EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  };
  asyncio::run(main());
}

TEST(Condition, WaitWithoutTheLockIsLogicError) {
  auto main = []() -> Task<> {
    asyncio::Condition condition;
    EXPECT_THROW(co_await condition.wait(), std::logic_error);
    EXPECT_THROW(condition.notify(), std::logic_error);
  };
  asyncio::run(main());
}

TEST(Condition, WaitForPredicate) {
  auto main = []() -> Task<> {
    asyncio::Condition condition;
    int value = 0;
    // A named lambda: a coroutine lambda's captures live in the closure, which must
    // outlive the task.
    auto waiter_body = [&]() -> Task<bool> {
      auto held = co_await condition.scoped();
      co_return co_await condition.wait_for([&] { return value == 3; });
    };
    auto waiter = asyncio::create_task(waiter_body());
    for (int i = 1; i <= 3; ++i) {
      co_await yield_times(1);
      auto held = co_await condition.scoped();
      value = i;
      condition.notify_all();
    }
    EXPECT_TRUE(co_await waiter);
  };
  asyncio::run(main());
}

TEST(Condition, CancelledWaitStillReacquiresTheLock) {
  auto main = []() -> Task<> {
    asyncio::Condition condition;
    bool locked_after_cancel = false;
    // A named lambda: a coroutine lambda's captures live in the closure, which must
    // outlive the task.
    auto waiter_body = [&]() -> Task<> {
      co_await condition.acquire();
      try {
        co_await condition.wait();
      } catch (const asyncio::CancelledError&) {
        locked_after_cancel = condition.locked();
        condition.release();
        throw;
      }
    };
    auto waiter = asyncio::create_task(waiter_body());
    co_await yield_times(2);
    waiter.cancel();
    EXPECT_THROW(co_await waiter, asyncio::CancelledError);
    EXPECT_TRUE(locked_after_cancel);
    EXPECT_FALSE(condition.locked());
  };
  asyncio::run(main());
}

TEST(Condition, SharedLock) {
  auto main = []() -> Task<> {
    asyncio::Lock lock;
    asyncio::Condition condition(lock);
    co_await lock.acquire();
    EXPECT_TRUE(condition.locked());
    condition.release();
    EXPECT_FALSE(lock.locked());
  };
  asyncio::run(main());
}

TEST(Semaphore, LimitsConcurrency) {
  auto main = []() -> Task<> {
    asyncio::Semaphore semaphore(2);
    int inside = 0, most = 0;
    auto worker = [&]() -> Task<> {
      auto held = co_await semaphore.scoped();
      ++inside;
      most = std::max(most, inside);
      co_await asyncio::sleep(1ms);
      --inside;
    };
    std::vector<Task<>> workers;
    for (int i = 0; i < 6; ++i)
      workers.push_back(worker());
    co_await asyncio::gather(std::move(workers));
    EXPECT_EQ(most, 2);
    EXPECT_FALSE(semaphore.locked());
  };
  asyncio::run(main());
}

TEST(Semaphore, LockedAndRelease) {
  auto main = []() -> Task<> {
    asyncio::Semaphore semaphore(1);
    co_await semaphore.acquire();
    EXPECT_TRUE(semaphore.locked());
    semaphore.release();
    EXPECT_FALSE(semaphore.locked());
    semaphore.release();  // an unbounded semaphore may grow
    co_await semaphore.acquire();
    co_await semaphore.acquire();
    EXPECT_TRUE(semaphore.locked());
  };
  asyncio::run(main());
  EXPECT_THROW(asyncio::Semaphore(-1), std::invalid_argument);
}

TEST(Semaphore, CancelledWokenWaiterGivesTheUnitBack) {
  auto main = []() -> Task<> {
    asyncio::Semaphore semaphore(0);
    auto first = asyncio::create_task(semaphore.acquire());
    auto second = asyncio::create_task(semaphore.acquire());
    co_await yield_times(1);
    semaphore.release();  // chooses `first`
    first.cancel();
    EXPECT_THROW(co_await first, asyncio::CancelledError);
    co_await second;  // the unit went on to `second`
    EXPECT_TRUE(semaphore.locked());
  };
  asyncio::run(main());
}

TEST(BoundedSemaphore, ReleaseTooManyTimesIsInvalid) {
  auto main = []() -> Task<> {
    asyncio::BoundedSemaphore semaphore(1);
    EXPECT_THROW(semaphore.release(), std::invalid_argument);
    co_await semaphore.acquire();
    semaphore.release();
  };
  asyncio::run(main());
}

TEST(Barrier, AllPartiesPassWithDistinctIndices) {
  auto main = []() -> Task<> {
    asyncio::Barrier barrier(3);
    std::vector<Task<std::size_t>> waiters;
    for (int i = 0; i < 3; ++i)
      waiters.push_back(barrier.wait());
    auto indices = co_await asyncio::gather(std::move(waiters));
    std::sort(indices.begin(), indices.end());
    EXPECT_EQ(indices, (std::vector<std::size_t>{0, 1, 2}));
    EXPECT_EQ(barrier.n_waiting(), 0u);
    EXPECT_EQ(barrier.parties(), 3u);
    // reusable
    std::vector<Task<std::size_t>> again;
    for (int i = 0; i < 3; ++i)
      again.push_back(barrier.wait());
    co_await asyncio::gather(std::move(again));
  };
  asyncio::run(main());
}

TEST(Barrier, AbortBreaksWaiters) {
  auto main = []() -> Task<> {
    asyncio::Barrier barrier(3);
    auto a = asyncio::create_task(barrier.wait());
    co_await yield_times(2);
    EXPECT_EQ(barrier.n_waiting(), 1u);
    co_await barrier.abort();
    EXPECT_THROW(co_await a, asyncio::BrokenBarrierError);
    EXPECT_TRUE(barrier.broken());
    EXPECT_THROW(co_await barrier.wait(), asyncio::BrokenBarrierError);
  };
  asyncio::run(main());
}

TEST(Barrier, ResetBreaksCurrentWaitersThenWorks) {
  auto main = []() -> Task<> {
    asyncio::Barrier barrier(2);
    auto a = asyncio::create_task(barrier.wait());
    co_await yield_times(2);
    co_await barrier.reset();
    EXPECT_THROW(co_await a, asyncio::BrokenBarrierError);
    EXPECT_FALSE(barrier.broken());
    co_await asyncio::gather(barrier.wait(), barrier.wait());
  };
  asyncio::run(main());
  EXPECT_THROW(asyncio::Barrier(0), std::invalid_argument);
}

}  // namespace
