// The behaviour every spindle::futures::Executor shares, written once and run for every
// executor kind (futures_test::executor_kinds()): submit, map, shutdown and destruction,
// reached through Executor&.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

#include "futures_test_support.hpp"
#include "spindle/futures.hpp"
#include "spindle/threading.hpp"

namespace {

using namespace std::chrono_literals;
using futures_test::divide;
using futures_test::exception_of;
using futures_test::executor_kinds;
using futures_test::holds;
using futures_test::identity;
using futures_test::mul;
using futures_test::TaskError;
using futures_test::Threads;
using spindle::TimeoutError;
using spindle::futures::CancelledError;
using spindle::futures::Executor;
using spindle::futures::Future;
using spindle::futures::MapOptions;
namespace threading = spindle::threading;

using Clock = std::chrono::steady_clock;

class ExecutorTest : public futures_test::PerExecutor {};

int add_three(int a, int b, int c) {
  return a + b + c;
}
std::string concat(std::string a, const std::string& b) {
  return a + b;
}
long long int_pow(int base, int exponent) {
  long long result = 1;
  for (int i = 0; i < exponent; ++i)
    result *= base;
  return result;
}

// ---------------------------------------------------------------------------------------
// submit
// ---------------------------------------------------------------------------------------

TEST_P(ExecutorTest, SubmitReturnsAFutureOfTheResult) {
  auto executor = make();
  Future<long long> future = executor->submit(int_pow, 2, 8);
  EXPECT_EQ(future.result(), 256);
}

TEST_P(ExecutorTest, SubmitPassesEveryArgument) {
  auto executor = make();
  EXPECT_EQ(executor->submit(add_three, 1, 20, 300).result(), 321);
  EXPECT_EQ(executor->submit(concat, std::string("ab"), "cd").result(), "abcd");
}

TEST_P(ExecutorTest, SubmitAcceptsACaptureLessLambda) {
  auto executor = make();
  EXPECT_EQ(executor->submit([](int x) { return x + 1; }, 41).result(), 42);
}

TEST_P(ExecutorTest, SubmitAcceptsALambdaWithCaptures) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  int base = 40;
  std::string text = "captured";
  Future<std::string> future =
      executor->submit([base, &text](int x) { return text + std::to_string(base + x); }, 2);
  EXPECT_EQ(future.result(), "captured42");
}

TEST_P(ExecutorTest, SubmitInvokesMemberFunctions) {
  SKIP_UNLESS_IN_PROCESS();
  struct Counter {
    int value = 0;
    int add(int n) {
      value += n;
      return value;
    }
    int get() const { return value; }
  };
  auto executor = make();
  Counter counter;
  EXPECT_EQ(executor->submit(&Counter::add, &counter, 4).result(), 4);
  EXPECT_EQ(executor->submit(&Counter::add, std::ref(counter), 3).result(), 7);
  EXPECT_EQ(counter.value, 7);
  // By value: the task works on its own copy.
  EXPECT_EQ(executor->submit(&Counter::add, counter, 1).result(), 8);
  EXPECT_EQ(counter.value, 7);
  EXPECT_EQ(executor->submit(&Counter::get, &counter).result(), 7);
}

TEST_P(ExecutorTest, SubmitCopiesArgumentsUnlessWrappedInRef) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  int shared = 1;
  EXPECT_EQ(executor->submit([](int value) { return value += 98; }, shared).result(), 99);
  EXPECT_EQ(shared, 1);
  executor->submit([](int& value) { value = 42; }, std::ref(shared)).result();
  EXPECT_EQ(shared, 42);
  std::vector<int> values{1, 2, 3};
  EXPECT_EQ(executor->submit([](const std::vector<int>& v) { return v.size(); }, std::cref(values))
                .result(),
            3u);
}

TEST_P(ExecutorTest, SubmitArgumentsAreCopiedAtSubmission) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);
  threading::Event gate;
  executor->submit([&gate] { gate.wait(); });
  std::string text = "before";
  Future<std::string> future = executor->submit([](const std::string& s) { return s; }, text);
  text = "after";
  gate.set();
  EXPECT_EQ(future.result(), "before");
}

TEST_P(ExecutorTest, SubmitMovesMoveOnlyArguments) {
  auto executor = make();
  Future<int> future = executor->submit([](std::unique_ptr<int> value) { return *value * 2; },
                                        std::make_unique<int>(21));
  EXPECT_EQ(future.result(), 42);
}

