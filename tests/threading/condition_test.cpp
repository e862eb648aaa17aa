#include <gtest/gtest.h>

#include <chrono>
#include <latch>
#include <memory>
#include <vector>

#include "spindle/threading.hpp"

namespace {

using namespace std::chrono_literals;
namespace threading = spindle::threading;
using threading::Condition;
using threading::Lock;
using threading::RLock;
using threading::Thread;

TEST(Condition, WaitWithoutTheLockThrowsLogicError) {
  Condition condition;
  EXPECT_THROW(condition.wait(), std::logic_error);
  Lock lock;
  Condition on_lock(lock);
  EXPECT_THROW(on_lock.wait(1ms), std::logic_error);
}

TEST(Condition, NotifyWithoutTheLockThrowsLogicError) {
  Condition condition;
  EXPECT_THROW(condition.notify(), std::logic_error);
  EXPECT_THROW(condition.notify_all(), std::logic_error);
}

TEST(Condition, WaitTimesOutReturningFalse) {
  Condition condition;
  std::scoped_lock guard(condition);
  EXPECT_FALSE(condition.wait(20ms));
}

// Waiters register under the condition's lock, so a notifier that takes the lock after
// `waiting` reached n knows every waiter is inside wait().
struct Waiters {
  Condition condition;
  int waiting = 0;
  int woken = 0;
  bool go = false;
  std::vector<std::unique_ptr<Thread>> threads;

  void start(int n) {
    for (int i = 0; i < n; ++i) {
      threads.push_back(std::make_unique<Thread>([this] {
        std::scoped_lock guard(condition);
        ++waiting;
        condition.notify_all();  // tell the test one more is waiting
        while (!go) {
          condition.wait();
          if (go) break;
        }
        ++woken;
      }));
      threads.back()->start();
    }
    std::scoped_lock guard(condition);
    condition.wait_for([&] { return waiting == n; });
  }
  void join() {
    for (auto& thread : threads)
      thread->join();
  }
};

TEST(Condition, NotifyAllWakesEveryWaiter) {
  Waiters waiters;
  waiters.start(4);
  {
    std::scoped_lock guard(waiters.condition);
    waiters.go = true;
    waiters.condition.notify_all();
  }
  waiters.join();
  EXPECT_EQ(waiters.woken, 4);
}

TEST(Condition, NotifyWakesAtMostNWaiters) {
  // Two conditions on one lock, as Python allows: waiters sleep on `wake`; they report to
  // the test on `report`, so reporting never wakes another waiter.
  RLock lock;
  Condition wake(lock);
  Condition report(lock);
  int waiting = 0;
  int woken = 0;
  std::vector<std::unique_ptr<Thread>> threads;
  for (int i = 0; i < 3; ++i) {
    threads.push_back(std::make_unique<Thread>([&] {
      std::scoped_lock guard(lock);
      ++waiting;
      report.notify_all();
      wake.wait();  // no spurious wake-ups: returns only when notified
      ++woken;
      report.notify_all();
    }));
    threads.back()->start();
  }
  std::unique_lock guard(lock);
  report.wait_for([&] { return waiting == 3; });
  wake.notify(2);
  report.wait_for([&] { return woken == 2; });
  EXPECT_FALSE(report.wait_for([&] { return woken > 2; }, 50ms));
  wake.notify(1);
  report.wait_for([&] { return woken == 3; });
  guard.unlock();
  for (auto& thread : threads)
    thread->join();
  EXPECT_EQ(woken, 3);
}

TEST(Condition, WaitForReturnsWhenThePredicateHolds) {
  Condition condition;
  int value = 0;
  Thread setter([&] {
    std::scoped_lock guard(condition);
    value = 3;
    condition.notify_all();
  });
  std::scoped_lock guard(condition);
  setter.start();
  EXPECT_TRUE(condition.wait_for([&] { return value == 3; }));
  setter.join();
}

TEST(Condition, WaitForWithTimeoutReturnsTheLastPredicateValue) {
  Condition condition;
  std::scoped_lock guard(condition);
  EXPECT_FALSE(condition.wait_for([] { return false; }, 20ms));
  EXPECT_TRUE(condition.wait_for([] { return true; }, 0s));
}

TEST(Condition, WaitReleasesEveryLevelOfAnRLockAndRestoresThem) {
  RLock lock;
  Condition condition(lock);
  lock.acquire();
  lock.acquire();
  bool other_got_lock = false;
  Thread other([&] {
    std::scoped_lock guard(condition);  // possible only if wait released both levels
    other_got_lock = true;
    condition.notify();
  });
  other.start();
  while (!other_got_lock)
    condition.wait();
  other.join();
  // Both levels are held again: two releases succeed, a third does not.
  lock.release();
  lock.release();
  EXPECT_THROW(lock.release(), std::logic_error);
}

TEST(Condition, WorksOnAPlainLock) {
  Lock lock;
  Condition condition(lock);
  bool ready = false;
  Thread setter([&] {
    std::scoped_lock guard(condition);
    ready = true;
    condition.notify();
  });
  std::scoped_lock guard(lock);
  setter.start();
  EXPECT_TRUE(condition.wait_for([&] { return ready; }, 30s));
  setter.join();
}

TEST(Condition, NegativeTimeoutThrowsInvalidArgument) {
  Condition condition;
  std::scoped_lock guard(condition);
  EXPECT_THROW(condition.wait(-1s), std::invalid_argument);
}

}  // namespace
