// What is particular to spindle::futures::ThreadPoolExecutor: max_workers, worker names and
// reuse, the initializer and the broken pool, tasks that wait on their own pool, idleness,
// and misuse of a submitted future's set_* methods.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "futures_test_support.hpp"
#include "spindle/futures.hpp"
#include "spindle/threading.hpp"

namespace {

using namespace std::chrono_literals;
using futures_test::CapturedStderr;
using futures_test::exception_of;
using futures_test::holds;
using futures_test::mul;
using futures_test::TaskError;
using futures_test::Threads;
using futures_test::what_of;
using spindle::futures::as_completed;
using spindle::futures::BrokenExecutor;
using spindle::futures::BrokenThreadPool;
using spindle::futures::Future;
using spindle::futures::ThreadPoolExecutor;
using spindle::futures::ThreadPoolOptions;
namespace threading = spindle::threading;

using Clock = std::chrono::steady_clock;

std::size_t process_cpu_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<std::size_t>(CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// ---------------------------------------------------------------------------------------
// max_workers
// ---------------------------------------------------------------------------------------

TEST(ThreadPoolExecutor, MaxWorkersZeroIsInvalidArgument) {
  try {
    ThreadPoolExecutor pool({.max_workers = 0});
    FAIL() << "constructed";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("max_workers must be greater than 0"),
              std::string::npos)
        << error.what();
  }
}

TEST(ThreadPoolExecutor, DefaultMaxWorkersIsCpuCountPlusFourAtMost32) {
  ThreadPoolExecutor pool;
  EXPECT_EQ(pool.max_workers(), std::min<std::size_t>(32, process_cpu_count() + 4));
}

TEST(ThreadPoolExecutor, MaxWorkersIsAsGiven) {
  ThreadPoolExecutor one({.max_workers = 1});
  ThreadPoolExecutor many({.max_workers = 100});
  EXPECT_EQ(one.max_workers(), 1u);
  EXPECT_EQ(many.max_workers(), 100u);
}

TEST(ThreadPoolExecutor, IsReachableFromTheSpindleNamespace) {
  spindle::ThreadPoolExecutor pool({.max_workers = 1});
  spindle::Future<int> future = pool.submit(mul, 2, 2);
  EXPECT_EQ(future.result(), 4);
}

TEST(ThreadPoolExecutor, UnusedPoolStartsNoThread) {
  const std::size_t before = threading::active_count();
  {
    ThreadPoolExecutor pool({.max_workers = 8});
    EXPECT_EQ(threading::active_count(), before);
  }
  EXPECT_EQ(threading::active_count(), before);
}

TEST(ThreadPoolExecutor, SaturationStartsNoMoreThanMaxWorkers) {
  const std::size_t before = threading::active_count();
  ThreadPoolExecutor pool({.max_workers = 4});
  threading::Semaphore semaphore(0);
  std::vector<Future<void>> futures;
  for (int i = 0; i < 15 * 4; ++i) {
    futures.push_back(pool.submit([&semaphore] { semaphore.acquire(); }));
  }
  EXPECT_LE(threading::active_count() - before, 4u);
  for (int i = 0; i < 15 * 4; ++i)
    semaphore.release();
  pool.shutdown(true);
  EXPECT_EQ(threading::active_count(), before);
}

// ---------------------------------------------------------------------------------------
// Worker threads
// ---------------------------------------------------------------------------------------

std::vector<std::string> names_of_workers(ThreadPoolExecutor& pool, int tasks) {
  std::vector<Future<std::string>> futures;
  for (int i = 0; i < tasks; ++i) {
    futures.push_back(pool.submit([] { return threading::current_thread().name(); }));
  }
  std::vector<std::string> names;
  for (auto& future : futures)
    names.push_back(future.result());
  return names;
}

// Splits "PREFIX_N" into PREFIX and N; false unless N is a number below `limit`.
bool split_worker_name(const std::string& name, std::string& prefix, std::size_t limit) {
  const std::size_t underscore = name.rfind('_');
  if (underscore == std::string::npos || underscore + 1 == name.size()) return false;
  const std::string index = name.substr(underscore + 1);
  if (index.find_first_not_of("0123456789") != std::string::npos) return false;
  if (std::stoul(index) >= limit) return false;
  prefix = name.substr(0, underscore);
  return true;
}

TEST(ThreadPoolExecutor, WorkersAreNamedPrefixUnderscoreIndex) {
  ThreadPoolExecutor pool({.max_workers = 5, .thread_name_prefix = "SpecialPool"});
  for (const std::string& name : names_of_workers(pool, 50)) {
    std::string prefix;
    EXPECT_TRUE(split_worker_name(name, prefix, 5)) << name;
    EXPECT_EQ(prefix, "SpecialPool") << name;
  }
}

TEST(ThreadPoolExecutor, DefaultWorkerNamesAreThreadPoolExecutorNumberUnderscoreIndex) {
  ThreadPoolExecutor first({.max_workers = 5});
  ThreadPoolExecutor second({.max_workers = 5});
  const std::string stem = "ThreadPoolExecutor-";
  const auto pool_numbers = [&](ThreadPoolExecutor& pool) {
    std::set<std::string> numbers;
    for (const std::string& name : names_of_workers(pool, 20)) {
      std::string prefix;
      EXPECT_TRUE(split_worker_name(name, prefix, 5)) << name;
      EXPECT_EQ(prefix.rfind(stem, 0), 0u) << name;
      const std::string number = prefix.substr(std::min(stem.size(), prefix.size()));
      EXPECT_FALSE(number.empty()) << name;
      EXPECT_EQ(number.find_first_not_of("0123456789"), std::string::npos) << name;
      numbers.insert(number);
    }
    return numbers;
  };
  const std::set<std::string> first_numbers = pool_numbers(first);
  const std::set<std::string> second_numbers = pool_numbers(second);
  // One number per pool, distinct between pools.
  EXPECT_EQ(first_numbers.size(), 1u);
  EXPECT_EQ(second_numbers.size(), 1u);
  EXPECT_NE(first_numbers, second_numbers);
}

TEST(ThreadPoolExecutor, OneWorkerRunsTasksInSubmissionOrder) {
  ThreadPoolExecutor pool({.max_workers = 1});
  threading::Event gate;
  std::vector<int> order;  // written by the one worker only
  pool.submit([&gate] { gate.wait(); });
  std::vector<Future<void>> futures;
  for (int i = 0; i < 100; ++i)
    futures.push_back(pool.submit([&order, i] { order.push_back(i); }));
  gate.set();
  for (auto& future : futures)
    future.result();
  std::vector<int> expected(100);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(order, expected);
}

TEST(ThreadPoolExecutor, TasksRunOffTheSubmittingThread) {
  ThreadPoolExecutor pool({.max_workers = 2});
  const std::uint64_t main_ident = threading::get_ident();
  EXPECT_NE(pool.submit([] { return threading::get_ident(); }).result(), main_ident);
}

TEST(ThreadPoolExecutor, WorkersAreDaemonThreads) {
  ThreadPoolExecutor pool({.max_workers = 1});
  EXPECT_TRUE(pool.submit([] { return threading::current_thread().daemon(); }).result());
}

// Python starts a worker for a call only when no worker is idle: one call, one worker.
TEST(ThreadPoolExecutor, OneCallToAFreshPoolStartsOneWorker) {
  for (int round = 0; round < 10; ++round) {
    std::atomic<int> initialized{0};
    ThreadPoolExecutor pool({.max_workers = 8, .initializer = [&initialized] { ++initialized; }});
    EXPECT_EQ(pool.submit(mul, 2, 3).result(), 6);
    pool.shutdown(true);
    ASSERT_EQ(initialized.load(), 1) << "round " << round << ": workers started for one call";
  }
}

TEST(ThreadPoolExecutor, IdleWorkersAreReusedWithFourWorkers) {
  ThreadPoolExecutor pool({.max_workers = 4});
  std::set<std::uint64_t> idents;
  for (int i = 0; i < 100; ++i) {
    idents.insert(pool.submit([] { return threading::get_ident(); }).result());
  }
  EXPECT_LE(idents.size(), 4u);
  EXPECT_GE(idents.size(), 1u);
}

// Python (3.8 on) reuses an idle worker rather than start another: tasks submitted one after
// another, each waited for, run on one thread. A submit may still come while the worker
// that completed the previous future is returning from it (on a loaded machine the woken
// caller can run first), and then a thread starts, in Python too; so the bound is a few
// threads for 100 calls, where a pool that did not reuse workers would start all 32.
TEST(ThreadPoolExecutor, IdleWorkerIsReusedBeforeANewOneStarts) {
  const std::size_t before = threading::active_count();
  ThreadPoolExecutor pool({.max_workers = 32});
  std::set<std::uint64_t> idents;
  for (int i = 0; i < 100; ++i) {
    idents.insert(pool.submit([] { return threading::get_ident(); }).result());
  }
  const std::size_t started = threading::active_count() - before;
  EXPECT_LE(idents.size(), 4u);
  EXPECT_LE(started, 4u);
}

TEST(ThreadPoolExecutor, WorkersEndAfterShutdownWithWait) {
  const std::size_t before = threading::active_count();
  ThreadPoolExecutor pool({.max_workers = 3});
  std::vector<Future<int>> futures;
  for (int i = 0; i < 30; ++i)
    futures.push_back(pool.submit(mul, i, i));
  for (auto& future : futures)
    future.result();
  const std::size_t during = threading::active_count();
  EXPECT_GT(during, before);
  EXPECT_LE(during - before, 3u);
  pool.shutdown(true);
  EXPECT_EQ(threading::active_count(), before);
}

// ---------------------------------------------------------------------------------------
// Tasks that wait for one another
// ---------------------------------------------------------------------------------------

// Python runs every submitted call on a worker of its own while fewer than max_workers are
// busy: a call blocked on something other than a future (here an Event) never holds up a call
// queued after it. Rounds differ in what the pool and the submitting thread did before.
TEST(ThreadPoolExecutor, CallBlockedOnAnEventDoesNotHoldUpTheCallThatSetsIt) {
  for (int round = 0; round < 60; ++round) {
    ThreadPoolExecutor pool({.max_workers = 2 + static_cast<std::size_t>(round % 2)});
    for (int i = 0; i < round % 3; ++i)
      pool.submit(mul, i, i).result();
    threading::Event event;
    Future<bool> waiter = pool.submit([&event] { return event.wait(1s); });
    Future<void> setter = pool.submit([&event] { event.set(); });
    const bool set_in_time = waiter.result();
    setter.result();
    ASSERT_TRUE(set_in_time) << "round " << round
                             << ": the call that sets the event ran only after the waiting "
                                "call gave up, though a worker was free";
  }
}

TEST(ThreadPoolExecutor, AsManyBlockingCallsAsMaxWorkersAllRunAtOnce) {
  constexpr std::size_t kWorkers = 4;
  for (int round = 0; round < 20; ++round) {
    ThreadPoolExecutor pool({.max_workers = kWorkers});
    for (int i = 0; i < round % 3; ++i)
      pool.submit(mul, i, i).result();
    threading::Barrier barrier(kWorkers);
    std::vector<Future<std::size_t>> futures;
    for (std::size_t i = 0; i < kWorkers; ++i) {
      futures.push_back(pool.submit([&barrier] { return barrier.wait(5s); }));
    }
    std::size_t broken = 0;
    for (auto& future : futures) {
      if (future.exception() != nullptr) ++broken;
    }
    ASSERT_EQ(broken, 0u) << "round " << round << ": " << kWorkers
                          << " calls waiting for each other did not all get a worker";
  }
}

TEST(ThreadPoolExecutor, TaskWaitingOnATaskItSubmittedWithOneWorker) {
  ThreadPoolExecutor pool({.max_workers = 1});
  Future<int> outer = pool.submit([&pool] { return pool.submit(mul, 6, 7).result() + 1; });
  EXPECT_EQ(outer.result(), 43);
}

TEST(ThreadPoolExecutor, TaskWaitingOnATaskQueuedBehindItWithOneWorker) {
  ThreadPoolExecutor pool({.max_workers = 1});
  threading::Event second_submitted;
  Future<int> second;
  Future<int> first = pool.submit([&] {
    second_submitted.wait();
    return second.result() * 2;
  });
  second = pool.submit(mul, 3, 7);
  second_submitted.set();
  EXPECT_EQ(first.result(), 42);
}

int fibonacci_by_result(ThreadPoolExecutor& pool, int n) {
  if (n < 2) return n;
  Future<int> a = pool.submit(fibonacci_by_result, std::ref(pool), n - 1);
  Future<int> b = pool.submit(fibonacci_by_result, std::ref(pool), n - 2);
  return a.result() + b.result();
}

int fibonacci_by_wait(ThreadPoolExecutor& pool, int n) {
  if (n < 2) return n;
  std::vector<Future<int>> parts{pool.submit(fibonacci_by_wait, std::ref(pool), n - 1),
                                 pool.submit(fibonacci_by_wait, std::ref(pool), n - 2)};
  auto waited = spindle::futures::wait(parts);
  if (!waited.not_done.empty()) throw std::logic_error("wait returned early");
  return parts[0].result() + parts[1].result();
}

int fibonacci_by_as_completed(ThreadPoolExecutor& pool, int n) {
  if (n < 2) return n;
  std::vector<Future<int>> parts{pool.submit(fibonacci_by_as_completed, std::ref(pool), n - 1),
                                 pool.submit(fibonacci_by_as_completed, std::ref(pool), n - 2)};
  int sum = 0;
  for (const Future<int>& part : as_completed(parts))
    sum += part.result();
  return sum;
}

int fibonacci(int n) {
  return n < 2 ? n : fibonacci(n - 1) + fibonacci(n - 2);
}

#if SPINDLE_FUTURES_TEST_SANITIZED
constexpr int kFibonacciN = 20;
#else
constexpr int kFibonacciN = 25;
#endif

TEST(ThreadPoolExecutor, RecursiveFibonacciWaitingWithResultOnTwoWorkers) {
  ThreadPoolExecutor pool({.max_workers = 2});
  for (int n : {kFibonacciN - 2, kFibonacciN}) {
    EXPECT_EQ(pool.submit(fibonacci_by_result, std::ref(pool), n).result(), fibonacci(n)) << n;
  }
}

TEST(ThreadPoolExecutor, RecursiveFibonacciWaitingWithWaitOnTwoWorkers) {
  ThreadPoolExecutor pool({.max_workers = 2});
  EXPECT_EQ(pool.submit(fibonacci_by_wait, std::ref(pool), kFibonacciN).result(),
            fibonacci(kFibonacciN));
}

TEST(ThreadPoolExecutor, RecursiveFibonacciWaitingWithAsCompletedOnTwoWorkers) {
  ThreadPoolExecutor pool({.max_workers = 2});
  EXPECT_EQ(pool.submit(fibonacci_by_as_completed, std::ref(pool), kFibonacciN).result(),
            fibonacci(kFibonacciN));
}

TEST(ThreadPoolExecutor, RecursiveFibonacciOnOneWorker) {
  ThreadPoolExecutor pool({.max_workers = 1});
  EXPECT_EQ(pool.submit(fibonacci_by_result, std::ref(pool), 15).result(), fibonacci(15));
}

// Python: with two workers, a task that submits a second one and then waits for an outside
// event is never held up by that second task, which sets the event and then waits for the
// first. A waiting worker that runs the second task on top of the first (helping) buries the
// first under a task that waits for it.
TEST(ThreadPoolExecutor, TaskRunWhileAnotherWaitsMayItselfWaitForThatOne) {
  for (int round = 0; round < 10; ++round) {
    ThreadPoolExecutor pool({.max_workers = 2});
    Future<int> outside;
    Future<int> first;
    threading::Event first_assigned;
    std::optional<Future<int>> second;
    first = pool.submit([&] {
      first_assigned.wait();
      second = pool.submit([&] {
        outside.set_result(1);
        try {
          return first.result(1s) + 1;
        } catch (const spindle::TimeoutError&) {
          return -1;  // the first task could not finish while this one waited for it
        }
      });
      return outside.result();
    });
    first_assigned.set();
    EXPECT_EQ(first.result(), 1);
    ASSERT_EQ(second->result(), 2) << "round " << round;
  }
}

// Python runs queued tasks one after another on a single worker, however many wait for
// outside events; a worker that runs queued tasks while it waits nests them on its stack.
TEST(ThreadPoolExecutor, ManyQueuedTasksWaitingOnOutsideFuturesWithOneWorker) {
  constexpr int kTasks = 100'000;
  ThreadPoolExecutor pool({.max_workers = 1});
  std::vector<Future<int>> gates(kTasks);
  std::vector<Future<int>> tasks;
  tasks.reserve(kTasks);
  for (int i = 0; i < kTasks; ++i) {
    tasks.push_back(pool.submit([&gates, i] { return gates[i].result(); }));
  }
  for (int i = 0; i < kTasks; ++i)
    gates[i].set_result(i);
  long long sum = 0;
  for (auto& task : tasks)
    sum += task.result();
  EXPECT_EQ(sum, static_cast<long long>(kTasks) * (kTasks - 1) / 2);
}

TEST(ThreadPoolExecutor, TaskWaitingWithATimeoutOnItsOwnPool) {
  ThreadPoolExecutor pool({.max_workers = 1});
  Future<int> outer = pool.submit([&pool] { return pool.submit(mul, 2, 3).result(30s); });
  EXPECT_EQ(outer.result(), 6);
}

TEST(ThreadPoolExecutor, TaskWaitingOnAFutureNobodyCompletesTimesOut) {
  ThreadPoolExecutor pool({.max_workers = 1});
  Future<int> never;
  Future<bool> outer = pool.submit([never] {
    try {
      never.result(50ms);
      return false;
    } catch (const spindle::TimeoutError&) {
      return true;
    }
  });
  EXPECT_TRUE(outer.result());
}

TEST(ThreadPoolExecutor, SubmitFromADoneCallback) {
  ThreadPoolExecutor pool({.max_workers = 2});
  Future<int> first = pool.submit(mul, 2, 2);
  threading::Event submitted;
  Future<int> second;
  first.add_done_callback([&](const Future<int>& done) {
    second = pool.submit(mul, done.result(), 10);
    submitted.set();
  });
  submitted.wait();
  EXPECT_EQ(second.result(), 40);
}

TEST(ThreadPoolExecutor, ShutdownWithWaitFromATaskDoesNotDeadlock) {
  ThreadPoolExecutor pool({.max_workers = 2});
  Future<bool> future = pool.submit([&pool] {
    pool.shutdown(true);
    try {
      (void)pool.submit(mul, 1, 1);
      return false;
    } catch (const std::logic_error&) {
      return true;
    }
  });
  EXPECT_TRUE(future.result());
}

TEST(ThreadPoolExecutor, ConcurrentShutdownCallsAllReturnOnceTheWorkIsDone) {
  ThreadPoolExecutor pool({.max_workers = 3});
  std::atomic<int> ran{0};
  for (int i = 0; i < 300; ++i)
    (void)pool.submit([&ran] { ran.fetch_add(1); });
  threading::Barrier start(4);
  {
    Threads closers;
    closers.start_n(4, [&](std::size_t index) {
      start.wait();
      pool.shutdown(true, false);
      EXPECT_EQ(ran.load(), 300) << "closer " << index;
    });
  }
  EXPECT_EQ(ran.load(), 300);
}

TEST(ThreadPoolExecutor, PoolMayBeDestroyedFromItsOwnTask) {
  auto pool = std::make_unique<ThreadPoolExecutor>(ThreadPoolOptions{.max_workers = 2});
  threading::Event destroyed;
  (void)pool->submit([&pool, &destroyed] {
    pool.reset();
    destroyed.set();
  });
  EXPECT_TRUE(destroyed.wait(30s));
  EXPECT_EQ(pool, nullptr);
}

// ---------------------------------------------------------------------------------------
// A failed task nobody read
// ---------------------------------------------------------------------------------------

TEST(ThreadPoolExecutor, UnreadTaskExceptionIsReportedWhenItsFutureGoes) {
  CapturedStderr captured;
  {
    ThreadPoolExecutor pool({.max_workers = 1});
    (void)pool.submit([]() -> int { throw TaskError("nobody reads this"); });
    pool.shutdown(true);
  }
  const std::string err = captured.text();
  EXPECT_NE(err.find("Future exception was never retrieved"), std::string::npos) << err;
  EXPECT_NE(err.find("nobody reads this"), std::string::npos) << err;
}

TEST(ThreadPoolExecutor, TaskExceptionReadIsNotReported) {
  CapturedStderr captured;
  {
    ThreadPoolExecutor pool({.max_workers = 1});
    Future<int> future = pool.submit([]() -> int { throw TaskError("read"); });
    EXPECT_THROW(future.result(), TaskError);
    pool.shutdown(true);
  }
  EXPECT_EQ(captured.text().find("never retrieved"), std::string::npos);
}

// ---------------------------------------------------------------------------------------
// initializer
// ---------------------------------------------------------------------------------------

thread_local bool initialized_here = false;

TEST(ThreadPoolExecutor, InitializerRunsOncePerWorkerBeforeItsTasks) {
  std::mutex mutex;
  std::multiset<std::uint64_t> initialized;
  std::set<std::uint64_t> ran_tasks;
  {
    ThreadPoolExecutor pool({.max_workers = 3, .initializer = [&] {
                               std::lock_guard guard(mutex);
                               initialized.insert(threading::get_ident());
                               initialized_here = true;
                             }});
    std::vector<Future<bool>> futures;
    for (int i = 0; i < 100; ++i) {
      futures.push_back(pool.submit([&] {
        std::lock_guard guard(mutex);
        ran_tasks.insert(threading::get_ident());
        return initialized_here;
      }));
    }
    for (auto& future : futures)
      EXPECT_TRUE(future.result());
  }
  EXPECT_GE(initialized.size(), 1u);
  EXPECT_LE(initialized.size(), 3u);
  for (std::uint64_t ident : initialized)
    EXPECT_EQ(initialized.count(ident), 1u);
  for (std::uint64_t ident : ran_tasks)
    EXPECT_EQ(initialized.count(ident), 1u);
}

TEST(ThreadPoolExecutor, InitializerRunsInTheWorkerThread) {
  std::string name;
  ThreadPoolExecutor pool({.max_workers = 1, .thread_name_prefix = "init", .initializer = [&] {
                             name = threading::current_thread().name();
                           }});
  pool.submit(mul, 1, 1).result();
  EXPECT_EQ(name, "init_0");
}

TEST(ThreadPoolExecutor, ThrowingInitializerFailsPendingWorkWithBrokenThreadPool) {
  CapturedStderr captured;
  {
    ThreadPoolExecutor pool(
        {.max_workers = 2, .initializer = [] { throw TaskError("initializer failed"); }});
    std::vector<Future<int>> futures;
    for (int i = 0; i < 5; ++i) {
      try {
        futures.push_back(pool.submit(mul, i, i));
      } catch (const BrokenThreadPool&) {  // the pool may already be broken
      }
    }
    ASSERT_FALSE(futures.empty());
    for (auto& future : futures) {
      EXPECT_THROW(future.result(), BrokenThreadPool);
      EXPECT_TRUE(holds<BrokenExecutor>(future.exception()));
    }
    // Broken now: a new submit throws.
    EXPECT_THROW(pool.submit(mul, 1, 1), BrokenThreadPool);
    EXPECT_THROW(pool.submit(mul, 1, 1), BrokenExecutor);
  }
  const std::string err = captured.text();
  EXPECT_NE(err.find("Exception in initializer"), std::string::npos) << err;
  EXPECT_NE(err.find("initializer failed"), std::string::npos) << err;
}

// One worker starts fine, the other's initializer fails: the pool is broken. The healthy
// worker goes on taking the calls queued behind its own and must fail them as the broken one
// does. Several rounds, since which worker takes what varies.
TEST(ThreadPoolExecutor, InitializerFailingInOneWorkerBreaksThePool) {
  CapturedStderr captured;
  for (int round = 0; round < 100; ++round) {
    std::atomic<int> calls{0};
    ThreadPoolExecutor pool({.max_workers = 2, .initializer = [&calls] {
                               if (calls.fetch_add(1) == 1) throw TaskError("second worker");
                             }});
    threading::Event started;
    threading::Event gate;
    Future<int> first = pool.submit([&] {
      started.set();
      gate.wait();
      return -1;
    });
    // Should the pool break before the first call starts, that call fails instead.
    first.add_done_callback([&started](const Future<int>&) { started.set(); });
    started.wait();
    std::vector<Future<int>> queued;
    for (int i = 0; i < 20; ++i) {
      try {
        queued.push_back(pool.submit(mul, i, 1));
      } catch (const BrokenThreadPool&) {
        break;
      }
    }
    gate.set();
    if (first.exception() == nullptr) {
      EXPECT_EQ(first.result(), -1) << "round " << round;
    } else {
      EXPECT_THROW(first.result(), BrokenThreadPool) << "round " << round;
    }
    for (std::size_t i = 0; i < queued.size(); ++i) {
      if (queued[i].exception() == nullptr) {
        EXPECT_EQ(queued[i].result(), static_cast<int>(i)) << "round " << round;
      } else {
        EXPECT_THROW(queued[i].result(), BrokenThreadPool) << "round " << round;
      }
    }
    pool.shutdown(true);  // the second worker has failed by now
    EXPECT_EQ(calls.load(), 2) << "round " << round;
    EXPECT_THROW(pool.submit(mul, 1, 1), BrokenThreadPool) << "round " << round;
  }
  EXPECT_NE(captured.text().find("second worker"), std::string::npos);
}

TEST(ThreadPoolExecutor, BrokenThreadPoolIsABrokenExecutorAndASpindleError) {
  EXPECT_TRUE((std::is_base_of_v<BrokenExecutor, BrokenThreadPool>));
  EXPECT_TRUE((std::is_base_of_v<spindle::Error, BrokenExecutor>));
}

TEST(ThreadPoolExecutor, BrokenPoolShutsDown) {
  CapturedStderr captured;
  ThreadPoolExecutor pool({.max_workers = 3, .initializer = [] { throw TaskError("no"); }});
  Future<int> future = pool.submit(mul, 1, 1);
  EXPECT_THROW(future.result(), BrokenThreadPool);
  pool.shutdown(true);
  // Broken comes first, as in Python.
  EXPECT_THROW(pool.submit(mul, 1, 1), BrokenThreadPool);
  captured.text();
}

// ---------------------------------------------------------------------------------------
// Idleness
// ---------------------------------------------------------------------------------------

std::chrono::microseconds process_cpu_time() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto to_us = [](const timeval& t) {
    return std::chrono::seconds(t.tv_sec) + std::chrono::microseconds(t.tv_usec);
  };
  return to_us(usage.ru_utime) + to_us(usage.ru_stime);
}