TEST_P(ExecutorTest, SubmitAcceptsAMoveOnlyCallable) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  auto owned = std::make_unique<int>(6);
  Future<int> future = executor->submit([owned = std::move(owned)] { return *owned * 7; });
  EXPECT_EQ(future.result(), 42);
}

TEST_P(ExecutorTest, SubmitReturnsAMoveOnlyResult) {
  auto executor = make();
  Future<std::unique_ptr<int>> future =
      executor->submit([](int value) { return std::make_unique<int>(value); }, 5);
  std::unique_ptr<int> value = future.result();
  ASSERT_NE(value, nullptr);
  EXPECT_EQ(*value, 5);
  EXPECT_THROW(future.result(), spindle::futures::InvalidStateError);
}

TEST_P(ExecutorTest, SubmitOfACallReturningAReferenceGivesACopy) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  int value = 5;
  Future<int> future = executor->submit([&value]() -> int& { return value; });
  static_assert(std::is_same_v<decltype(future), Future<int>>);
  EXPECT_EQ(future.result(), 5);
  value = 6;
  EXPECT_EQ(future.result(), 5);
}

TEST_P(ExecutorTest, SubmitOfAVoidFunctionGivesAFutureOfVoid) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  std::atomic<bool> ran{false};
  Future<void> future = executor->submit([&ran] { ran = true; });
  static_assert(std::is_same_v<decltype(future), Future<void>>);
  future.result();
  EXPECT_TRUE(ran.load());
}

TEST_P(ExecutorTest, TaskExceptionIsRethrownWithItsOwnType) {
  auto executor = make();
  Future<int> future = executor->submit(divide, 1, 0);
  EXPECT_THROW(future.result(), TaskError);
  EXPECT_TRUE(holds<TaskError>(future.exception()));
  Future<void> void_future = executor->submit(futures_test::fail_with_task_error);
  EXPECT_THROW(void_future.result(), TaskError);
}

TEST_P(ExecutorTest, TaskExceptionOfAStandardTypeKeepsItsType) {
  auto executor = make();
  Future<int> future = executor->submit([]() -> int { throw std::out_of_range("range"); });
  EXPECT_THROW(future.result(), std::out_of_range);
}

TEST_P(ExecutorTest, ExceptionReturnsNullptrForASuccessfulTask) {
  auto executor = make();
  Future<int> future = executor->submit(mul, 6, 7);
  EXPECT_EQ(future.exception(), nullptr);
  EXPECT_EQ(future.result(), 42);
}

TEST_P(ExecutorTest, SubmittedFutureIsDoneAfterResult) {
  auto executor = make();
  Future<int> future = executor->submit(mul, 2, 3);
  future.result();
  EXPECT_TRUE(future.done());
  EXPECT_FALSE(future.running());
  EXPECT_FALSE(future.cancelled());
  EXPECT_FALSE(future.cancel());
}

TEST_P(ExecutorTest, RunningTaskCannotBeCancelled) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);
  threading::Event started;
  threading::Event gate;
  Future<int> future = executor->submit([&] {
    started.set();
    gate.wait();
    return 1;
  });
  started.wait();
  EXPECT_TRUE(future.running());
  EXPECT_FALSE(future.done());
  EXPECT_FALSE(future.cancel());
  EXPECT_FALSE(future.cancelled());
  EXPECT_THROW(future.result(0s), TimeoutError);
  gate.set();
  EXPECT_EQ(future.result(), 1);
}

TEST_P(ExecutorTest, PendingTaskCanBeCancelledAndNeverRuns) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);
  threading::Event started;
  threading::Event gate;
  std::atomic<bool> second_ran{false};
  Future<void> first = executor->submit([&] {
    started.set();
    gate.wait();
  });
  started.wait();
  Future<void> second = executor->submit([&] { second_ran = true; });
  EXPECT_FALSE(second.running());
  EXPECT_TRUE(second.cancel());
  EXPECT_TRUE(second.cancelled());
  EXPECT_TRUE(second.done());
  EXPECT_THROW(second.result(), CancelledError);
  gate.set();
  first.result();
  executor->shutdown(true);
  EXPECT_FALSE(second_ran.load());
}

