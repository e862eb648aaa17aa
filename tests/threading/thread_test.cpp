#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <latch>
#include <memory>
#include <thread>

#include "spindle/threading.hpp"

namespace {

using namespace std::chrono_literals;
using spindle::threading::Event;
using spindle::threading::Thread;
using spindle::threading::ThreadOptions;
namespace threading = spindle::threading;

TEST(Thread, TargetFormRunsTargetWithArguments) {
  int result = 0;
  Thread thread([&result](int a, int b) { result = a + b; }, 2, 3);
  thread.start();
  thread.join();
  EXPECT_EQ(result, 5);
}

TEST(Thread, ArgumentsAreCopiedUnlessWrappedInRef) {
  int shared = 1;
  Thread copying(
      [](int value) {
        value = 99;
        EXPECT_EQ(value, 99);
      },
      shared);
  Thread referencing([](int& value) { value = 42; }, std::ref(shared));
  copying.start();
  copying.join();
  EXPECT_EQ(shared, 1);
  referencing.start();
  referencing.join();
  EXPECT_EQ(shared, 42);
}

TEST(Thread, MoveOnlyArgumentsAreMovedIntoTheThread) {
  int seen = 0;
  Thread thread([&seen](std::unique_ptr<int> value) { seen = *value; }, std::make_unique<int>(7));
  thread.start();
  thread.join();
  EXPECT_EQ(seen, 7);
}

TEST(Thread, MemberFunctionTargetIsInvoked) {
  struct Counter {
    int value = 0;
    void add(int n) { value += n; }
  } counter;
  Thread thread(&Counter::add, &counter, 4);
  thread.start();
  thread.join();
  EXPECT_EQ(counter.value, 4);
}

class StoringThread : public Thread {
 public:
  int result = 0;

