#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <vector>

#include "spindle/threading.hpp"

namespace {

using namespace std::chrono_literals;
namespace threading = spindle::threading;
using threading::Event;
using threading::Lock;
using threading::RLock;
using threading::Thread;

TEST(Lock, AcquireLocksAndReleaseUnlocks) {
  Lock lock;
  EXPECT_FALSE(lock.locked());
  lock.acquire();
  EXPECT_TRUE(lock.locked());
  lock.release();
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, ReleasingAnUnlockedLockThrowsLogicError) {
  Lock lock;
  EXPECT_THROW(lock.release(), std::logic_error);
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, ZeroTimeoutDoesNotBlock) {
  Lock lock;
  EXPECT_TRUE(lock.acquire(0s));
  EXPECT_FALSE(lock.acquire(0s));
  EXPECT_FALSE(lock.try_lock());
  lock.release();
}

TEST(Lock, AcquireTimesOutWhileHeld) {
  Lock lock;
  lock.acquire();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(lock.acquire(50ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
  lock.release();
}

TEST(Lock, NegativeTimeoutThrowsInvalidArgument) {
  Lock lock;
  EXPECT_THROW(lock.acquire(-1ms), std::invalid_argument);
}

TEST(Lock, AnotherThreadMayReleaseIt) {
  Lock lock;
  lock.acquire();
  Thread releaser([&lock] { lock.release(); });
  releaser.start();
  releaser.join();
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, WaiterAcquiresOnceReleased) {
  Lock lock;
  lock.acquire();
  Event acquired;
  Thread waiter([&] {
    lock.acquire();
    acquired.set();
    lock.release();
  });
  waiter.start();
  EXPECT_FALSE(acquired.is_set());
  lock.release();
  EXPECT_TRUE(acquired.wait(30s));
  waiter.join();
}

TEST(Lock, TimedWaiterAcquiresOnceReleased) {
  Lock lock;
  lock.acquire();
  bool acquired = false;
  Thread waiter([&] {
    acquired = lock.acquire(30s);
    if (acquired) lock.release();
  });
  waiter.start();
  lock.release();
  waiter.join();
  EXPECT_TRUE(acquired);
}

TEST(Lock, ProvidesMutualExclusion) {
  Lock lock;
  long counter = 0;
  std::vector<std::unique_ptr<Thread>> threads;
  for (int t = 0; t < 4; ++t) {
    threads.push_back(std::make_unique<Thread>([&] {
      for (int i = 0; i < 50'000; ++i) {
        std::scoped_lock guard(lock);
        ++counter;
      }
    }));
    threads.back()->start();
  }
  for (auto& thread : threads)
    thread->join();
  EXPECT_EQ(counter, 200'000);
}

TEST(Lock, IsATimedLockable) {
  Lock lock;
  std::unique_lock guard(lock, std::defer_lock);
  EXPECT_TRUE(guard.try_lock_for(1ms));
  Thread other([&lock] {
    EXPECT_FALSE(lock.try_lock_for(1ms));
    EXPECT_FALSE(lock.try_lock_until(std::chrono::steady_clock::now() + 1ms));
  });
  other.start();
  other.join();
}

TEST(RLock, OwnerMayAcquireAgain) {
  RLock lock;
  lock.acquire();
  lock.acquire();
  EXPECT_TRUE(lock.acquire(0s));
  lock.release();
  lock.release();
  EXPECT_TRUE(lock.locked());
  lock.release();
  EXPECT_FALSE(lock.locked());
}

TEST(RLock, ReleaseByANonOwnerThrowsLogicError) {
  RLock lock;
  lock.acquire();
  bool threw = false;
  Thread other([&] {
    try {
      lock.release();
    } catch (const std::logic_error&) {
      threw = true;
    }
  });
  other.start();
  other.join();
  EXPECT_TRUE(threw);
  EXPECT_TRUE(lock.locked());
  lock.release();
}

TEST(RLock, ReleasingAnUnownedRLockThrowsLogicError) {
  RLock lock;
  EXPECT_THROW(lock.release(), std::logic_error);
}

TEST(RLock, OtherThreadsWaitUntilEveryLevelIsReleased) {
  RLock lock;
  lock.acquire();
  lock.acquire();
  bool got_while_held = true;
  Thread probe([&] { got_while_held = lock.acquire(0s); });
  probe.start();
  probe.join();
  EXPECT_FALSE(got_while_held);
  lock.release();
  Thread probe_again([&] { got_while_held = lock.acquire(0s); });
  probe_again.start();
  probe_again.join();
  EXPECT_FALSE(got_while_held);
  lock.release();
  bool acquired = false;
  Thread acquirer([&] {
    acquired = lock.acquire(30s);
    lock.release();
  });
  acquirer.start();
  acquirer.join();
  EXPECT_TRUE(acquired);
}

TEST(RLock, WorksWithStdUniqueLockRecursively) {
  RLock lock;
  std::unique_lock outer(lock);
  std::unique_lock inner(lock);
  EXPECT_TRUE(lock.locked());
}

}  // namespace