TEST_P(ExecutorTest, DoneCallbackOfATaskRunsInTheThreadThatRanIt) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);
  threading::Event gate;
  std::atomic<std::uint64_t> task_thread{0};
  std::atomic<std::uint64_t> callback_thread{0};
  threading::Event callback_ran;
  Future<int> future = executor->submit([&] {
    gate.wait();
    task_thread = threading::get_ident();
    return 1;
  });
  future.add_done_callback([&](const Future<int>& done) {
    EXPECT_EQ(done.result(), 1);
    callback_thread = threading::get_ident();
    callback_ran.set();
  });
  gate.set();
  callback_ran.wait();
  EXPECT_EQ(callback_thread.load(), task_thread.load());
  EXPECT_NE(callback_thread.load(), threading::get_ident());
}

TEST_P(ExecutorTest, DoneCallbackRunsForACancelledTask) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);
  threading::Event gate;
  executor->submit([&gate] { gate.wait(); });
  Future<int> pending = executor->submit(mul, 1, 1);
  int calls = 0;
  pending.add_done_callback([&](const Future<int>& done) {
    EXPECT_TRUE(done.cancelled());
    ++calls;
  });
  EXPECT_TRUE(pending.cancel());
  EXPECT_EQ(calls, 1);
  gate.set();
  executor->shutdown(true);
  EXPECT_EQ(calls, 1);
}

TEST_P(ExecutorTest, SubmitFromManyThreads) {
  auto executor = make();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::vector<std::vector<Future<int>>> futures(kThreads);
  {
    Threads submitters;
    submitters.start_n(kThreads, [&](std::size_t t) {
      for (int i = 0; i < kPerThread; ++i) {
        futures[t].push_back(executor->submit(mul, static_cast<int>(t), i));
      }
    });
  }
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i)
      ASSERT_EQ(futures[t][i].result(), t * i);
  }
}

TEST_P(ExecutorTest, NoExceptionIsLost) {
  auto executor = make();
  std::vector<Future<int>> futures;
  for (int i = 0; i < 1000; ++i)
    futures.push_back(executor->submit(divide, i, i % 3));
  int failures = 0;
  int successes = 0;
  for (int i = 0; i < 1000; ++i) {
    try {
      const int value = futures[i].result();
      EXPECT_EQ(value, i / (i % 3));
      ++successes;
    } catch (const TaskError&) {
      EXPECT_EQ(i % 3, 0);
      ++failures;
    }
  }
  EXPECT_EQ(failures, 334);
  EXPECT_EQ(successes, 666);
}

TEST_P(ExecutorTest, TaskMaySubmitToItsOwnExecutor) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(2);
  Executor& self = *executor;
  Future<Future<int>> outer = executor->submit([&self] { return self.submit(mul, 6, 7); });
  EXPECT_EQ(outer.result().result(), 42);
}

TEST_P(ExecutorTest, DroppedFutureStillRuns) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  std::atomic<int> ran{0};
  for (int i = 0; i < 20; ++i)
    (void)executor->submit([&ran] { ran.fetch_add(1); });
  executor->shutdown(true);
  EXPECT_EQ(ran.load(), 20);
}

TEST_P(ExecutorTest, DoneCallbackRunsAfterItsFutureIsDropped) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  spindle::threading::Event release_task;
  spindle::threading::Event called;
  std::atomic<int> seen{0};
  {
    Future<int> future = executor->submit([&release_task] {
      release_task.wait();
      return 42;
    });
    future.add_done_callback([&](const Future<int>& done) {
      seen.store(done.result());
      called.set();
    });
  }  // the only handle is gone before the task runs to its end
  release_task.set();
  EXPECT_TRUE(called.wait(10s));
  EXPECT_EQ(seen.load(), 42);
}

TEST_P(ExecutorTest, DroppedFutureOfAFailingTaskStillRunsTheCall) {
  SKIP_UNLESS_IN_PROCESS();
  futures_test::CapturedStderr captured;
  auto executor = make(1);
  std::atomic<int> ran{0};
  for (int i = 0; i < 5; ++i) {
    (void)executor->submit([&ran]() -> int {
      ran.fetch_add(1);
      throw TaskError("dropped");
    });
  }
  executor->shutdown(true);
  executor.reset();
  EXPECT_EQ(ran.load(), 5);
  // Nobody could read the exception: each is reported when its future goes.
  EXPECT_NE(captured.text().find("Future exception was never retrieved"), std::string::npos);
}

