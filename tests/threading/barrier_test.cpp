#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "spindle/threading.hpp"

namespace {

using namespace std::chrono_literals;
namespace threading = spindle::threading;
using threading::Barrier;
using threading::BrokenBarrierError;
using threading::Thread;

// Runs `body(i)` on n threads and joins them.
template <class Body>
void run_threads(int n, Body body) {
  std::vector<std::unique_ptr<Thread>> threads;
  for (int i = 0; i < n; ++i) {
    threads.push_back(std::make_unique<Thread>(body, i));
    threads.back()->start();
  }
  for (auto& thread : threads)
    thread->join();
}

TEST(Barrier, ZeroPartiesThrowsInvalidArgument) {
  EXPECT_THROW(Barrier(0), std::invalid_argument);
}

TEST(Barrier, ReleasesEveryPartyWithDistinctIndices) {
  Barrier barrier(4);
  std::mutex mutex;
  std::vector<std::size_t> indices;
  run_threads(4, [&](int) {
    const std::size_t index = barrier.wait();
    std::scoped_lock guard(mutex);
    indices.push_back(index);
  });
  std::sort(indices.begin(), indices.end());
  EXPECT_EQ(indices, (std::vector<std::size_t>{0, 1, 2, 3}));
  EXPECT_EQ(barrier.n_waiting(), 0u);
  EXPECT_FALSE(barrier.broken());
}

TEST(Barrier, NobodyPassesUntilAllHaveArrived) {
  Barrier barrier(3);
  std::atomic<int> arrived{0};
  std::atomic<bool> passed_early{false};
  run_threads(3, [&](int) {
    ++arrived;
    barrier.wait();
    if (arrived.load() != 3) passed_early = true;
  });
  EXPECT_FALSE(passed_early);
}

TEST(Barrier, CanBeUsedForManyRounds) {
  Barrier barrier(3);
  std::atomic<int> total{0};
  run_threads(3, [&](int) {
    for (int round = 0; round < 50; ++round) {
      barrier.wait();
      ++total;
    }
  });
  EXPECT_EQ(total.load(), 150);
}

TEST(Barrier, ActionRunsOncePerRoundBeforeAnyoneIsReleased) {
  std::atomic<int> actions{0};
  std::atomic<int> after_wait_seen_wrong{0};
  Barrier barrier(3, {.action = [&] { ++actions; }});
  run_threads(3, [&](int) {
    for (int round = 1; round <= 5; ++round) {
      barrier.wait();
      if (actions.load() < round) ++after_wait_seen_wrong;
    }
  });
  EXPECT_EQ(actions.load(), 5);
  EXPECT_EQ(after_wait_seen_wrong.load(), 0);
}

TEST(Barrier, AThrowingActionBreaksTheBarrier) {
  Barrier barrier(3, {.action = [] { throw std::runtime_error("action failed"); }});
  std::atomic<int> broken{0};
  std::atomic<int> action_errors{0};
  run_threads(3, [&](int) {
    try {
      barrier.wait();
    } catch (const BrokenBarrierError&) {
      ++broken;
    } catch (const std::runtime_error&) {
      ++action_errors;
    }
  });
  EXPECT_EQ(action_errors.load(), 1);
  EXPECT_EQ(broken.load(), 2);
  EXPECT_TRUE(barrier.broken());
  EXPECT_THROW(barrier.wait(), BrokenBarrierError);
}

TEST(Barrier, ATimeoutBreaksTheBarrierForEveryone) {
  Barrier barrier(3);
  std::atomic<int> broken{0};
  // Two of three parties arrive; the one with a short timeout breaks it for the other.
  run_threads(2, [&](int i) {
    try {
      if (i == 0) {
        barrier.wait(20ms);
      } else {
        barrier.wait(60s);
      }
    } catch (const BrokenBarrierError&) {
      ++broken;
    }
  });
  EXPECT_EQ(broken.load(), 2);
  EXPECT_TRUE(barrier.broken());
}

TEST(Barrier, TheDefaultTimeoutComesFromTheOptions) {
  Barrier barrier(2, {.timeout = 20ms});
  EXPECT_THROW(barrier.wait(), BrokenBarrierError);
  EXPECT_TRUE(barrier.broken());
}

TEST(Barrier, AbortBreaksWaitersAndLaterArrivals) {
  Barrier barrier(3);
  std::atomic<int> broken{0};
  Thread waiter([&] {
    try {
      barrier.wait();
    } catch (const BrokenBarrierError&) {
      ++broken;
    }
  });
  waiter.start();
  barrier.abort();
  waiter.join();
  EXPECT_EQ(broken.load(), 1);
  EXPECT_THROW(barrier.wait(), BrokenBarrierError);
}

// Blocks until `n` threads are inside barrier.wait(), watching the barrier's own count.
void wait_until_waiting(const Barrier& barrier, std::size_t n) {
  while (barrier.n_waiting() < n)
    std::this_thread::yield();
}

TEST(Barrier, ResetWakesWaitersWithBrokenBarrierErrorAndTheBarrierIsUsableAgain) {
  Barrier barrier(2);
  std::atomic<bool> got_broken{false};
  Thread waiter([&] {
    try {
      barrier.wait();
    } catch (const BrokenBarrierError&) {
      got_broken = true;
    }
  });
  waiter.start();
  wait_until_waiting(barrier, 1);
  barrier.reset();
  waiter.join();
  EXPECT_TRUE(got_broken);
  EXPECT_FALSE(barrier.broken());
  run_threads(2, [&](int) { barrier.wait(); });
}

TEST(Barrier, ResetOfABrokenBarrierMakesItUsable) {
  Barrier barrier(2);
  barrier.abort();
  EXPECT_TRUE(barrier.broken());
  barrier.reset();
  EXPECT_FALSE(barrier.broken());
  run_threads(2, [&](int) { barrier.wait(); });
}

TEST(Barrier, NWaitingCountsThreadsInsideWait) {
  Barrier barrier(3);
  std::vector<std::unique_ptr<Thread>> threads;
  for (int i = 0; i < 2; ++i) {
    threads.push_back(std::make_unique<Thread>([&] { barrier.wait(); }));
    threads.back()->start();
  }
  wait_until_waiting(barrier, 2);
  EXPECT_EQ(barrier.n_waiting(), 2u);
  barrier.wait();
  for (auto& thread : threads)
    thread->join();
}

TEST(Barrier, ActionMayQueryTheBarrier) {
  std::size_t waiting_in_action = 99;
  Barrier* self = nullptr;
  Barrier barrier(2, {.action = [&] { waiting_in_action = self->n_waiting(); }});
  self = &barrier;
  run_threads(2, [&](int) { barrier.wait(); });
  EXPECT_EQ(waiting_in_action, 2u);
}

}  // namespace
