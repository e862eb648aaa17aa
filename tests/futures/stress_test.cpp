// spindle::futures under load: many threads submit a large number of tasks that succeed,
// fail, get cancelled or submit more work, while another thread follows them with
// as_completed and wait; shutdown(cancel_futures) races with submits. Every future must
// resolve exactly once, every callback run exactly once, and nothing may hang.
//
// Sanitized builds run a tenth of the tasks (SPINDLE_FUTURES_TEST_SANITIZED).
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "futures_test_support.hpp"
#include "spindle/futures.hpp"
#include "spindle/queue.hpp"
#include "spindle/threading.hpp"

namespace {

using namespace std::chrono_literals;
using futures_test::TaskError;
using futures_test::Threads;
using spindle::futures::ALL_COMPLETED;
using spindle::futures::as_completed;
using spindle::futures::CancelledError;
using spindle::futures::FIRST_COMPLETED;
using spindle::futures::Future;
using spindle::futures::ThreadPoolExecutor;
namespace threading = spindle::threading;

#if SPINDLE_FUTURES_TEST_SANITIZED
constexpr std::uint32_t kTasks = 100'000;
constexpr int kShutdownRounds = 10;
constexpr int kFirstSubmitRounds = 150;
#else
constexpr std::uint32_t kTasks = 1'000'000;
constexpr int kShutdownRounds = 40;
constexpr int kFirstSubmitRounds = 500;
#endif
constexpr std::uint32_t kSubmitters = 8;
constexpr std::uint32_t kSlice = 500;

// What task `index` does, from a hash of the index, so that the checker knows what to expect.
enum class Kind : std::uint8_t { value, error, nested_wait, nested_detached };

std::uint32_t mix(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}
Kind kind_of(std::uint32_t index) {
  const std::uint32_t roll = mix(index) % 100;
  if (roll < 55) return Kind::value;
  if (roll < 75) return Kind::error;
  if (roll < 88) return Kind::nested_wait;
  return Kind::nested_detached;
}
bool cancel_attempted(std::uint32_t index) {
  return mix(index ^ 0x9e3779b9U) % 10 == 0;
}

struct Tally {
  explicit Tally(std::size_t tasks) : resolved(tasks) {}
  std::vector<std::atomic<std::uint8_t>> resolved;  // done callbacks per task
  std::atomic<std::uint64_t> waited_children{0};
  std::atomic<std::uint64_t> detached_children{0};
  std::atomic<std::uint64_t> detached_children_resolved{0};  // by their done callbacks
  std::atomic<std::uint64_t> cancelled{0};
};

int child_task(std::uint32_t index) {
  return static_cast<int>(index);
}

int stress_task(ThreadPoolExecutor& pool, Tally& tally, std::uint32_t index) {
  switch (kind_of(index)) {
    case Kind::value:
      return static_cast<int>(index);
    case Kind::error:
      throw TaskError("task error", static_cast<int>(index));
    case Kind::nested_wait:
      tally.waited_children.fetch_add(1, std::memory_order_relaxed);
      return pool.submit(child_task, index).result();
    case Kind::nested_detached: {
      tally.detached_children.fetch_add(1, std::memory_order_relaxed);
      Future<int> child = pool.submit(child_task, index);
      child.add_done_callback([&tally, index](const Future<int>& done) {
        if (!done.cancelled() && done.result() == static_cast<int>(index)) {
          tally.detached_children_resolved.fetch_add(1, std::memory_order_relaxed);
        }
      });
      return static_cast<int>(index);
    }
  }
  return -1;
}

struct Slice {
  std::vector<std::uint32_t> indices;
  std::vector<Future<int>> futures;
};

// Checks one finished future against what its task does; a message if it is wrong.
std::string check_outcome(std::uint32_t index, const Future<int>& future) {
  if (!future.done()) return "not done";
  if (future.cancelled()) {
    return cancel_attempted(index) ? "" : "cancelled without a cancel()";
  }
  try {
    const int value = future.result();
    if (kind_of(index) == Kind::error) return "no exception from a failing task";
    if (value != static_cast<int>(index)) return "wrong value " + std::to_string(value);
  } catch (const TaskError& error) {
    if (kind_of(index) != Kind::error) return "unexpected TaskError";
    if (error.code != static_cast<int>(index)) return "TaskError of another task";
  } catch (const std::exception& error) {
    return std::string("unexpected exception: ") + error.what();
  }
  return "";
}

TEST(FuturesStress, EveryFutureResolvesExactlyOnceUnderLoad) {
  Tally tally(kTasks);
  std::atomic<std::uint64_t> problems{0};
  std::atomic<std::uint64_t> checked{0};
  std::string first_problem;
  std::mutex problem_mutex;
  const auto report = [&](std::uint32_t index, const std::string& problem) {
    if (problems.fetch_add(1) == 0) {
      std::lock_guard guard(problem_mutex);
      first_problem = "task " + std::to_string(index) + ": " + problem;
    }
  };

  spindle::queue::Queue<Slice> slices(64);
  {
    ThreadPoolExecutor pool({.max_workers = 4});
    Threads watcher;
    // Follows the slices with as_completed and wait, then checks every outcome.
    watcher.start([&] {
      std::uint64_t round = 0;
      for (;;) {
        Slice slice;
        try {
          slice = slices.get();
        } catch (const spindle::queue::ShutDown&) {
          break;
        }
        if (round++ % 2 == 0) {
          std::size_t yielded = 0;
          for (const Future<int>& future : as_completed(slice.futures)) {
            (void)future;
            ++yielded;
          }
          if (yielded != slice.futures.size()) report(slice.indices[0], "as_completed lost one");
        } else {
          auto first = spindle::futures::wait(slice.futures, {.return_when = FIRST_COMPLETED});
          if (first.done.empty()) report(slice.indices[0], "FIRST_COMPLETED with none done");
          auto all = spindle::futures::wait(slice.futures, {.return_when = ALL_COMPLETED});
          if (!all.not_done.empty() || all.done.size() != slice.futures.size()) {
            report(slice.indices[0], "ALL_COMPLETED left some");
          }
        }
        for (std::size_t i = 0; i < slice.futures.size(); ++i) {
          const std::string problem = check_outcome(slice.indices[i], slice.futures[i]);
          if (!problem.empty()) report(slice.indices[i], problem);
          checked.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });

    Threads submitters;
    submitters.start_n(kSubmitters, [&](std::size_t submitter) {
      Slice slice;
      for (std::uint32_t index = static_cast<std::uint32_t>(submitter); index < kTasks;
           index += kSubmitters) {
        Future<int> future = pool.submit(stress_task, std::ref(pool), std::ref(tally), index);
        future.add_done_callback([&tally, index](const Future<int>&) {
          tally.resolved[index].fetch_add(1, std::memory_order_relaxed);
        });
        if (cancel_attempted(index) && future.cancel()) {
          tally.cancelled.fetch_add(1, std::memory_order_relaxed);
        }
        slice.indices.push_back(index);
        slice.futures.push_back(std::move(future));
        if (slice.futures.size() == kSlice) slices.put(std::exchange(slice, Slice{}));
      }
      if (!slice.futures.empty()) slices.put(std::move(slice));
    });
    submitters.join();
    slices.shutdown();
    watcher.join();
    pool.shutdown(true);
  }

  EXPECT_EQ(problems.load(), 0u) << first_problem;
  EXPECT_EQ(checked.load(), kTasks);
  std::uint64_t not_once = 0;
  std::uint32_t first_bad = 0;
  for (std::uint32_t i = 0; i < kTasks; ++i) {
    if (tally.resolved[i].load() != 1) {
      if (not_once++ == 0) first_bad = i;
    }
  }
  EXPECT_EQ(not_once, 0u) << "task " << first_bad << " resolved "
                          << int(tally.resolved[first_bad].load()) << " times";
  // Every child of a detached-nesting task ran before shutdown(wait=true) returned, and its
  // callback ran once.
  EXPECT_EQ(tally.detached_children_resolved.load(), tally.detached_children.load());
  RecordProperty("cancelled", static_cast<int>(tally.cancelled.load()));
  RecordProperty("waited_children", static_cast<int>(tally.waited_children.load()));
  RecordProperty("detached_children", static_cast<int>(tally.detached_children.load()));
}

// Every child a detached-nesting task submits completes before shutdown(wait=true) returns,
// and its done callback runs exactly once.
TEST(FuturesStress, DetachedChildrenAllCompleteBeforeShutdownReturns) {
  constexpr std::uint32_t kParents = kTasks / 20;
  std::vector<std::atomic<std::uint8_t>> child_callbacks(kParents);
  {
    ThreadPoolExecutor pool({.max_workers = 4});
    std::vector<std::vector<Future<void>>> parents(4);
    Threads submitters;
    submitters.start_n(4, [&](std::size_t submitter) {
      for (std::uint32_t index = static_cast<std::uint32_t>(submitter); index < kParents;
           index += 4) {
        parents[submitter].push_back(pool.submit([&pool, &child_callbacks, index] {
          Future<int> child = pool.submit(child_task, index);
          child.add_done_callback([&child_callbacks, index](const Future<int>& done) {
            if (done.result() == static_cast<int>(index)) child_callbacks[index].fetch_add(1);
          });
        }));
      }
    });
    submitters.join();
    // Every parent has submitted its child (submits after shutdown are refused, as in Python).
    for (auto& futures : parents) {
      for (auto& parent : futures)
        parent.result();
    }
    pool.shutdown(true);
    for (std::uint32_t i = 0; i < kParents; ++i) {
      ASSERT_EQ(child_callbacks[i].load(), 1) << "child " << i;
    }
  }
}

// shutdown(cancel_futures=true) while other threads submit: every submit either throws
// std::logic_error or gives a future that ends finished or cancelled; none hangs.
TEST(FuturesStress, ShutdownCancellingFuturesRacesWithSubmits) {
  constexpr int kThreads = 4;
  for (int round = 0; round < kShutdownRounds; ++round) {
    ThreadPoolExecutor pool({.max_workers = 3});
    std::vector<std::vector<Future<int>>> futures(kThreads);
    std::vector<int> rejected(kThreads, 0);
    std::latch some_submitted(kThreads);
    const bool wait = round % 2 == 0;
    {
      Threads submitters;
      submitters.start_n(kThreads, [&](std::size_t t) {
        for (int i = 0; i < 5000; ++i) {
          try {
            futures[t].push_back(pool.submit(futures_test::mul, i, 2));
          } catch (const std::logic_error&) {
            ++rejected[t];
            break;
          }
          if (i == 50) some_submitted.count_down();
        }
        if (futures[t].size() <= 50) some_submitted.count_down();
      });
      some_submitted.wait();
      pool.shutdown(wait, true);
    }
    pool.shutdown(true);
    std::size_t cancelled = 0;
    for (int t = 0; t < kThreads; ++t) {
      for (std::size_t i = 0; i < futures[t].size(); ++i) {
        Future<int>& future = futures[t][i];
        ASSERT_TRUE(future.done()) << "round " << round << ", thread " << t << ", task " << i;
        if (future.cancelled()) {
          ++cancelled;
        } else {
          ASSERT_EQ(future.result(0s), static_cast<int>(i) * 2);
        }
      }
    }
    // A thread stops at its first refused submit.
    for (int t = 0; t < kThreads; ++t)
      EXPECT_LE(rejected[t], 1);
  }
}

// shutdown(wait=true) racing with the very first submit to a pool: a submit that succeeded
// was accepted before the shutdown, so its task has run by the time shutdown(wait=true)
// returns. The task itself tells whether it ran after that.
TEST(FuturesStress, ShutdownWithWaitRacingWithTheFirstSubmitWaitsForIt) {
  int accepted = 0;
  int ran_after_shutdown_returned = 0;
  for (int round = 0; round < kFirstSubmitRounds; ++round) {
    std::atomic<bool> shutdown_returned{false};
    std::optional<Future<bool>> future;
    {
      ThreadPoolExecutor pool({.max_workers = 2});
      threading::Barrier start(2);
      Threads submitter;
      submitter.start([&] {
        start.wait();
        try {
          future = pool.submit([&shutdown_returned] { return shutdown_returned.load(); });
        } catch (const std::logic_error&) {
        }
      });
      start.wait();
      pool.shutdown(true);
      shutdown_returned = true;
      submitter.join();
    }
    if (future) {
      ++accepted;
      if (future->result()) ++ran_after_shutdown_returned;
    }
  }
  EXPECT_EQ(ran_after_shutdown_returned, 0)
      << ran_after_shutdown_returned << " of " << accepted
      << " accepted submits ran only after shutdown(wait=true) had returned";
  RecordProperty("accepted", accepted);
}

}  // namespace