TEST(ThreadPoolExecutor, IdlePoolBurnsNoCpu) {
  ThreadPoolExecutor pool;
  std::vector<Future<int>> futures;
  for (int i = 0; i < 1000; ++i)
    futures.push_back(pool.submit(mul, i, 2));
  for (auto& future : futures)
    future.result();
  // Every worker has had a task; now nothing is queued.
  const auto cpu_before = process_cpu_time();
  std::this_thread::sleep_for(1s);  // measures idleness: nothing to synchronise with
  const auto used = process_cpu_time() - cpu_before;
  EXPECT_LT(used, 100ms) << used.count() << " µs of CPU in one idle second";
}

// ---------------------------------------------------------------------------------------
// set_* on a submitted future (Python: for executors and tests; a user who completes a
// submitted future by hand must not bring the process down)
// ---------------------------------------------------------------------------------------

TEST(ThreadPoolExecutor, SetResultOnAPendingSubmittedFutureKeepsThatResult) {
  ThreadPoolExecutor pool({.max_workers = 1});
  threading::Event started;
  threading::Event gate;
  Future<int> blocker = pool.submit([&] {
    started.set();
    gate.wait();
    return 0;
  });
  started.wait();
  Future<int> pending = pool.submit(mul, 2, 3);
  pending.set_result(100);
  gate.set();
  blocker.result();
  pool.shutdown(true);
  EXPECT_EQ(pending.result(), 100);
  EXPECT_EQ(pool.max_workers(), 1u);
}