TEST_P(ExecutorTest, TaskReleasesWhatItHoldsOnceDone) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  auto token = std::make_shared<int>(1);
  std::weak_ptr<int> watch = token;
  Future<int> future = executor->submit([token = std::move(token)] { return *token; });
  EXPECT_EQ(future.result(), 1);
  // The callable was released before the future completed, while we still hold the future.
  EXPECT_TRUE(watch.expired());
}

// ---------------------------------------------------------------------------------------
// map
// ---------------------------------------------------------------------------------------

template <class Range>
auto to_vector(Range&& range) {
  std::vector<typename std::remove_cvref_t<decltype(range.begin())>::value_type> out;
  for (auto it = range.begin(); it != range.end(); ++it)
    out.push_back(*it);
  return out;
}

TEST_P(ExecutorTest, MapYieldsResultsInInputOrder) {
  auto executor = make();
  std::vector<int> inputs(100);
  std::iota(inputs.begin(), inputs.end(), 0);
  std::vector<int> results = to_vector(executor->map(identity, inputs));
  EXPECT_EQ(results, inputs);
}

TEST_P(ExecutorTest, MapKeepsInputOrderWhenLaterCallsFinishFirst) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(4);
  // Call i waits until call i + 1 finished; the last finishes at once. With four workers
  // they all run at once (a call that gave up waiting yields -1).
  constexpr int kCalls = 4;
  std::vector<std::unique_ptr<threading::Event>> finished;
  for (int i = 0; i < kCalls; ++i)
    finished.push_back(std::make_unique<threading::Event>());
  std::vector<int> inputs{0, 1, 2, 3};
  auto results = executor->map(
      [&finished](int i) {
        if (i + 1 < kCalls && !finished[i + 1]->wait(5s)) return -1;
        finished[i]->set();
        return i * 10;
      },
      inputs);
  EXPECT_EQ(to_vector(results), (std::vector<int>{0, 10, 20, 30}));
}

TEST_P(ExecutorTest, MapZipsSeveralIterables) {
  auto executor = make();
  std::vector<int> bases{1, 2, 3, 4};
  std::list<int> exponents{2, 2, 2, 2};
  EXPECT_EQ(to_vector(executor->map(int_pow, bases, exponents)),
            (std::vector<long long>{1, 4, 9, 16}));
}

TEST_P(ExecutorTest, MapStopsAtTheShortestIterable) {
  auto executor = make();
  std::vector<int> a{1, 2, 3, 4, 5};
  std::vector<int> b{10, 20};
  std::vector<int> c{100, 200, 300};
  EXPECT_EQ(to_vector(executor->map(add_three, a, b, c)), (std::vector<int>{111, 222}));
  std::vector<int> empty;
  EXPECT_TRUE(to_vector(executor->map(add_three, a, empty, c)).empty());
}

TEST_P(ExecutorTest, MapAcceptsViews) {
  auto executor = make();
  std::vector<int> inputs{0, 1, 2, 3, 4, 5};
  auto squares = executor->map([](int x) { return x * x; }, std::span(inputs).subspan(1, 4));
  EXPECT_EQ(to_vector(squares), (std::vector<int>{1, 4, 9, 16}));
}

TEST_P(ExecutorTest, MapSizeIsTheNumberOfCalls) {
  auto executor = make();
  std::vector<int> inputs{1, 2, 3};
  auto results = executor->map(identity, inputs);
  EXPECT_EQ(results.size(), 3u);
}

TEST_P(ExecutorTest, MapOverAnEmptyRangeYieldsNothing) {
  auto executor = make();
  std::vector<int> none;
  auto results = executor->map(identity, none);
  EXPECT_TRUE(results.begin() == results.end());
}

TEST_P(ExecutorTest, MapOfAVoidFunctionYieldsMonostate) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  std::atomic<int> sum{0};
  std::vector<int> inputs{1, 2, 3};
  auto results = executor->map([&sum](int x) { sum.fetch_add(x); }, inputs);
  static_assert(std::is_same_v<decltype(*results.begin()), std::monostate>);
  EXPECT_EQ(to_vector(results).size(), 3u);
  EXPECT_EQ(sum.load(), 6);
}

TEST_P(ExecutorTest, MapOfMoveOnlyResults) {
  auto executor = make();
  std::vector<int> inputs{1, 2, 3};
  auto results = executor->map([](int x) { return std::make_unique<int>(x); }, inputs);
  std::vector<int> values;
  for (auto it = results.begin(); it != results.end(); ++it)
    values.push_back(**it);
  EXPECT_EQ(values, inputs);
}

