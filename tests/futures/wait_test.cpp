// spindle::futures::wait: FIRST_COMPLETED, FIRST_EXCEPTION and ALL_COMPLETED, with and
// without a timeout; done and not_done in input order without duplicates. The second suite
// runs against every executor kind.
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
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
using futures_test::TaskError;
using futures_test::Threads;
using spindle::futures::ALL_COMPLETED;
using spindle::futures::FIRST_COMPLETED;
using spindle::futures::FIRST_EXCEPTION;
using spindle::futures::Future;
using spindle::futures::wait;
namespace threading = spindle::threading;

using Clock = std::chrono::steady_clock;
using Futures = std::vector<Future<int>>;

TEST(Wait, EmptyRangeReturnsAtOnce) {
  Futures none;
  for (auto when : {ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION}) {
    auto result = wait(none, {.return_when = when});
    EXPECT_TRUE(result.done.empty());
    EXPECT_TRUE(result.not_done.empty());
  }
}

TEST(Wait, DefaultIsAllCompleted) {
  Futures futures(3);
  Threads threads;
  threads.start([futures]() mutable {
    for (Future<int>& future : futures)
      future.set_result(1);
  });
  auto result = wait(futures);
  EXPECT_EQ(result.done, futures);
  EXPECT_TRUE(result.not_done.empty());
}

TEST(Wait, AllCompletedCountsEveryKindOfDone) {
  Futures futures{successful_future(), cancelled_future(), exception_future()};
  auto result = wait(futures, {.return_when = ALL_COMPLETED});
  EXPECT_EQ(result.done, futures);
  EXPECT_TRUE(result.not_done.empty());
}

TEST(Wait, FirstCompletedReturnsAtOnceWhenSomeAreDone) {
  Future<int> pending;
  Future<int> running = running_future();
  Future<int> done_a = successful_future();
  Future<int> done_b = cancelled_future();
  Futures futures{pending, done_a, running, done_b};
  auto result = wait(futures, {.return_when = FIRST_COMPLETED});
  EXPECT_EQ(result.done, (Futures{done_a, done_b}));
  EXPECT_EQ(result.not_done, (Futures{pending, running}));
}

TEST(Wait, FirstCompletedWakesWhenOneCompletes) {
  Futures futures(3);
  Threads threads;
  threads.start([future = futures[1]]() mutable { future.set_result(1); });
  auto result = wait(futures, {.return_when = FIRST_COMPLETED});
  EXPECT_EQ(result.done, (Futures{futures[1]}));
  EXPECT_EQ(result.not_done, (Futures{futures[0], futures[2]}));
}

TEST(Wait, FirstCompletedCountsACancellation) {
  Futures futures(2);
  Threads threads;
  threads.start([future = futures[0]]() mutable { future.cancel(); });
  auto result = wait(futures, {.return_when = FIRST_COMPLETED});
  EXPECT_EQ(result.done, (Futures{futures[0]}));
  EXPECT_EQ(result.not_done, (Futures{futures[1]}));
}

TEST(Wait, FirstExceptionReturnsAtOnceWhenOneHasFailed) {
  Future<int> failed = exception_future();
  Future<int> pending;
  auto result = wait(Futures{failed, pending}, {.return_when = FIRST_EXCEPTION});
  EXPECT_EQ(result.done, (Futures{failed}));
  EXPECT_EQ(result.not_done, (Futures{pending}));
}

TEST(Wait, FirstExceptionIgnoresSuccessesAndCancellations) {
  Future<int> ok = successful_future();
  Future<int> cancelled = cancelled_future();
  Future<int> pending;
  const auto start = Clock::now();
  auto result =
      wait(Futures{ok, cancelled, pending}, {.timeout = 100ms, .return_when = FIRST_EXCEPTION});
  EXPECT_GE(Clock::now() - start, 100ms);
  EXPECT_EQ(result.done, (Futures{ok, cancelled}));
  EXPECT_EQ(result.not_done, (Futures{pending}));
}

TEST(Wait, FirstExceptionWakesWhenOneFails) {
  Futures futures(3);
  Threads threads;
  threads.start([futures]() mutable {
    futures[0].set_result(1);
    futures[1].set_exception(std::make_exception_ptr(TaskError("failed")));
  });
  auto result = wait(futures, {.return_when = FIRST_EXCEPTION});
  EXPECT_EQ(result.done, (Futures{futures[0], futures[1]}));
  EXPECT_EQ(result.not_done, (Futures{futures[2]}));
  EXPECT_THROW(futures[1].result(), TaskError);
}

TEST(Wait, FirstExceptionWithoutAnyExceptionWaitsForAll) {
  Futures futures(3);
  Threads threads;
  threads.start([futures]() mutable {
    futures[0].set_result(1);
    futures[1].cancel();
    futures[2].set_result(3);
  });
  auto result = wait(futures, {.return_when = FIRST_EXCEPTION});
  EXPECT_EQ(result.done, futures);
  EXPECT_TRUE(result.not_done.empty());
}

