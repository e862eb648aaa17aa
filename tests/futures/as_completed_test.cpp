// spindle::futures::as_completed: futures already done come first, the others as they
// complete, each once; a timeout counted from the call ends the iteration with TimeoutError.
// The last suite runs against every executor kind.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <list>
#include <ranges>
#include <span>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "futures_test_support.hpp"
#include "spindle/futures.hpp"
#include "spindle/threading.hpp"

namespace {

using namespace std::chrono_literals;
using futures_test::cancelled_future;
using futures_test::exception_future;
using futures_test::executor_kinds;
using futures_test::PerExecutor;
using futures_test::running_future;
using futures_test::successful_future;
using futures_test::Threads;
using spindle::TimeoutError;
using spindle::futures::as_completed;
using spindle::futures::Future;
namespace threading = spindle::threading;

using Clock = std::chrono::steady_clock;

template <class R>
std::vector<Future<int>> collect(R&& range) {
  std::vector<Future<int>> out;
  for (const Future<int>& future : range)
    out.push_back(future);
  return out;
}

TEST(AsCompleted, EmptyRangeYieldsNothing) {
  std::vector<Future<int>> none;
  EXPECT_TRUE(collect(as_completed(none)).empty());
  EXPECT_TRUE(collect(as_completed(none, 0s)).empty());
  EXPECT_TRUE(collect(as_completed(none, 1s)).empty());
}

TEST(AsCompleted, YieldsFuturesAlreadyDoneInInputOrder) {
  std::vector<Future<int>> futures{successful_future(1), cancelled_future(), exception_future(),
                                   successful_future(2)};
  EXPECT_EQ(collect(as_completed(futures)), futures);
}

TEST(AsCompleted, YieldsFuturesAlreadyDoneBeforePendingOnes) {
  Future<int> pending_a;
  Future<int> pending_b;
  Future<int> done_a = successful_future(1);
  Future<int> done_b = exception_future();
  Future<int> done_c = cancelled_future();
  std::vector<Future<int>> futures{pending_a, done_a, pending_b, done_b, done_c};
  std::vector<Future<int>> yielded;
  for (const Future<int>& future : as_completed(futures)) {
    yielded.push_back(future);
    // Complete the pending ones only once every done one came out, last one first.
    if (yielded.size() == 3) {
      pending_b.set_result(2);
      pending_a.set_result(3);
    }
  }
  EXPECT_EQ(yielded, (std::vector<Future<int>>{done_a, done_b, done_c, pending_b, pending_a}));
}

TEST(AsCompleted, YieldsPendingFuturesInCompletionOrder) {
  std::vector<Future<int>> futures(5);
  std::vector<Future<int>> yielded;
  auto range = as_completed(futures);
  // Completed after the call, in the order 3, 1, 4, 0, 2.
  for (int index : {3, 1, 4, 0, 2})
    futures[index].set_result(index);
  for (const Future<int>& future : range)
    yielded.push_back(future);
  EXPECT_EQ(yielded,
            (std::vector<Future<int>>{futures[3], futures[1], futures[4], futures[0], futures[2]}));
}

TEST(AsCompleted, EachFutureIsYieldedOnce) {
  std::vector<Future<int>> futures(20);
  for (std::size_t i = 0; i < futures.size(); i += 2)
    futures[i].set_result(static_cast<int>(i));
  std::vector<Future<int>> yielded;
  for (const Future<int>& future : as_completed(futures)) {
    yielded.push_back(future);
    if (yielded.size() == 10) {
      for (std::size_t i = 1; i < futures.size(); i += 2)
        futures[i].cancel();
    }
  }
  ASSERT_EQ(yielded.size(), futures.size());
  std::unordered_set<Future<int>> unique(yielded.begin(), yielded.end());
  EXPECT_EQ(unique.size(), futures.size());
}

TEST(AsCompleted, DuplicatesAreYieldedOnce) {
  Future<int> done = successful_future();
  Future<int> later;
  std::vector<Future<int>> futures{done, later, done, later, later};
  later.set_result(1);
  EXPECT_EQ(collect(as_completed(futures)), (std::vector<Future<int>>{done, later}));
}

TEST(AsCompleted, DuplicatesOfAPendingFutureAreYieldedOnce) {
  Future<int> future;
  std::vector<Future<int>> futures{future, future, future};
  auto range = as_completed(futures);
  future.set_result(1);
  EXPECT_EQ(collect(range), (std::vector<Future<int>>{future}));
}

TEST(AsCompleted, BlocksUntilAnotherThreadCompletesAFuture) {
  std::vector<Future<int>> futures(3);
  Threads threads;
  threads.start([futures]() mutable {
    for (Future<int>& future : futures)
      future.set_result(1);
  });
  EXPECT_EQ(collect(as_completed(futures)).size(), 3u);
}

TEST(AsCompleted, TimeoutErrorWhenTheTimeoutPassesWithSomePending) {
  Future<int> never;
  Future<int> done_a = successful_future();
  Future<int> done_b = cancelled_future();
  std::vector<Future<int>> futures{done_a, never, done_b};
  std::vector<Future<int>> yielded;
  try {
    for (const Future<int>& future : as_completed(futures, 50ms))
      yielded.push_back(future);
    FAIL() << "as_completed ended without TimeoutError";
  } catch (const TimeoutError&) {
  }
  EXPECT_EQ(yielded, (std::vector<Future<int>>{done_a, done_b}));
  EXPECT_FALSE(never.done());
}

TEST(AsCompleted, ZeroTimeoutYieldsTheDoneOnesThenTimeoutError) {
  std::vector<Future<int>> futures{successful_future(), Future<int>()};
  std::vector<Future<int>> yielded;
  EXPECT_THROW(
      {
        for (const Future<int>& future : as_completed(futures, 0s))
          yielded.push_back(future);
      },
      TimeoutError);
  EXPECT_EQ(yielded, (std::vector<Future<int>>{futures[0]}));
}

TEST(AsCompleted, ZeroTimeoutWithEverythingDoneYieldsAllWithoutError) {
  std::vector<Future<int>> futures{successful_future(), cancelled_future(), exception_future()};
  std::vector<Future<int>> yielded;
  EXPECT_NO_THROW({
    for (const Future<int>& future : as_completed(futures, 0s))
      yielded.push_back(future);
  });
  EXPECT_EQ(yielded, futures);
}

TEST(AsCompleted, TimeoutErrorSaysHowManyAreUnfinished) {
  std::vector<Future<int>> futures{cancelled_future(), Future<int>(), running_future(),
                                   successful_future()};
  try {
    for (const Future<int>& future : as_completed(futures, 0s))
      (void)future;
    FAIL() << "no TimeoutError";
  } catch (const TimeoutError& error) {
    EXPECT_STREQ(error.what(), "2 (of 4) futures unfinished");
  }
}

TEST(AsCompleted, TimeoutIsCountedFromTheCall) {
  Future<int> never;
  std::vector<Future<int>> futures{never};
  auto range = as_completed(futures, 300ms);
  // Let the whole timeout pass before iterating: the first step must not wait another one.
  std::this_thread::sleep_until(Clock::now() + 300ms);
  const auto start = Clock::now();
  EXPECT_THROW(range.begin(), TimeoutError);
  EXPECT_LT(Clock::now() - start, 250ms);
}

TEST(AsCompleted, FutureCompletedBeforeTheTimeoutIsYielded) {
  Future<int> future;
  std::vector<Future<int>> futures{future};
  Threads threads;
  threads.start([future]() mutable { future.set_result(1); });
  EXPECT_EQ(collect(as_completed(futures, 60s)), futures);
}

TEST(AsCompleted, AcceptsOtherRanges) {
  Future<int> a = successful_future(1);
  Future<int> b = successful_future(2);
  std::list<Future<int>> list{a, b};
  EXPECT_EQ(collect(as_completed(list)).size(), 2u);
  std::array<Future<int>, 2> array{a, b};
  EXPECT_EQ(collect(as_completed(array)).size(), 2u);
  std::vector<Future<int>> vector{a, b, Future<int>()};
  EXPECT_EQ(collect(as_completed(std::span(vector).first(2))), (std::vector<Future<int>>{a, b}));
  const std::vector<Future<int>> constant{b, a};
  EXPECT_EQ(collect(as_completed(constant)), constant);
}

TEST(AsCompleted, WorksWithVoidFutures) {
  std::vector<Future<void>> futures(2);
  futures[1].set_result();
  std::vector<Future<void>> yielded;
  auto range = as_completed(futures);
  futures[0].set_result();
  for (const Future<void>& future : range)
    yielded.push_back(future);
  EXPECT_EQ(yielded, (std::vector<Future<void>>{futures[1], futures[0]}));
}

TEST(AsCompleted, IteratorGivesAccessToTheFuture) {
  std::vector<Future<int>> futures{successful_future(7)};
  auto range = as_completed(futures);
  auto it = range.begin();
  ASSERT_FALSE(it == range.end());
  EXPECT_EQ((*it).result(), 7);
  EXPECT_EQ(it->result(), 7);
  ++it;
  EXPECT_TRUE(it == range.end());
}

TEST(AsCompleted, AbandonedIterationLeavesTheFuturesUsable) {
  Future<int> pending;
  {
    std::vector<Future<int>> futures{successful_future(), pending};
    auto range = as_completed(futures);
    auto it = range.begin();
    EXPECT_TRUE(it->done());
  }
  pending.set_result(3);
  EXPECT_EQ(pending.result(), 3);
}

TEST(AsCompleted, IteratorsAreInputIterators) {
  std::vector<Future<int>> futures;
  using Range = decltype(as_completed(futures));
  static_assert(std::ranges::input_range<Range>);
}

// ---------------------------------------------------------------------------------------
// With an executor
// ---------------------------------------------------------------------------------------

class AsCompletedWithExecutor : public PerExecutor {};

TEST_P(AsCompletedWithExecutor, YieldsEverySubmittedFutureAndTheDoneOnes) {
  auto executor = make();
  Future<int> done_a = successful_future();
  Future<int> done_b = exception_future();
  Future<int> done_c = cancelled_future();
  Future<int> task_a = executor->submit(futures_test::mul, 2, 21);
  Future<int> task_b = executor->submit(futures_test::mul, 7, 6);
  const std::vector<Future<int>> futures{done_a, done_b, done_c, task_a, task_b};
  const auto yielded = collect(as_completed(futures));
  EXPECT_EQ(std::unordered_set<Future<int>>(yielded.begin(), yielded.end()),
            std::unordered_set<Future<int>>(futures.begin(), futures.end()));
  EXPECT_EQ(yielded.size(), futures.size());
}

TEST_P(AsCompletedWithExecutor, ManyTasksEachYieldedOnce) {
  auto executor = make();
  std::vector<Future<int>> futures;
  for (int i = 0; i < 500; ++i)
    futures.push_back(executor->submit(futures_test::identity, i));
  std::vector<int> seen(futures.size(), 0);
  for (const Future<int>& future : as_completed(futures))
    ++seen[future.result()];
  EXPECT_EQ(seen, std::vector<int>(futures.size(), 1));
}

TEST_P(AsCompletedWithExecutor, TaskStillRunningAtTheTimeoutIsNotYielded) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  for (auto timeout : {0ms, 100ms}) {
    threading::Event gate;
    Future<int> done = successful_future();
    Future<int> gated = executor->submit([&gate] {
      gate.wait();
      return 1;
    });
    std::vector<Future<int>> yielded;
    EXPECT_THROW(
        {
          for (const Future<int>& future : as_completed(std::vector{done, gated}, timeout))
            yielded.push_back(future);
        },
        TimeoutError);
    EXPECT_EQ(yielded, (std::vector<Future<int>>{done}));
    EXPECT_FALSE(gated.done());
    gate.set();
    EXPECT_EQ(gated.result(), 1);
  }
}

TEST_P(AsCompletedWithExecutor, DuplicatesOfASubmittedFutureAreYieldedOnce) {
  auto executor = make();
  Future<int> future = executor->submit(futures_test::mul, 3, 3);
  std::vector<Future<int>> futures{future, future, future};
  EXPECT_EQ(collect(as_completed(futures)), (std::vector<Future<int>>{future}));
}

INSTANTIATE_TEST_SUITE_P(Executors, AsCompletedWithExecutor, testing::ValuesIn(executor_kinds()));

}  // namespace