TEST_P(ExecutorTest, MapRethrowsAnExceptionWhenItsElementIsReached) {
  auto executor = make();
  std::vector<int> numerators{1, 1, 1, 1};
  std::vector<int> denominators{2, 3, 0, 5};
  auto results =
      executor->map([](int x, int y) { return divide(x * 6, y); }, numerators, denominators);
  auto it = results.begin();
  EXPECT_EQ(*it, 3);
  ++it;
  EXPECT_EQ(*it, 2);
  ++it;
  EXPECT_THROW(*it, TaskError);
}

TEST_P(ExecutorTest, MapSubmitsEveryCallWithoutIteration) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  std::mutex mutex;
  std::vector<int> finished;
  std::vector<int> inputs{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  auto results = executor->map(
      [&](int n) {
        std::lock_guard guard(mutex);
        finished.push_back(n);
      },
      inputs);
  executor->shutdown(true);
  std::sort(finished.begin(), finished.end());
  EXPECT_EQ(finished, inputs);
}

TEST_P(ExecutorTest, MapWithChunksizeGivesTheSameResults) {
  auto executor = make();
  std::vector<int> bases{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<int> exponents{2, 2, 2, 2, 2, 2, 2, 2, 2, 2};
  std::vector<long long> expected;
  for (int b : bases)
    expected.push_back(static_cast<long long>(b) * b);
  for (std::size_t chunksize : {1u, 3u, 100u}) {
    EXPECT_EQ(
        to_vector(executor->map(MapOptions{.chunksize = chunksize}, int_pow, bases, exponents)),
        expected)
        << "chunksize " << chunksize;
  }
}

TEST_P(ExecutorTest, MapChunksizeZeroIsInvalidArgument) {
  auto executor = make();
  std::vector<int> inputs{1, 2};
  EXPECT_THROW(executor->map(MapOptions{.chunksize = 0}, identity, inputs), std::invalid_argument);
}

TEST_P(ExecutorTest, MapTimeoutThrowsTimeoutErrorAtTheSlowElement) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);  // one worker: the calls run in input order
  threading::Event gate;
  std::vector<int> inputs{0, 0, 1};
  auto results = executor->map(
      MapOptions{.timeout = 200ms},
      [&gate](int wait_for_gate) {
        if (wait_for_gate) gate.wait();
        return wait_for_gate;
      },
      inputs);
  std::vector<int> seen;
  EXPECT_THROW(
      {
        for (auto it = results.begin(); it != results.end(); ++it)
          seen.push_back(*it);
      },
      TimeoutError);
  EXPECT_EQ(seen, (std::vector<int>{0, 0}));
  gate.set();
}

TEST_P(ExecutorTest, MapTimeoutIsCountedFromTheCall) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make();
  threading::Event gate;
  std::vector<int> inputs{1};
  auto results = executor->map(
      MapOptions{.timeout = 300ms},
      [&gate](int x) {
        gate.wait();
        return x;
      },
      inputs);
  // Let the whole timeout pass before reading: the read must not wait another one.
  std::this_thread::sleep_until(Clock::now() + 300ms);
  const auto start = Clock::now();
  EXPECT_THROW(*results.begin(), TimeoutError);
  EXPECT_LT(Clock::now() - start, 250ms);
  gate.set();
}

// Python (3.12 on) cancels the call a map read gave up on at once, not when the range goes.
TEST_P(ExecutorTest, MapTimeoutCancelsTheCallItGaveUpOn) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);
  threading::Event started;
  threading::Event gate;
  std::atomic<int> ran{0};
  Future<void> blocker = executor->submit([&] {
    started.set();
    gate.wait();
  });
  started.wait();
  std::vector<int> inputs{1};
  auto results = executor->map(
      MapOptions{.timeout = 0s}, [&ran](int x) { ran.fetch_add(x); }, inputs);
  EXPECT_THROW(*results.begin(), TimeoutError);
  gate.set();
  blocker.result();
  executor->shutdown(true);  // the range is still alive
  EXPECT_EQ(ran.load(), 0);
}