TEST(Wait, TimeoutReturnsWhatIsDoneSoFar) {
  Future<int> done_a = cancelled_future();
  Future<int> done_b = exception_future();
  Future<int> done_c = successful_future();
  Future<int> pending;
  const auto start = Clock::now();
  auto result = wait(Futures{done_a, done_b, done_c, pending},
                     {.timeout = 50ms, .return_when = ALL_COMPLETED});
  EXPECT_GE(Clock::now() - start, 50ms);
  EXPECT_EQ(result.done, (Futures{done_a, done_b, done_c}));
  EXPECT_EQ(result.not_done, (Futures{pending}));
}

TEST(Wait, ZeroTimeoutReturnsAtOnce) {
  Future<int> done = successful_future();
  Future<int> pending;
  for (auto when : {ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION}) {
    auto result = wait(Futures{pending, done}, {.timeout = 0s, .return_when = when});
    EXPECT_EQ(result.done, (Futures{done}));
    EXPECT_EQ(result.not_done, (Futures{pending}));
  }
  auto nothing_done = wait(Futures{pending}, {.timeout = 0s, .return_when = FIRST_COMPLETED});
  EXPECT_TRUE(nothing_done.done.empty());
  EXPECT_EQ(nothing_done.not_done, (Futures{pending}));
}

TEST(Wait, NegativeTimeoutIsInvalidArgument) {
  Futures futures{Future<int>()};
  EXPECT_THROW(wait(futures, {.timeout = -1ms}), std::invalid_argument);
}

TEST(Wait, DuplicatesAppearOnce) {
  Future<int> done = successful_future();
  Future<int> pending;
  auto result =
      wait(Futures{done, pending, done, pending}, {.timeout = 0s, .return_when = ALL_COMPLETED});
  EXPECT_EQ(result.done, (Futures{done}));
  EXPECT_EQ(result.not_done, (Futures{pending}));
}

TEST(Wait, ResultsKeepInputOrder) {
  Futures futures(6);
  for (int i : {4, 0, 2})
    futures[i].set_result(i);
  auto result = wait(futures, {.timeout = 0s});
  EXPECT_EQ(result.done, (Futures{futures[0], futures[2], futures[4]}));
  EXPECT_EQ(result.not_done, (Futures{futures[1], futures[3], futures[5]}));
}

TEST(Wait, NotDoneFuturesStayUsable) {
  Future<int> pending;
  auto result = wait(Futures{pending}, {.timeout = 1ms});
  ASSERT_EQ(result.not_done.size(), 1u);
  result.not_done[0].set_result(5);
  EXPECT_EQ(pending.result(), 5);
}

TEST(Wait, WorksWithVoidFutures) {
  std::vector<Future<void>> futures(2);
  futures[1].set_result();
  auto result = wait(futures, {.return_when = FIRST_COMPLETED});
  EXPECT_EQ(result.done, (std::vector<Future<void>>{futures[1]}));
  EXPECT_EQ(result.not_done, (std::vector<Future<void>>{futures[0]}));
}

TEST(Wait, DoesNotMarkAnExceptionAsRetrievedWithAllCompleted) {
  futures_test::CapturedStderr captured;
  {
    Future<int> failed;
    failed.set_exception(std::make_exception_ptr(TaskError("unread")));
    wait(Futures{failed});
  }
  EXPECT_NE(captured.text().find("Future exception was never retrieved"), std::string::npos);
}

// ---------------------------------------------------------------------------------------
// With an executor
// ---------------------------------------------------------------------------------------

class WaitWithExecutor : public PerExecutor {};

TEST_P(WaitWithExecutor, DuplicateSubmittedFutureAppearsOnce) {
  auto executor = make();
  Future<int> future = executor->submit(futures_test::mul, 1, 2);
  auto result = wait(Futures{future, future}, {.return_when = ALL_COMPLETED});
  EXPECT_EQ(result.done, (Futures{future}));
  EXPECT_TRUE(result.not_done.empty());
}

TEST_P(WaitWithExecutor, FirstCompleted) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);  // one worker: the calls run in submission order
  threading::Event gate;
  Future<int> never;
  Future<int> quick = executor->submit(futures_test::mul, 21, 2);
  Future<int> gated = executor->submit([&gate] {
    gate.wait();
    return 0;
  });
  auto result = wait(Futures{never, quick, gated}, {.return_when = FIRST_COMPLETED});
  gate.set();
  EXPECT_EQ(result.done, (Futures{quick}));
  EXPECT_EQ(result.not_done, (Futures{never, gated}));
  EXPECT_EQ(gated.result(), 0);
}

