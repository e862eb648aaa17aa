// spindle::futures::Future on its own, completed by hand as an executor would: its states,
// result() and exception() with and without a timeout, set_* misuse, Future<void>, move-only
// results, done callbacks, identity, and the report of an exception nobody read.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "futures_test_support.hpp"
#include "spindle/futures.hpp"
#include "spindle/threading.hpp"

namespace {

using namespace std::chrono_literals;
using futures_test::cancelled_future;
using futures_test::CapturedStderr;
using futures_test::exception_future;
using futures_test::exception_of;
using futures_test::holds;
using futures_test::pending_future;
using futures_test::running_future;
using futures_test::successful_future;
using futures_test::TaskError;
using futures_test::Threads;
using futures_test::what_of;
using spindle::TimeoutError;
using spindle::futures::CancelledError;
using spindle::futures::Future;
using spindle::futures::InvalidStateError;
namespace threading = spindle::threading;

std::exception_ptr task_error(const std::string& what = "boom") {
  return std::make_exception_ptr(TaskError(what));
}

// ---------------------------------------------------------------------------------------
// States
// ---------------------------------------------------------------------------------------

TEST(FutureState, FreshFutureIsPending) {
  Future<int> future;
  EXPECT_FALSE(future.done());
  EXPECT_FALSE(future.running());
  EXPECT_FALSE(future.cancelled());
}

TEST(FutureState, SetRunningOrNotifyCancelMakesAPendingFutureRunning) {
  Future<int> future;
  EXPECT_TRUE(future.set_running_or_notify_cancel());
  EXPECT_TRUE(future.running());
  EXPECT_FALSE(future.done());
  EXPECT_FALSE(future.cancelled());
}

TEST(FutureState, CancelledFutureIsDoneAndCancelledNotRunning) {
  Future<int> future;
  ASSERT_TRUE(future.cancel());
  EXPECT_TRUE(future.cancelled());
  EXPECT_TRUE(future.done());
  EXPECT_FALSE(future.running());
}

TEST(FutureState, FutureWithAResultIsDoneNotCancelledNotRunning) {
  Future<int> from_pending;
  from_pending.set_result(1);
  Future<int> from_running = running_future();
  from_running.set_result(2);
  for (const auto& future : {from_pending, from_running}) {
    EXPECT_TRUE(future.done());
    EXPECT_FALSE(future.cancelled());
    EXPECT_FALSE(future.running());
  }
}

TEST(FutureState, FutureWithAnExceptionIsDoneNotCancelledNotRunning) {
  Future<int> future = exception_future();
  EXPECT_TRUE(future.done());
  EXPECT_FALSE(future.cancelled());
  EXPECT_FALSE(future.running());
}

TEST(FutureState, CancelSucceedsOnPendingFuture) {
  Future<int> future;
  EXPECT_TRUE(future.cancel());
  EXPECT_TRUE(future.cancelled());
}

TEST(FutureState, CancelFailsOnRunningFutureAndLeavesItRunning) {
  Future<int> future = running_future();
  EXPECT_FALSE(future.cancel());
  EXPECT_TRUE(future.running());
  EXPECT_FALSE(future.cancelled());
  future.set_result(5);
  EXPECT_EQ(future.result(), 5);
}

TEST(FutureState, CancelFailsOnFinishedFuture) {
  Future<int> with_result = successful_future(7);
  Future<int> with_exception = exception_future();
  EXPECT_FALSE(with_result.cancel());
  EXPECT_FALSE(with_exception.cancel());
  EXPECT_FALSE(with_result.cancelled());
  EXPECT_FALSE(with_exception.cancelled());
  EXPECT_EQ(with_result.result(), 7);
}

TEST(FutureState, CancelReturnsTrueAgainOnCancelledFuture) {
  Future<int> future;
  ASSERT_TRUE(future.cancel());
  EXPECT_TRUE(future.cancel());
  EXPECT_TRUE(future.cancelled());
}

TEST(FutureState, SetRunningOrNotifyCancelReturnsFalseForCancelledFuture) {
  Future<int> future = cancelled_future();
  EXPECT_FALSE(future.set_running_or_notify_cancel());
  EXPECT_TRUE(future.cancelled());
}

TEST(FutureState, SetRunningOrNotifyCancelDoesNotRunCallbacksAgain) {
  Future<int> future;
  int calls = 0;
  future.add_done_callback([&](const Future<int>&) { ++calls; });
  ASSERT_TRUE(future.cancel());
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(future.set_running_or_notify_cancel());
  EXPECT_EQ(calls, 1);
}

TEST(FutureState, SetRunningOrNotifyCancelThrowsLogicErrorWhenRunning) {
  Future<int> future = running_future();
  EXPECT_THROW(future.set_running_or_notify_cancel(), std::logic_error);
  EXPECT_TRUE(future.running());
}

TEST(FutureState, SetRunningOrNotifyCancelThrowsLogicErrorWhenFinished) {
  Future<int> with_result = successful_future();
  Future<int> with_exception = exception_future();
  EXPECT_THROW(with_result.set_running_or_notify_cancel(), std::logic_error);
  EXPECT_THROW(with_exception.set_running_or_notify_cancel(), std::logic_error);
  EXPECT_TRUE(with_result.done());
}

// ---------------------------------------------------------------------------------------
// result() and exception()
// ---------------------------------------------------------------------------------------

TEST(FutureResult, ResultReturnsTheValueSet) {
  Future<std::string> future;
  future.set_result("value");
  EXPECT_EQ(future.result(), "value");
  EXPECT_EQ(future.result(), "value");  // a copyable value can be read again
}

TEST(FutureResult, ResultWithTimeoutReturnsAtOnceWhenFinished) {
  Future<int> future = successful_future(42);
  EXPECT_EQ(future.result(0s), 42);
  EXPECT_EQ(future.result(10ms), 42);
}

TEST(FutureResult, ResultWithTimeoutThrowsTimeoutErrorWhilePending) {
  Future<int> future;
  EXPECT_THROW(future.result(0s), TimeoutError);
  EXPECT_THROW(future.result(20ms), TimeoutError);
  EXPECT_FALSE(future.done());
}

TEST(FutureResult, ResultWithTimeoutThrowsTimeoutErrorWhileRunning) {
  Future<int> future = running_future();
  EXPECT_THROW(future.result(0s), TimeoutError);
  EXPECT_THROW(future.result(20ms), TimeoutError);
}

TEST(FutureResult, ResultWithTimeoutWaitsAtLeastTheTimeout) {
  Future<int> future;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(future.result(50ms), TimeoutError);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
}

TEST(FutureResult, ResultThrowsCancelledErrorForCancelledFuture) {
  Future<int> future = cancelled_future();
  EXPECT_THROW(future.result(), CancelledError);
  EXPECT_THROW(future.result(0s), CancelledError);
}

TEST(FutureResult, ResultRethrowsTheExceptionWithItsOwnType) {
  Future<int> future;
  future.set_exception(std::make_exception_ptr(TaskError("its own message", 17)));
  try {
    future.result();
    FAIL() << "result() returned";
  } catch (const TaskError& error) {
    EXPECT_STREQ(error.what(), "its own message");
    EXPECT_EQ(error.code, 17);
  }
  EXPECT_THROW(future.result(0s), TaskError);
}

TEST(FutureResult, ResultRethrowsStandardExceptionTypes) {
  Future<int> future;
  future.set_exception(std::make_exception_ptr(std::out_of_range("index")));
  EXPECT_THROW(future.result(), std::out_of_range);
}

TEST(FutureResult, ExceptionReturnsNullptrOnSuccess) {
  Future<int> future = successful_future();
  EXPECT_EQ(future.exception(), nullptr);
  EXPECT_EQ(future.exception(0s), nullptr);
}

TEST(FutureResult, ExceptionReturnsTheExceptionSet) {
  Future<int> future;
  const std::exception_ptr error = task_error("stored");
  future.set_exception(error);
  EXPECT_EQ(future.exception(), error);
  EXPECT_TRUE(holds<TaskError>(future.exception(0s)));
  EXPECT_EQ(what_of(future.exception()), "stored");
}

TEST(FutureResult, ExceptionWithTimeoutThrowsTimeoutErrorWhilePendingOrRunning) {
  Future<int> pending = pending_future();
  Future<int> running = running_future();
  EXPECT_THROW(pending.exception(0s), TimeoutError);
  EXPECT_THROW(running.exception(0s), TimeoutError);
  EXPECT_THROW(pending.exception(20ms), TimeoutError);
}

TEST(FutureResult, ExceptionThrowsCancelledErrorForCancelledFuture) {
  Future<int> future = cancelled_future();
  EXPECT_THROW(future.exception(), CancelledError);
  EXPECT_THROW(future.exception(0s), CancelledError);
}

TEST(FutureResult, NegativeTimeoutIsInvalidArgument) {
  Future<int> future = successful_future();
  EXPECT_THROW(future.result(-1ms), std::invalid_argument);
  EXPECT_THROW(future.exception(-1ms), std::invalid_argument);
}

TEST(FutureResult, FractionalTimeoutIsAccepted) {
  Future<int> future;
  EXPECT_THROW(future.result(std::chrono::duration<double>(0.01)), TimeoutError);
}

TEST(FutureResult, HugeTimeoutIsAccepted) {
  Future<int> done = successful_future(4);
  EXPECT_EQ(done.result(std::chrono::hours::max()), 4);
  Future<int> pending;
  Threads threads;
  threads.start([pending]() mutable { pending.set_result(5); });
  EXPECT_EQ(pending.result(std::chrono::hours::max()), 5);
}

TEST(FutureResult, ValueTypeNeedsNoDefaultConstructor) {
  struct NoDefault {
    explicit NoDefault(int v) : value(v) {}
    int value;
  };
  Future<NoDefault> future;
  future.set_result(NoDefault(3));
  EXPECT_EQ(future.result().value, 3);
}

// A wait that times out leaves nothing behind on the future: polling a long-running future
// must not grow it. Every registered wake-up holds a reference to the polling thread's waiter,
// so the waiter's reference count tells how many are left.
TEST(FutureResult, PollingWithATimeoutLeavesNothingBehind) {
  Future<int> pending;
  std::vector<Future<int>> futures{pending};
  const auto& waiter = spindle::detail::current_waiter();
  const long before = waiter.use_count();
  for (int i = 0; i < 100; ++i) {
    EXPECT_THROW(pending.result(0s), TimeoutError);
    EXPECT_THROW(pending.exception(0s), TimeoutError);
    EXPECT_EQ(spindle::futures::wait(futures, {.timeout = 0s}).not_done.size(), 1u);
  }
  EXPECT_LE(waiter.use_count() - before, 3) << "registrations left on the pending future";
  pending.set_result(1);
  EXPECT_EQ(waiter.use_count(), before);
}

TEST(FutureResult, ResultBlocksUntilAnotherThreadSetsIt) {
  Future<int> future;
  Threads threads;
  threads.start([future]() mutable { future.set_result(42); });
  EXPECT_EQ(future.result(), 42);
}

TEST(FutureResult, ResultWithTimeoutReturnsWhenAnotherThreadSetsIt) {
  Future<int> future;
  Threads threads;
  threads.start([future]() mutable { future.set_result(42); });
  EXPECT_EQ(future.result(60s), 42);
}

TEST(FutureResult, ResultThrowsCancelledErrorWhenAnotherThreadCancels) {
  Future<int> future;
  Threads threads;
  threads.start([future]() mutable { future.cancel(); });
  EXPECT_THROW(future.result(60s), CancelledError);
}

TEST(FutureResult, ExceptionReturnsWhenAnotherThreadSetsOne) {
  Future<int> future;
  Threads threads;
  threads.start([future]() mutable { future.set_exception(task_error()); });
  EXPECT_TRUE(holds<TaskError>(future.exception(60s)));
}

TEST(FutureResult, ManyThreadsWaitingAllWake) {
  Future<int> future;
  std::atomic<int> woken{0};
  {
    Threads waiters;
    waiters.start_n(8, [&](std::size_t) {
      if (future.result() == 9) woken.fetch_add(1);
    });
    future.set_result(9);
  }
  EXPECT_EQ(woken.load(), 8);
}

TEST(FutureResult, SetResultTwiceThrowsInvalidStateErrorAndKeepsTheFirst) {
  Future<int> future;
  future.set_result(1);
  EXPECT_THROW(future.set_result(2), InvalidStateError);
  EXPECT_TRUE(future.done());
  EXPECT_EQ(future.result(), 1);
}

TEST(FutureResult, SetExceptionTwiceThrowsInvalidStateErrorAndKeepsTheFirst) {
  Future<int> future;
  const std::exception_ptr first = task_error("first");
  future.set_exception(first);
  EXPECT_THROW(future.set_exception(task_error("second")), InvalidStateError);
  EXPECT_EQ(future.exception(), first);
}

TEST(FutureResult, SetExceptionAfterResultThrowsInvalidStateError) {
  Future<int> future;
  future.set_result(1);
  EXPECT_THROW(future.set_exception(task_error()), InvalidStateError);
  EXPECT_EQ(future.result(), 1);
}

TEST(FutureResult, SetResultAfterCancelThrowsInvalidStateError) {
  Future<int> future = cancelled_future();
  EXPECT_THROW(future.set_result(1), InvalidStateError);
  EXPECT_THROW(future.set_exception(task_error()), InvalidStateError);
  EXPECT_TRUE(future.cancelled());
}

TEST(FutureResult, InvalidStateErrorIsASpindleError) {
  Future<int> future = successful_future();
  EXPECT_THROW(future.set_result(1), spindle::Error);
  EXPECT_TRUE((std::is_base_of_v<spindle::Error, CancelledError>));
  EXPECT_TRUE((std::is_base_of_v<spindle::Error, TimeoutError>));
}

TEST(FutureResult, SetExceptionWithNullptrIsInvalidArgument) {
  Future<int> future;
  EXPECT_THROW(future.set_exception(nullptr), std::invalid_argument);
  EXPECT_FALSE(future.done());
}

TEST(FutureResult, ConcurrentSetResultsExactlyOneWins) {
  for (int round = 0; round < 50; ++round) {
    Future<int> future;
    std::atomic<int> winners{0};
    std::atomic<int> losers{0};
    threading::Barrier start(4);
    {
      Threads setters;
      setters.start_n(4, [&](std::size_t index) {
        start.wait();
        try {
          future.set_result(static_cast<int>(index));
          winners.fetch_add(1);
        } catch (const InvalidStateError&) {
          losers.fetch_add(1);
        }
      });
    }
    EXPECT_EQ(winners.load(), 1);
    EXPECT_EQ(losers.load(), 3);
    EXPECT_TRUE(future.done());
  }
}

TEST(FutureResult, ConcurrentCancelAndSetResultExactlyOneWins) {
  for (int round = 0; round < 100; ++round) {
    Future<int> future;
    std::atomic<int> calls{0};
    future.add_done_callback([&](const Future<int>&) { calls.fetch_add(1); });
    threading::Barrier start(2);
    bool cancelled = false;
    bool set = false;
    {
      Threads threads;
      threads.start([&] {
        start.wait();
        cancelled = future.cancel();
      });
      threads.start([&] {
        start.wait();
        try {
          future.set_result(1);
          set = true;
        } catch (const InvalidStateError&) {
        }
      });
    }
    EXPECT_NE(cancelled, set);
    EXPECT_EQ(future.cancelled(), cancelled);
    EXPECT_EQ(calls.load(), 1);
  }
}

// ---------------------------------------------------------------------------------------
// Future<void>
// ---------------------------------------------------------------------------------------

TEST(FutureVoid, ResultReturnsVoidOnceSet) {
  Future<void> future;
  static_assert(std::is_void_v<decltype(future.result())>);
  EXPECT_FALSE(future.done());
  future.set_result();
  EXPECT_TRUE(future.done());
  EXPECT_NO_THROW(future.result());
  EXPECT_NO_THROW(future.result(0s));
  EXPECT_EQ(future.exception(), nullptr);
}

TEST(FutureVoid, ResultRethrowsTheException) {
  Future<void> future;
  future.set_exception(task_error());
  EXPECT_THROW(future.result(), TaskError);
  EXPECT_TRUE(holds<TaskError>(future.exception()));
}

TEST(FutureVoid, TimeoutCancelAndSetTwice) {
  Future<void> pending;
  EXPECT_THROW(pending.result(1ms), TimeoutError);
  Future<void> cancelled;
  EXPECT_TRUE(cancelled.cancel());
  EXPECT_THROW(cancelled.result(), CancelledError);
  Future<void> finished;
  finished.set_result();
  EXPECT_THROW(finished.set_result(), InvalidStateError);
  EXPECT_FALSE(finished.cancel());
}

TEST(FutureVoid, CallbackRuns) {
  Future<void> future;
  bool called = false;
  future.add_done_callback([&](const Future<void>& done) {
    called = true;
    EXPECT_NO_THROW(done.result());
  });
  future.set_result();
  EXPECT_TRUE(called);
}

// ---------------------------------------------------------------------------------------
// Move-only results
// ---------------------------------------------------------------------------------------

TEST(FutureMoveOnly, FirstResultMovesTheValueOut) {
  Future<std::unique_ptr<int>> future;
  future.set_result(std::make_unique<int>(5));
  std::unique_ptr<int> value = future.result();
  ASSERT_NE(value, nullptr);
  EXPECT_EQ(*value, 5);
}

TEST(FutureMoveOnly, SecondResultThrowsInvalidStateError) {
  Future<std::unique_ptr<int>> future;
  future.set_result(std::make_unique<int>(5));
  (void)future.result();
  EXPECT_THROW(future.result(), InvalidStateError);
  EXPECT_THROW(future.result(0s), InvalidStateError);
  // The future is still a successful one.
  EXPECT_EQ(future.exception(), nullptr);
  EXPECT_TRUE(future.done());
}

TEST(FutureMoveOnly, CopiesShareTheSingleValue) {
  Future<std::unique_ptr<int>> future;
  Future<std::unique_ptr<int>> copy = future;
  future.set_result(std::make_unique<int>(3));
  EXPECT_EQ(*copy.result(), 3);
  EXPECT_THROW(future.result(), InvalidStateError);
}

TEST(FutureMoveOnly, ExceptionIsRethrownEveryTime) {
  Future<std::unique_ptr<int>> future;
  future.set_exception(task_error());
  EXPECT_THROW(future.result(), TaskError);
  EXPECT_THROW(future.result(), TaskError);
}

TEST(FutureMoveOnly, ConcurrentResultCallsGiveTheValueToExactlyOne) {
  for (int round = 0; round < 50; ++round) {
    Future<std::unique_ptr<int>> future;
    std::atomic<int> got_value{0};
    std::atomic<int> got_invalid_state{0};
    {
      Threads readers;
      readers.start_n(4, [&](std::size_t) {
        try {
          if (*future.result() == 11) got_value.fetch_add(1);
        } catch (const InvalidStateError&) {
          got_invalid_state.fetch_add(1);
        }
      });
      future.set_result(std::make_unique<int>(11));
    }
    EXPECT_EQ(got_value.load(), 1);
    EXPECT_EQ(got_invalid_state.load(), 3);
  }
}

TEST(FutureMoveOnly, ValueNeverTakenIsDestroyedWithTheFuture) {
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> watch = token;
  {
    Future<std::shared_ptr<int>> future;
    future.set_result(std::move(token));
  }
  EXPECT_TRUE(watch.expired());
}

// ---------------------------------------------------------------------------------------
// Done callbacks
// ---------------------------------------------------------------------------------------

TEST(FutureCallbacks, CallbackSeesTheResultSetLater) {
  Future<int> future;
  int seen = 0;
  future.add_done_callback([&](const Future<int>& done) { seen = done.result(); });
  EXPECT_EQ(seen, 0);
  future.set_result(5);
  EXPECT_EQ(seen, 5);
}

TEST(FutureCallbacks, CallbackSeesTheExceptionSetLater) {
  Future<int> future;
  std::string seen;
  future.add_done_callback([&](const Future<int>& done) { seen = what_of(done.exception()); });
  future.set_exception(task_error("test"));
  EXPECT_EQ(seen, "test");
}

TEST(FutureCallbacks, CallbackSeesTheCancellation) {
  Future<int> future;
  bool was_cancelled = false;
  future.add_done_callback([&](const Future<int>& done) { was_cancelled = done.cancelled(); });
  EXPECT_TRUE(future.cancel());
  EXPECT_TRUE(was_cancelled);
}

TEST(FutureCallbacks, CallbackRunsAtOnceInThisThreadWhenAlreadySuccessful) {
  Future<int> future = successful_future(5);
  int seen = 0;
  std::uint64_t ran_in = 0;
  future.add_done_callback([&](const Future<int>& done) {
    seen = done.result();
    ran_in = threading::get_ident();
  });
  EXPECT_EQ(seen, 5);
  EXPECT_EQ(ran_in, threading::get_ident());
}

TEST(FutureCallbacks, CallbackRunsAtOnceWhenAlreadyFailed) {
  Future<int> future = exception_future("test");
  std::string seen;
  future.add_done_callback([&](const Future<int>& done) { seen = what_of(done.exception()); });
  EXPECT_EQ(seen, "test");
}

TEST(FutureCallbacks, CallbackRunsAtOnceWhenAlreadyCancelled) {
  Future<int> future = cancelled_future();
  bool was_cancelled = false;
  future.add_done_callback([&](const Future<int>& done) { was_cancelled = done.cancelled(); });
  EXPECT_TRUE(was_cancelled);
}

TEST(FutureCallbacks, CallbackDoesNotRunWhileRunning) {
  Future<int> future;
  int calls = 0;
  future.add_done_callback([&](const Future<int>&) { ++calls; });
  future.set_running_or_notify_cancel();
  EXPECT_EQ(calls, 0);
  future.set_result(1);
  EXPECT_EQ(calls, 1);
}

TEST(FutureCallbacks, CallbackRunsExactlyOnce) {
  Future<int> future;
  int calls = 0;
  future.add_done_callback([&](const Future<int>&) { ++calls; });
  future.set_result(1);
  EXPECT_FALSE(future.cancel());
  EXPECT_THROW(future.set_result(2), InvalidStateError);
  EXPECT_THROW(future.set_exception(task_error()), InvalidStateError);
  (void)future.result();
  EXPECT_EQ(calls, 1);
}

TEST(FutureCallbacks, CancelledCallbackRunsExactlyOnce) {
  Future<int> future;
  int calls = 0;
  future.add_done_callback([&](const Future<int>&) { ++calls; });
  EXPECT_TRUE(future.cancel());
  EXPECT_TRUE(future.cancel());
  EXPECT_THROW(future.set_result(2), InvalidStateError);
  EXPECT_EQ(calls, 1);
}

TEST(FutureCallbacks, CallbackRunsInTheCompletingThread) {
  Future<int> future;
  std::uint64_t ran_in = 0;
  std::uint64_t completer = 0;
  future.add_done_callback([&](const Future<int>&) { ran_in = threading::get_ident(); });
  {
    Threads threads;
    threads.start([&] {
      completer = threading::get_ident();
      future.set_result(1);
    });
  }
  EXPECT_NE(completer, 0u);
  EXPECT_EQ(ran_in, completer);
  EXPECT_NE(ran_in, threading::get_ident());
}

TEST(FutureCallbacks, CallbackRunsInTheCancellingThread) {
  Future<int> future;
  std::uint64_t ran_in = 0;
  std::uint64_t canceller = 0;
  future.add_done_callback([&](const Future<int>&) { ran_in = threading::get_ident(); });
  {
    Threads threads;
    threads.start([&] {
      canceller = threading::get_ident();
      future.cancel();
    });
  }
  EXPECT_EQ(ran_in, canceller);
}

TEST(FutureCallbacks, CallbacksRunInTheOrderAdded) {
  Future<int> future;
  std::vector<int> order;
  for (int i = 0; i < 10; ++i) {
    future.add_done_callback([&order, i](const Future<int>&) { order.push_back(i); });
  }
  future.set_result(0);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(FutureCallbacks, ThrowingCallbackIsReportedAndTheOthersStillRun) {
  Future<int> future;
  bool raising_called = false;
  bool other_called = false;
  future.add_done_callback([&](const Future<int>&) {
    raising_called = true;
    throw TaskError("doh!");
  });
  future.add_done_callback([&](const Future<int>&) { other_called = true; });
  CapturedStderr captured;
  EXPECT_NO_THROW(future.set_result(5));
  const std::string err = captured.text();
  EXPECT_TRUE(raising_called);
  EXPECT_TRUE(other_called);
  EXPECT_NE(err.find("exception calling callback"), std::string::npos) << err;
  EXPECT_NE(err.find("doh!"), std::string::npos) << err;
  EXPECT_EQ(future.result(), 5);
}

TEST(FutureCallbacks, ThrowingCallbackOnDoneFutureIsReportedNotThrown) {
  Future<int> future = successful_future(5);
  CapturedStderr captured;
  EXPECT_NO_THROW(future.add_done_callback([](const Future<int>&) { throw TaskError("doh!"); }));
  const std::string err = captured.text();
  EXPECT_NE(err.find("exception calling callback"), std::string::npos) << err;
  EXPECT_NE(err.find("doh!"), std::string::npos) << err;
}

TEST(FutureCallbacks, ThrowingCallbackDoesNotStopCancel) {
  Future<int> future;
  bool other_called = false;
  future.add_done_callback([](const Future<int>&) { throw std::runtime_error("callback"); });
  future.add_done_callback([&](const Future<int>&) { other_called = true; });
  CapturedStderr captured;
  EXPECT_TRUE(future.cancel());
  captured.text();
  EXPECT_TRUE(other_called);
  EXPECT_TRUE(future.cancelled());
}

TEST(FutureCallbacks, CallbackReceivesAHandleToTheSameFuture) {
  Future<int> future;
  bool same = false;
  future.add_done_callback([&](const Future<int>& done) { same = (done == future); });
  future.set_result(1);
  EXPECT_TRUE(same);
}

TEST(FutureCallbacks, CallbackMayKeepItsHandleAfterTheFutureIsGone) {
  std::optional<Future<int>> kept;
  {
    Future<int> future;
    future.add_done_callback([&](const Future<int>& done) { kept = done; });
    future.set_result(8);
  }
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->result(), 8);
}

TEST(FutureCallbacks, CallbackAddedFromACallbackRunsAtOnce) {
  Future<int> future;
  std::vector<std::string> order;
  future.add_done_callback([&](const Future<int>& done) {
    order.push_back("outer");
    Future<int> handle = done;
    handle.add_done_callback([&](const Future<int>&) { order.push_back("inner"); });
    order.push_back("outer end");
  });
  future.set_result(1);
  EXPECT_EQ(order, (std::vector<std::string>{"outer", "inner", "outer end"}));
}

TEST(FutureCallbacks, EmptyCallbackIsInvalidArgument) {
  Future<int> future;
  EXPECT_THROW(future.add_done_callback(nullptr), std::invalid_argument);
  EXPECT_THROW(future.add_done_callback(std::function<void(const Future<int>&)>()),
               std::invalid_argument);
}

TEST(FutureCallbacks, CallbackOfAFutureNeverCompletedIsDestroyedWithIt) {
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> watch = token;
  {
    Future<int> future;
    future.add_done_callback([token = std::move(token)](const Future<int>&) {});
  }
  EXPECT_TRUE(watch.expired());
}

TEST(FutureCallbacks, CallbacksAddedConcurrentlyWithCompletionEachRunOnce) {
  for (int round = 0; round < 50; ++round) {
    Future<int> future;
    constexpr int kAdders = 4;
    constexpr int kPerAdder = 100;
    std::vector<std::atomic<int>> calls(kAdders * kPerAdder);
    threading::Barrier start(kAdders + 1);
    {
      Threads adders;
      adders.start_n(kAdders, [&](std::size_t adder) {
        start.wait();
        for (int i = 0; i < kPerAdder; ++i) {
          future.add_done_callback([&calls, index = adder * kPerAdder + i](const Future<int>&) {
            calls[index].fetch_add(1);
          });
        }
      });
      start.wait();
      future.set_result(1);
    }
    for (std::size_t i = 0; i < calls.size(); ++i) {
      ASSERT_EQ(calls[i].load(), 1) << "callback " << i << " in round " << round;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------

TEST(FutureIdentity, CopiesCompareEqualAndHashEqual) {
  Future<int> future;
  Future<int> copy = future;
  Future<int> assigned;
  assigned = future;
  EXPECT_TRUE(copy == future);
  EXPECT_TRUE(assigned == future);
  EXPECT_EQ(std::hash<Future<int>>()(copy), std::hash<Future<int>>()(future));
  EXPECT_EQ(std::hash<Future<int>>()(assigned), std::hash<Future<int>>()(future));
}

TEST(FutureIdentity, DistinctFuturesCompareUnequal) {
  Future<int> a;
  Future<int> b;
  EXPECT_FALSE(a == b);
  EXPECT_TRUE(a != b);
}

TEST(FutureIdentity, CopiesShareTheResult) {
  Future<int> future;
  Future<int> copy = future;
  copy.set_result(3);
  EXPECT_TRUE(future.done());
  EXPECT_EQ(future.result(), 3);
}

TEST(FutureIdentity, FuturesWorkAsUnorderedSetKeys) {
  Future<int> a;
  Future<int> b;
  std::unordered_set<Future<int>> set{a, b, a, Future<int>(b)};
  EXPECT_EQ(set.size(), 2u);
  EXPECT_EQ(set.count(a), 1u);
  EXPECT_EQ(set.count(Future<int>()), 0u);
}

TEST(FutureIdentity, MovedFromAssignedAgainIsUsable) {
  Future<int> future;
  Future<int> moved = std::move(future);
  future = Future<int>();
  future.set_result(1);
  moved.set_result(2);
  EXPECT_EQ(future.result(), 1);
  EXPECT_EQ(moved.result(), 2);
}

// ---------------------------------------------------------------------------------------
// An exception nobody read
// ---------------------------------------------------------------------------------------

constexpr const char* kNeverRetrieved = "Future exception was never retrieved";

TEST(FutureUnretrievedException, ReportedWhenTheLastHandleGoes) {
  CapturedStderr captured;
  std::string before_last;
  {
    Future<int> future;
    future.set_exception(task_error("lost exception"));
    { Future<int> copy = future; }
    before_last = captured.text();
    testing::internal::CaptureStderr();
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(before_last.find(kNeverRetrieved), std::string::npos) << before_last;
  EXPECT_NE(err.find(kNeverRetrieved), std::string::npos) << err;
  EXPECT_NE(err.find("lost exception"), std::string::npos) << err;
}

TEST(FutureUnretrievedException, NotReportedAfterResult) {
  CapturedStderr captured;
  {
    Future<int> future;
    future.set_exception(task_error());
    EXPECT_THROW(future.result(), TaskError);
  }
  EXPECT_EQ(captured.text().find(kNeverRetrieved), std::string::npos);
}

TEST(FutureUnretrievedException, NotReportedAfterResultWithTimeout) {
  CapturedStderr captured;
  {
    Future<int> future;
    future.set_exception(task_error());
    EXPECT_THROW(future.result(1s), TaskError);
  }
  EXPECT_EQ(captured.text().find(kNeverRetrieved), std::string::npos);
}

TEST(FutureUnretrievedException, NotReportedAfterException) {
  CapturedStderr captured;
  {
    Future<int> future;
    future.set_exception(task_error());
    EXPECT_NE(future.exception(), nullptr);
  }
  EXPECT_EQ(captured.text().find(kNeverRetrieved), std::string::npos);
}

TEST(FutureUnretrievedException, NotReportedWhenReadThroughAnotherHandle) {
  CapturedStderr captured;
  {
    Future<int> future;
    Future<int> copy = future;
    future.set_exception(task_error());
    EXPECT_NE(copy.exception(), nullptr);
  }
  EXPECT_EQ(captured.text().find(kNeverRetrieved), std::string::npos);
}

TEST(FutureUnretrievedException, NotReportedWhenReadInACallback) {
  CapturedStderr captured;
  {
    Future<int> future;
    future.add_done_callback([](const Future<int>& done) { (void)done.exception(); });
    future.set_exception(task_error());
  }
  EXPECT_EQ(captured.text().find(kNeverRetrieved), std::string::npos);
}

TEST(FutureUnretrievedException, NotReportedForResultsOrCancellations) {
  CapturedStderr captured;
  {
    Future<int> with_result = successful_future();
    Future<int> cancelled = cancelled_future();
    Future<int> never_completed;
    Future<void> void_result;
    void_result.set_result();
  }
  EXPECT_EQ(captured.text().find(kNeverRetrieved), std::string::npos);
}

}  // namespace