TEST_P(ExecutorTest, MapZeroTimeoutCancelsTheCallsNotStarted) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);
  threading::Event started;
  threading::Event gate;
  std::mutex mutex;
  std::vector<std::string> log;
  auto log_and_wait = [&](const std::string& name) {
    {
      std::lock_guard guard(mutex);
      log.push_back(name + " started");
    }
    started.set();
    gate.wait();
    std::lock_guard guard(mutex);
    log.push_back(name + " stopped");
  };
  Future<void> first = executor->submit(log_and_wait, std::string("first"));
  started.wait();
  {
    std::vector<std::string> names{"second", "third"};
    auto results = executor->map(MapOptions{.timeout = 0s}, log_and_wait, names);
    EXPECT_THROW(*results.begin(), TimeoutError);
  }
  gate.set();
  first.result();
  executor->shutdown(true);
  EXPECT_EQ(log, (std::vector<std::string>{"first started", "first stopped"}));
}

TEST_P(ExecutorTest, DestroyingTheMapRangeCancelsCallsNotStarted) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);
  threading::Event started;
  threading::Event gate;
  executor->submit([&] {
    started.set();
    gate.wait();
  });
  started.wait();
  std::atomic<int> ran{0};
  std::vector<int> inputs(10, 1);
  {
    auto results = executor->map([&ran](int x) { ran.fetch_add(x); }, inputs);
  }
  gate.set();
  executor->shutdown(true);
  EXPECT_EQ(ran.load(), 0);
}

TEST_P(ExecutorTest, DestroyingAPartlyReadMapRangeCancelsOnlyTheRest) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);
  threading::Event gate;
  std::atomic<int> ran{0};
  std::vector<int> inputs{0, 1, 2, 3, 4};
  {
    auto results = executor->map(
        [&](int x) {
          ran.fetch_add(1);
          if (x == 1) gate.wait();
          return x;
        },
        inputs);
    auto it = results.begin();
    EXPECT_EQ(*it, 0);
    ++it;
    // Element 1 is running, or not started yet; 2, 3 and 4 wait behind it. Python cancels the
    // rest last one first, so that the worker cannot start 2 while 1 is being cancelled.
  }
  gate.set();
  executor->shutdown(true);
  EXPECT_LE(ran.load(), 2);
}

TEST_P(ExecutorTest, MapResultsMayBeReadAfterShutdown) {
  auto executor = make(5);
  std::vector<int> inputs{-5, -4, -3, -2, -1, 0, 1, 2, 3, 4};
  auto results = executor->map([](int x) { return x < 0 ? -x : x; }, inputs);
  executor->shutdown(false);
  EXPECT_EQ(to_vector(results), (std::vector<int>{5, 4, 3, 2, 1, 0, 1, 2, 3, 4}));
}

// ---------------------------------------------------------------------------------------
// shutdown and destruction
// ---------------------------------------------------------------------------------------

TEST_P(ExecutorTest, SubmitAfterShutdownThrowsLogicError) {
  auto executor = make();
  executor->shutdown();
  EXPECT_THROW(executor->submit(mul, 2, 5), std::logic_error);
}

TEST_P(ExecutorTest, SubmitAfterShutdownWithoutWaitThrowsLogicError) {
  auto executor = make();
  executor->submit(mul, 1, 1).result();
  executor->shutdown(false);
  EXPECT_THROW(executor->submit(mul, 2, 5), std::logic_error);
}

TEST_P(ExecutorTest, MapAfterShutdownThrowsLogicError) {
  auto executor = make();
  executor->shutdown();
  std::vector<int> inputs{1, 2};
  EXPECT_THROW(executor->map(identity, inputs), std::logic_error);
}

TEST_P(ExecutorTest, ShutdownMayBeCalledAgain) {
  auto executor = make();
  executor->submit(mul, 1, 1).result();
  executor->shutdown();
  EXPECT_NO_THROW(executor->shutdown());
  EXPECT_NO_THROW(executor->shutdown(false, true));
}

TEST_P(ExecutorTest, ShutdownOfAnUnusedExecutorReturns) {
  auto executor = make();
  executor->shutdown(true);
  auto other = make();
  other->shutdown(false);
}

TEST_P(ExecutorTest, ShutdownWaitsForEveryPendingTask) {
  auto executor = make();
  std::vector<Future<int>> futures;
  for (int i = 0; i < 50; ++i)
    futures.push_back(executor->submit(mul, i, 2));
  executor->shutdown(true);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(futures[i].done()) << i;
    EXPECT_EQ(futures[i].result(), 2 * i);
  }
}