TEST_P(WaitWithExecutor, FirstCompletedSomeAlreadyCompleted) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  threading::Event gate;
  Future<int> cancelled = cancelled_future();
  Future<int> succeeded = successful_future();
  Future<int> gated = executor->submit([&gate] {
    gate.wait();
    return 0;
  });
  auto result = wait(Futures{cancelled, succeeded, gated}, {.return_when = FIRST_COMPLETED});
  gate.set();
  EXPECT_EQ(result.done, (Futures{cancelled, succeeded}));
  EXPECT_EQ(result.not_done, (Futures{gated}));
  gated.result();
}

TEST_P(WaitWithExecutor, FirstException) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);  // one worker: the calls run in submission order
  threading::Event fail_now;
  threading::Event gate;
  Future<int> ok = executor->submit(futures_test::mul, 2, 21);
  Future<int> failing = executor->submit([&fail_now]() -> int {
    fail_now.wait();
    throw TaskError("this is an exception");
  });
  Future<int> gated = executor->submit([&gate] {
    gate.wait();
    return 0;
  });
  // The failure comes only once `ok` has finished.
  Threads threads;
  threads.start([&] {
    ok.result();
    fail_now.set();
  });
  auto result = wait(Futures{ok, failing, gated}, {.return_when = FIRST_EXCEPTION});
  gate.set();
  threads.join();
  EXPECT_EQ(result.done, (Futures{ok, failing}));
  EXPECT_EQ(result.not_done, (Futures{gated}));
  EXPECT_THROW(failing.result(), TaskError);
  gated.result();
}

TEST_P(WaitWithExecutor, FirstExceptionSomeAlreadyComplete) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);  // one worker: the calls run in submission order
  threading::Event gate;
  Future<int> succeeded = successful_future();
  Future<int> cancelled = cancelled_future();
  Future<int> failing = executor->submit(futures_test::divide, 21, 0);
  Future<int> gated = executor->submit([&gate] {
    gate.wait();
    return 0;
  });
  auto result =
      wait(Futures{succeeded, cancelled, failing, gated}, {.return_when = FIRST_EXCEPTION});
  gate.set();
  EXPECT_EQ(result.done, (Futures{succeeded, cancelled, failing}));
  EXPECT_EQ(result.not_done, (Futures{gated}));
  EXPECT_THROW(failing.result(), TaskError);
  gated.result();
}

TEST_P(WaitWithExecutor, FirstExceptionOneAlreadyFailed) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  threading::Event gate;
  Future<int> failed = exception_future();
  Future<int> gated = executor->submit([&gate] {
    gate.wait();
    return 0;
  });
  auto result = wait(Futures{failed, gated}, {.return_when = FIRST_EXCEPTION});
  gate.set();
  EXPECT_EQ(result.done, (Futures{failed}));
  EXPECT_EQ(result.not_done, (Futures{gated}));
  gated.result();
}

TEST_P(WaitWithExecutor, AllCompleted) {
  auto executor = make();
  Future<int> succeeded = successful_future();
  Future<int> cancelled = cancelled_future();
  Future<int> failed = exception_future();
  Future<int> failing = executor->submit(futures_test::divide, 2, 0);
  Future<int> ok = executor->submit(futures_test::mul, 2, 21);
  const Futures futures{succeeded, cancelled, failed, failing, ok};
  auto result = wait(futures, {.return_when = ALL_COMPLETED});
  EXPECT_EQ(result.done, futures);
  EXPECT_TRUE(result.not_done.empty());
  EXPECT_THROW(failing.result(), TaskError);
  EXPECT_EQ(ok.result(), 42);
}

TEST_P(WaitWithExecutor, Timeout) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  threading::Event gate;
  Future<int> cancelled = cancelled_future();
  Future<int> failed = exception_future();
  Future<int> succeeded = successful_future();
  Future<int> gated = executor->submit([&gate] {
    gate.wait();
    return 0;
  });
  auto result = wait(Futures{cancelled, failed, succeeded, gated},
                     {.timeout = 50ms, .return_when = ALL_COMPLETED});
  gate.set();
  EXPECT_EQ(result.done, (Futures{cancelled, failed, succeeded}));
  EXPECT_EQ(result.not_done, (Futures{gated}));
  gated.result();
}

TEST_P(WaitWithExecutor, ManyTasksReleasedAtOnce) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  threading::Event gate;
  Futures futures;
  for (int i = 0; i < 100; ++i) {
    futures.push_back(executor->submit([&gate, i] {
      gate.wait();
      return i;
    }));
  }
  gate.set();
  auto result = wait(futures, {.return_when = ALL_COMPLETED});
  EXPECT_EQ(result.done.size(), 100u);
  EXPECT_TRUE(result.not_done.empty());
}

INSTANTIATE_TEST_SUITE_P(Executors, WaitWithExecutor, testing::ValuesIn(executor_kinds()));

}  // namespace
