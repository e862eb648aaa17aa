#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "spindle/threading.hpp"

namespace {

using namespace std::chrono_literals;
namespace threading = spindle::threading;
using threading::BoundedSemaphore;
using threading::Semaphore;
using threading::Thread;

TEST(Semaphore, NegativeInitialValueThrowsInvalidArgument) {
  EXPECT_THROW(Semaphore(-1), std::invalid_argument);
  EXPECT_THROW(BoundedSemaphore(-1), std::invalid_argument);
}

TEST(Semaphore, AcquireDecrementsAndReleaseIncrements) {
  Semaphore semaphore(2);
  semaphore.acquire();
  EXPECT_EQ(semaphore.value(), 1);
  semaphore.acquire();
  EXPECT_FALSE(semaphore.acquire(0s));
  semaphore.release(2);
  EXPECT_EQ(semaphore.value(), 2);
}

TEST(Semaphore, AcquireTimesOutAtZero) {
  Semaphore semaphore(0);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(semaphore.acquire(30ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
}

TEST(Semaphore, ReleaseOfLessThanOneThrowsInvalidArgument) {
  Semaphore semaphore;
  EXPECT_THROW(semaphore.release(0), std::invalid_argument);
}

TEST(Semaphore, ReleaseWakesABlockedAcquirer) {
  Semaphore semaphore(0);
  bool acquired = false;
  Thread waiter([&] {
    semaphore.acquire();
    acquired = true;
  });
  waiter.start();
  semaphore.release();
  waiter.join();
  EXPECT_TRUE(acquired);
}

TEST(Semaphore, ReleaseOfNWakesNWaiters) {
  Semaphore semaphore(0);
  std::atomic<int> acquired{0};
  std::vector<std::unique_ptr<Thread>> threads;
  for (int i = 0; i < 3; ++i) {
    threads.push_back(std::make_unique<Thread>([&] {
      semaphore.acquire();
      ++acquired;
    }));
    threads.back()->start();
  }
  semaphore.release(3);
  for (auto& thread : threads)
    thread->join();
  EXPECT_EQ(acquired.load(), 3);
  EXPECT_EQ(semaphore.value(), 0);
}

TEST(Semaphore, LimitsHowManyRunAtOnce) {
  Semaphore semaphore(3);
  std::atomic<int> inside{0};
  std::atomic<int> most{0};
  std::vector<std::unique_ptr<Thread>> threads;
  for (int i = 0; i < 8; ++i) {
    threads.push_back(std::make_unique<Thread>([&] {
      for (int round = 0; round < 200; ++round) {
        std::scoped_lock guard(semaphore);
        const int now = ++inside;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        --inside;
      }
    }));
    threads.back()->start();
  }
  for (auto& thread : threads)
    thread->join();
  EXPECT_LE(most.load(), 3);
  EXPECT_EQ(semaphore.value(), 3);
}

TEST(BoundedSemaphore, ReleaseAboveTheInitialValueThrowsInvalidArgument) {
  BoundedSemaphore semaphore(2);
  EXPECT_THROW(semaphore.release(), std::invalid_argument);
  semaphore.acquire();
  semaphore.release();
  semaphore.acquire();
  EXPECT_THROW(semaphore.release(2), std::invalid_argument);
  EXPECT_EQ(semaphore.value(), 1);
}

TEST(BoundedSemaphore, ThroughABaseReferenceStillChecksTheBound) {
  BoundedSemaphore bounded(1);
  Semaphore& base = bounded;
  EXPECT_THROW(base.release(), std::invalid_argument);
}

}  // namespace