TEST_P(ExecutorTest, ShutdownWithMoreQueuedCallsThanWorkers) {
  auto executor = make(2);
  std::vector<int> inputs(3, 2);
  auto results = executor->map(identity, inputs);
  executor->shutdown();
  EXPECT_EQ(to_vector(results), inputs);
}

TEST_P(ExecutorTest, ShutdownWithoutWaitReturnsWhileATaskRuns) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);
  threading::Event started;
  threading::Event gate;
  Future<int> running = executor->submit([&] {
    started.set();
    gate.wait();
    return 3;
  });
  Future<int> queued = executor->submit(mul, 2, 2);
  started.wait();
  executor->shutdown(false);
  EXPECT_FALSE(running.done());
  gate.set();
  EXPECT_EQ(running.result(), 3);
  EXPECT_EQ(queued.result(), 4);
}

TEST_P(ExecutorTest, ShutdownCancelFuturesCancelsPendingTasks) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);
  threading::Event started;
  threading::Event gate;
  std::atomic<int> ran{0};
  Future<int> running = executor->submit([&] {
    started.set();
    gate.wait();
    return 1;
  });
  started.wait();
  std::vector<Future<void>> pending;
  std::atomic<int> callbacks{0};
  for (int i = 0; i < 50; ++i) {
    pending.push_back(executor->submit([&ran] { ran.fetch_add(1); }));
    pending.back().add_done_callback([&callbacks](const Future<void>& done) {
      if (done.cancelled()) callbacks.fetch_add(1);
    });
  }
  executor->shutdown(false, true);
  gate.set();
  executor->shutdown(true);
  EXPECT_EQ(running.result(), 1);
  for (auto& future : pending) {
    EXPECT_TRUE(future.cancelled());
    EXPECT_THROW(future.result(), CancelledError);
  }
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(callbacks.load(), 50);
}

TEST_P(ExecutorTest, ShutdownCancelFuturesWithWaitLeavesEveryFutureDone) {
  auto executor = make(2);
  std::vector<Future<int>> futures;
  for (int i = 0; i < 200; ++i)
    futures.push_back(executor->submit(mul, i, 1));
  executor->shutdown(true, true);
  int cancelled = 0;
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(futures[i].done()) << i;
    if (futures[i].cancelled()) {
      ++cancelled;
    } else {
      EXPECT_EQ(futures[i].result(), i);
    }
  }
  RecordProperty("cancelled", cancelled);
}

TEST_P(ExecutorTest, ShutdownAfterACancelledSubmitDoesNotHang) {
  auto executor = make(1);
  executor->submit(mul, 1, 1).result();
  executor->submit(mul, 1, 1).cancel();
  executor->shutdown(true);
}

TEST_P(ExecutorTest, DestructorWaitsForRunningWork) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(1);
  threading::Event started;
  threading::Event gate;
  std::atomic<bool> finished{false};
  executor->submit([&] {
    started.set();
    gate.wait();
    finished = true;
  });
  started.wait();
  Threads releaser;
  threading::Event destroying;
  releaser.start([&] {
    destroying.wait();
    gate.set();
  });
  destroying.set();
  executor.reset();
  EXPECT_TRUE(finished.load());
}

TEST_P(ExecutorTest, DestroyingWithWorkQueuedRunsItAll) {
  SKIP_UNLESS_IN_PROCESS();
  auto executor = make(2);
  threading::Event gate;
  std::atomic<int> ran{0};
  std::vector<Future<void>> futures;
  for (int i = 0; i < 2; ++i) {
    futures.push_back(executor->submit([&] {
      gate.wait();
      ran.fetch_add(1);
    }));
  }
  for (int i = 0; i < 100; ++i)
    futures.push_back(executor->submit([&ran] { ran.fetch_add(1); }));
  Threads releaser;
  threading::Event destroying;
  releaser.start([&] {
    destroying.wait();
    gate.set();
  });
  destroying.set();
  executor.reset();
  EXPECT_EQ(ran.load(), 102);
  for (auto& future : futures)
    EXPECT_TRUE(future.done());
}

TEST_P(ExecutorTest, FuturesOutliveTheirExecutor) {
  Future<int> future;
  {
    auto executor = make();
    future = executor->submit(mul, 3, 4);
  }
  EXPECT_TRUE(future.done());
  EXPECT_EQ(future.result(), 12);
}

INSTANTIATE_TEST_SUITE_P(Executors, ExecutorTest, testing::ValuesIn(executor_kinds()));

}  // namespace