 protected:
  void run() override { result = 6 * 7; }
};

TEST(Thread, SubclassFormRunsOverriddenRun) {
  StoringThread thread;
  thread.start();
  thread.join();
  EXPECT_EQ(thread.result, 42);
}

TEST(Thread, DefaultNameIsThreadNumber) {
  Thread thread([] {});
  EXPECT_EQ(thread.name().rfind("Thread-", 0), 0u) << thread.name();
}

TEST(Thread, NameCanBeGivenAndChanged) {
  Thread thread(ThreadOptions{.name = "worker"}, [] {});
  EXPECT_EQ(thread.name(), "worker");
  thread.set_name("renamed");
  EXPECT_EQ(thread.name(), "renamed");
}

TEST(Thread, NameIsSeenByCurrentThreadInside) {
  std::string seen;
  Thread thread(ThreadOptions{.name = "inside"},
                [&seen] { seen = threading::current_thread().name(); });
  thread.start();
  thread.join();
  EXPECT_EQ(seen, "inside");
}

TEST(Thread, DaemonIsInheritedFromTheCreatingThread) {
  Thread from_main([] {});
  EXPECT_FALSE(from_main.daemon());
  bool child_daemon = false;
  Thread daemon(ThreadOptions{.daemon = true}, [&child_daemon] {
    Thread child([] {});
    child_daemon = child.daemon();
  });
  daemon.start();
  daemon.join();
  EXPECT_TRUE(child_daemon);
}

TEST(Thread, SetDaemonAfterStartThrowsLogicError) {
  Event release;
  Thread thread([&release] { release.wait(); });
  thread.set_daemon(true);
  EXPECT_TRUE(thread.daemon());
  thread.start();
  EXPECT_THROW(thread.set_daemon(false), std::logic_error);
  release.set();
  thread.join();
}

TEST(Thread, StartingTwiceThrowsLogicError) {
  Thread thread([] {});
  thread.start();
  EXPECT_THROW(thread.start(), std::logic_error);
  thread.join();
  EXPECT_THROW(thread.start(), std::logic_error);
}

TEST(Thread, JoinBeforeStartThrowsLogicError) {
  Thread thread([] {});
  EXPECT_THROW(thread.join(), std::logic_error);
  EXPECT_THROW(thread.join(1ms), std::logic_error);
}

TEST(Thread, JoinFromTheThreadItselfThrowsLogicError) {
  bool threw = false;
  Thread* self = nullptr;
  Event ready;
  Thread thread([&] {
    ready.wait();
    try {
      self->join();
    } catch (const std::logic_error&) {
      threw = true;
    }
  });
  self = &thread;
  thread.start();
  ready.set();
  thread.join();
  EXPECT_TRUE(threw);
}

TEST(Thread, JoinWithTimeoutReturnsFalseWhileRunningAndTrueAfter) {
  Event release;
  Thread thread([&release] { release.wait(); });
  thread.start();
  EXPECT_FALSE(thread.join(10ms));
  EXPECT_TRUE(thread.is_alive());
  release.set();
  EXPECT_TRUE(thread.join(30s));
  EXPECT_FALSE(thread.is_alive());
}

TEST(Thread, JoinWithNegativeTimeoutThrowsInvalidArgument) {
  Thread thread([] {});
  thread.start();
  EXPECT_THROW(thread.join(-1ms), std::invalid_argument);
  thread.join();
}

TEST(Thread, IsAliveOnlyWhileRunning) {
  Event release;
  Thread thread([&release] { release.wait(); });
  EXPECT_FALSE(thread.is_alive());
  thread.start();
  EXPECT_TRUE(thread.is_alive());
  release.set();
  thread.join();
  EXPECT_FALSE(thread.is_alive());
}

TEST(Thread, IdentAndNativeIdAreEmptyBeforeStartAndMatchInside) {
  std::uint64_t ident_inside = 0;
  long native_inside = 0;
  Thread thread([&] {
    ident_inside = threading::get_ident();
    native_inside = threading::get_native_id();
  });
  EXPECT_FALSE(thread.ident().has_value());
  EXPECT_FALSE(thread.native_id().has_value());
  thread.start();
  thread.join();
  ASSERT_TRUE(thread.ident().has_value());
  ASSERT_TRUE(thread.native_id().has_value());
  EXPECT_EQ(*thread.ident(), ident_inside);
  EXPECT_EQ(*thread.native_id(), native_inside);
  EXPECT_NE(*thread.ident(), threading::get_ident());
}

TEST(Thread, CurrentThreadInsideIsTheThreadObject) {
  Thread* seen = nullptr;
  Thread thread([&seen] { seen = &threading::current_thread(); });
  thread.start();
  thread.join();
  EXPECT_EQ(seen, &thread);
}

TEST(Thread, TenThreadsSleepingOneSecondFinishTogether) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<Thread>> threads;
  for (int i = 0; i < 10; ++i) {
    threads.push_back(std::make_unique<Thread>([] { std::this_thread::sleep_for(1s); }));
    threads.back()->start();
  }
  for (auto& thread : threads)
    thread->join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(Thread, DestroyingARunningNonDaemonThreadJoinsIt) {
  std::atomic<bool> finished{false};
  Event started;
  {
    Thread thread([&] {
      started.wait();
      finished = true;
    });
    thread.start();
    started.set();
  }
  EXPECT_TRUE(finished);
}

TEST(Thread, DestroyingARunningDaemonThreadLetsItRunOn) {
  Event release;
  Event done;
  std::string name_seen;
  {
    Thread thread(ThreadOptions{.name = "orphan", .daemon = true}, [&] {
      release.wait();
      name_seen = threading::current_thread().name();
      done.set();
    });
    thread.start();
  }
  release.set();
  ASSERT_TRUE(done.wait(30s));
  EXPECT_EQ(name_seen, "orphan");
}

TEST(Thread, MainThreadIsNamedMainThreadAndIsCurrentInMain) {
  EXPECT_EQ(threading::main_thread().name(), "MainThread");
  EXPECT_EQ(&threading::main_thread(), &threading::current_thread());
  EXPECT_FALSE(threading::main_thread().daemon());
  EXPECT_TRUE(threading::main_thread().is_alive());
  EXPECT_EQ(threading::main_thread().ident(), threading::get_ident());
}

TEST(Thread, MainThreadSeenFromAnotherThreadIsTheSameObject) {
  Thread* seen = nullptr;
  Thread thread([&seen] { seen = &threading::main_thread(); });
  thread.start();
  thread.join();
  EXPECT_EQ(seen, &threading::main_thread());
}

TEST(Thread, ForeignThreadGetsADaemonDummyThread) {
  std::string name;
  bool daemon = false;
  bool alive = false;
  bool listed = false;
  std::thread foreign([&] {
    Thread& self = threading::current_thread();
    name = self.name();
    daemon = self.daemon();
    alive = self.is_alive();
    const auto all = threading::enumerate();
    listed = std::find(all.begin(), all.end(), &self) != all.end();
    EXPECT_EQ(&self, &threading::current_thread());
    EXPECT_THROW(self.join(), std::logic_error);
  });
  foreign.join();
  EXPECT_EQ(name.rfind("Dummy-", 0), 0u) << name;
  EXPECT_TRUE(daemon);
  EXPECT_TRUE(alive);
  EXPECT_TRUE(listed);
}

TEST(Thread, ActiveCountAndEnumerateIncludeRunningThreads) {
  const std::size_t before = threading::active_count();
  Event release;
  std::latch started(3);
  std::vector<std::unique_ptr<Thread>> threads;
  for (int i = 0; i < 3; ++i) {
    threads.push_back(std::make_unique<Thread>([&] {
      started.count_down();
      release.wait();
    }));
    threads.back()->start();
  }
  started.wait();
  EXPECT_EQ(threading::active_count(), before + 3);
  const auto all = threading::enumerate();
  EXPECT_EQ(all.size(), before + 3);
  for (auto& thread : threads) {
    EXPECT_NE(std::find(all.begin(), all.end(), thread.get()), all.end());
  }
  EXPECT_NE(std::find(all.begin(), all.end(), &threading::main_thread()), all.end());
  release.set();
  for (auto& thread : threads)
    thread->join();
  EXPECT_EQ(threading::active_count(), before);
}

TEST(Thread, StdScopedLockAcceptsEveryLockType) {
  threading::Lock lock;
  threading::RLock rlock;
  threading::Semaphore semaphore(1);
  threading::Condition condition;
  {
    std::scoped_lock all(lock, rlock, semaphore, condition);
    EXPECT_TRUE(lock.locked());
    EXPECT_TRUE(rlock.locked());
    EXPECT_EQ(semaphore.value(), 0);
  }
  EXPECT_FALSE(lock.locked());
  EXPECT_FALSE(rlock.locked());
  EXPECT_EQ(semaphore.value(), 1);
}

}  // namespace