TEST(ThreadPoolExecutor, SetResultOnARunningSubmittedFutureKeepsThatResult) {
  ThreadPoolExecutor pool({.max_workers = 1});
  threading::Event started;
  threading::Event gate;
  Future<int> running = pool.submit([&] {
    started.set();
    gate.wait();
    return 1;
  });
  started.wait();
  running.set_result(100);
  gate.set();
  pool.shutdown(true);
  EXPECT_EQ(running.result(), 100);
}

TEST(ThreadPoolExecutor, SetRunningOrNotifyCancelOnAPendingSubmittedFutureKeepsThePoolAlive) {
  ThreadPoolExecutor pool({.max_workers = 1});
  threading::Event started;
  threading::Event gate;
  Future<int> blocker = pool.submit([&] {
    started.set();
    gate.wait();
    return 0;
  });
  started.wait();
  Future<int> claimed = pool.submit(mul, 2, 3);
  EXPECT_TRUE(claimed.set_running_or_notify_cancel());
  gate.set();
  blocker.result();
  // The pool goes on with later work; the claimed future is the claimant's to complete.
  EXPECT_EQ(pool.submit(mul, 4, 5).result(), 20);
  claimed.set_result(7);
  EXPECT_EQ(claimed.result(), 7);
}

}  // namespace
