// gather, as_completed, wait, wait_for, shield and TaskGroup (CPython's test_tasks.py,
// test_waitfor.py, test_timeouts.py and test_taskgroups.py behaviours).
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "spindle/asyncio.hpp"

namespace {

namespace asyncio = spindle::asyncio;
using asyncio::Task;
using namespace std::chrono_literals;

Task<int> value_after(int value, std::chrono::milliseconds delay) {
  co_await asyncio::sleep(delay);
  co_return value;
}

Task<> nothing_after(std::chrono::milliseconds delay) {
  co_await asyncio::sleep(delay);
}

Task<int> fail_after(std::string message, std::chrono::milliseconds delay) {
  co_await asyncio::sleep(delay);
  throw std::runtime_error(message);
}

TEST(Gather, VariadicGivesATupleInArgumentOrder) {
  auto main = []() -> Task<> {
    auto [a, b, c] =
        co_await asyncio::gather(value_after(1, 20ms), value_after(2, 1ms), nothing_after(5ms));
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, 2);
    static_assert(std::is_same_v<decltype(c), std::monostate>);
  };
  asyncio::run(main());
}

TEST(Gather, RangeGivesAVectorAndRunsConcurrently) {
  auto main = []() -> Task<> {
    std::vector<Task<int>> tasks;
    for (int i = 0; i < 50; ++i)
      tasks.push_back(value_after(i, 50ms));
    const auto start = std::chrono::steady_clock::now();
    auto results = co_await asyncio::gather(std::move(tasks));
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
    EXPECT_EQ(results.size(), 50u);
    for (int i = 0; i < 50; ++i)
      EXPECT_EQ(results[i], i);
  };
  asyncio::run(main());
}

TEST(Gather, LvalueRangeOfScheduledTasksKeepsTheHandles) {
  auto main = []() -> Task<> {
    std::vector<Task<int>> tasks;
    tasks.push_back(asyncio::create_task(value_after(1, 1ms)));
    tasks.push_back(value_after(2, 1ms));  // lazy: scheduled in place
    auto results = co_await asyncio::gather(tasks);
    EXPECT_EQ(results, (std::vector<int>{1, 2}));
    EXPECT_TRUE(tasks[1].scheduled());
    EXPECT_EQ(tasks[1].result(), 2);
  };
  asyncio::run(main());
}

TEST(Gather, EmptyRangeGivesEmptyVector) {
  auto main = []() -> Task<> {
    std::vector<Task<int>> none;
    auto results = co_await asyncio::gather(std::move(none));
    EXPECT_TRUE(results.empty());
  };
  asyncio::run(main());
}

TEST(Gather, FirstExceptionPropagatesAndOthersRunOn) {
  auto main = []() -> Task<> {
    auto slow = asyncio::create_task(value_after(5, 30ms));
    EXPECT_THROW(co_await asyncio::gather(fail_after("first", 1ms), slow), std::runtime_error);
    EXPECT_FALSE(slow.done());
    EXPECT_EQ(co_await slow, 5);
  };
  asyncio::run(main());
}

TEST(Gather, ReturnExceptionsCollectsOutcomes) {
  auto main = []() -> Task<> {
    auto cancelled = asyncio::create_task(value_after(0, 10s));
    auto [ok, failed, gone] =
        co_await asyncio::gather(asyncio::return_exceptions, value_after(1, 1ms),
                                 fail_after("bad", 1ms), [&]() -> Task<int> {
                                   cancelled.cancel();
                                   co_return co_await cancelled;
                                 }());
    EXPECT_TRUE(ok.has_value());
    EXPECT_EQ(ok.value(), 1);
    EXPECT_FALSE(failed.has_value());
    EXPECT_THROW(std::rethrow_exception(failed.exception()), std::runtime_error);
    EXPECT_THROW(std::rethrow_exception(gone.exception()), asyncio::CancelledError);
  };
  asyncio::run(main());
}

TEST(Gather, ReturnExceptionsOverARange) {
  auto main = []() -> Task<> {
    std::vector<Task<int>> tasks;
    tasks.push_back(value_after(1, 1ms));
    tasks.push_back(fail_after("x", 1ms));
    auto outcomes = co_await asyncio::gather(asyncio::return_exceptions, std::move(tasks));
    EXPECT_EQ(outcomes.size(), 2u);
    EXPECT_TRUE(outcomes[0].has_value());
    EXPECT_FALSE(outcomes[1].has_value());
  };
  asyncio::run(main());
}

TEST(Gather, CancellingTheGathererCancelsEveryChild) {
  auto main = []() -> Task<> {
    auto a = asyncio::create_task(value_after(1, 10s));
    auto b = asyncio::create_task(value_after(2, 10s));
    auto gatherer = asyncio::create_task(asyncio::gather(a, b));
    co_await asyncio::sleep(1ms);
    gatherer.cancel();
    EXPECT_THROW(co_await gatherer, asyncio::CancelledError);
    EXPECT_TRUE(a.cancelled());
    EXPECT_TRUE(b.cancelled());
  };
  asyncio::run(main());
}

TEST(Gather, ChildCancelledFailsTheGather) {
  auto main = []() -> Task<> {
    auto a = asyncio::create_task(value_after(1, 10s));
    auto b = asyncio::create_task(value_after(2, 5ms));
    auto gathering = asyncio::create_task(asyncio::gather(a, b));
    co_await asyncio::sleep(1ms);
    a.cancel();
    EXPECT_THROW(co_await gathering, asyncio::CancelledError);
    EXPECT_EQ(co_await b, 2);
  };
  asyncio::run(main());
}

TEST(Gather, FuturesAndTasksTogether) {
  auto main = []() -> Task<> {
    auto future = asyncio::get_running_loop().create_future<std::string>();
    asyncio::get_running_loop().call_later(2ms, [future]() mutable { future.set_result("f"); });
    auto [text, number] = co_await asyncio::gather(future, value_after(3, 1ms));
    EXPECT_EQ(text, "f");
    EXPECT_EQ(number, 3);
  };
  asyncio::run(main());
}

TEST(AsCompleted, YieldsResultsInCompletionOrder) {
  auto main = []() -> Task<> {
    std::vector<Task<int>> tasks;
    tasks.push_back(value_after(3, 30ms));
    tasks.push_back(value_after(1, 10ms));
    tasks.push_back(value_after(2, 20ms));
    std::vector<int> order;
    for (auto next : asyncio::as_completed(std::move(tasks)))
      order.push_back(co_await next);
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  };
  asyncio::run(main());
}

TEST(AsCompleted, ExceptionIsRethrownAtItsTurn) {
  auto main = []() -> Task<> {
    std::vector<Task<int>> tasks;
    tasks.push_back(value_after(1, 20ms));
    tasks.push_back(fail_after("early", 1ms));
    auto results = asyncio::as_completed(std::move(tasks));
    auto it = results.begin();
    EXPECT_THROW(co_await *it, std::runtime_error);
    ++it;
    EXPECT_EQ(co_await *it, 1);
  };
  asyncio::run(main());
}

TEST(AsCompleted, TimeoutRaisesForTheRest) {
  auto main = []() -> Task<> {
    std::vector<Task<int>> tasks;
    tasks.push_back(value_after(1, 1ms));
    tasks.push_back(value_after(2, 10s));
    std::vector<std::string> seen;
    for (auto next : asyncio::as_completed(std::move(tasks), 50ms)) {
      try {
        seen.push_back(std::to_string(co_await next));
      } catch (const spindle::TimeoutError&) {
        seen.push_back("timeout");
      }
    }
    EXPECT_EQ(seen, (std::vector<std::string>{"1", "timeout"}));
  };
  asyncio::run(main());
}

TEST(Wait, AllCompletedByDefault) {
  auto main = []() -> Task<> {
    std::vector<Task<int>> tasks;
    tasks.push_back(asyncio::create_task(value_after(1, 1ms)));
    tasks.push_back(asyncio::create_task(value_after(2, 10ms)));
    auto [done, pending] = co_await asyncio::wait(tasks);
    EXPECT_EQ(done.size(), 2u);
    EXPECT_TRUE(pending.empty());
  };
  asyncio::run(main());
}

TEST(Wait, FirstCompletedAndTimeout) {
  auto main = []() -> Task<> {
    std::vector<Task<int>> tasks;
    tasks.push_back(asyncio::create_task(value_after(1, 1ms)));
    tasks.push_back(asyncio::create_task(value_after(2, 10s)));
    auto first = co_await asyncio::wait(tasks, {.return_when = asyncio::FIRST_COMPLETED});
    EXPECT_EQ(first.done.size(), 1u);
    EXPECT_EQ(first.done[0].result(), 1);
    EXPECT_EQ(first.pending.size(), 1u);
    auto timed = co_await asyncio::wait(tasks, {.timeout = 10ms});
    EXPECT_EQ(timed.done.size(), 1u);
    EXPECT_EQ(timed.pending.size(), 1u);
    tasks[1].cancel();
  };
  asyncio::run(main());
}

TEST(Wait, FirstException) {
  auto main = []() -> Task<> {
    std::vector<Task<int>> tasks;
    tasks.push_back(asyncio::create_task(fail_after("x", 1ms)));
    tasks.push_back(asyncio::create_task(value_after(2, 10s)));
    auto result = co_await asyncio::wait(tasks, {.return_when = asyncio::FIRST_EXCEPTION});
    EXPECT_EQ(result.done.size(), 1u);
    EXPECT_NE(result.done[0].exception(), nullptr);
    tasks[1].cancel();
  };
  asyncio::run(main());
}

TEST(Wait, RejectsEmptyLazyAndNegativeTimeout) {
  auto main = []() -> Task<> {
    std::vector<Task<int>> none;
    EXPECT_THROW((void)asyncio::wait(none), std::invalid_argument);
    std::vector<Task<int>> lazy;
    lazy.push_back(value_after(1, 1ms));
    EXPECT_THROW((void)asyncio::wait(lazy), std::invalid_argument);
    std::vector<Task<int>> fine;
    fine.push_back(asyncio::create_task(value_after(1, 1ms)));
    EXPECT_THROW((void)asyncio::wait(fine, {.timeout = -1ms}), std::invalid_argument);
    co_await fine[0];
  };
  asyncio::run(main());
}

TEST(WaitFor, ReturnsTheResultInTime) {
  auto main = []() -> Task<> { EXPECT_EQ(co_await asyncio::wait_for(value_after(4, 1ms), 1s), 4); };
  asyncio::run(main());
}

TEST(WaitFor, TimeoutCancelsTheInnerTaskAndRaisesTimeoutError) {
  auto main = []() -> Task<> {
    auto inner = asyncio::create_task(value_after(1, 10s));
    EXPECT_THROW(co_await asyncio::wait_for(inner, 10ms), spindle::TimeoutError);
    EXPECT_TRUE(inner.cancelled());
  };
  asyncio::run(main());
}

TEST(WaitFor, TimeoutOnALazyCoroutineCancelsIt) {
  auto cleaned = std::make_shared<bool>(false);
  auto body = [cleaned]() -> Task<int> {
    try {
      co_await asyncio::sleep(10s);
    } catch (const asyncio::CancelledError&) {
      *cleaned = true;
      throw;
    }
    co_return 0;
  };
  auto main = [&]() -> Task<> {
    EXPECT_THROW(co_await asyncio::wait_for(body(), 10ms), spindle::TimeoutError);
    // the awaiting task is not left cancelled
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
    co_await asyncio::sleep(1ms);
  };
  asyncio::run(main());
  EXPECT_TRUE(*cleaned);
}

TEST(WaitFor, ZeroTimeoutDoesNotStartTheCoroutine) {
  bool started = false;
  auto body = [&]() -> Task<int> {
    started = true;
    co_return 1;
  };
  auto main = [&]() -> Task<> {
    EXPECT_THROW(co_await asyncio::wait_for(body(), 0s), spindle::TimeoutError);
    auto done = asyncio::create_task(value_after(5, 0ms));
    co_await asyncio::sleep(5ms);
    EXPECT_EQ(co_await asyncio::wait_for(done, 0s), 5);
  };
  asyncio::run(main());
  EXPECT_FALSE(started);
}

TEST(WaitFor, NegativeTimeoutIsInvalid) {
  auto main = []() -> Task<> {
    EXPECT_THROW((void)asyncio::wait_for(value_after(1, 1ms), -1s), std::invalid_argument);
    co_return;
  };
  asyncio::run(main());
}

TEST(WaitFor, OuterCancellationIsNotTurnedIntoTimeout) {
  auto main = []() -> Task<> {
    auto waiter = asyncio::create_task(
        []() -> Task<int> { co_return co_await asyncio::wait_for(value_after(1, 10s), 10s); }());
    co_await asyncio::sleep(1ms);
    waiter.cancel();
    EXPECT_THROW(co_await waiter, asyncio::CancelledError);
  };
  asyncio::run(main());
}

TEST(Shield, CancellingTheAwaiterLeavesTheShieldedTaskRunning) {
  auto main = []() -> Task<> {
    auto inner = asyncio::create_task(value_after(8, 20ms));
    auto outer = asyncio::create_task([](Task<int>& shielded) -> Task<int> {
      co_return co_await asyncio::shield(shielded);
    }(inner));
    co_await asyncio::sleep(1ms);
    outer.cancel();
    EXPECT_THROW(co_await outer, asyncio::CancelledError);
    EXPECT_FALSE(inner.cancelled());
    EXPECT_EQ(co_await inner, 8);
  };
  asyncio::run(main());
}

TEST(Shield, PassesTheResultThrough) {
  auto main = []() -> Task<> { EXPECT_EQ(co_await asyncio::shield(value_after(2, 1ms)), 2); };
  asyncio::run(main());
}

TEST(TaskGroup, WaitsForEveryChild) {
  auto main = []() -> Task<> {
    std::vector<int> results;
    co_await asyncio::task_group([&](asyncio::TaskGroup& group) -> Task<> {
      auto a = group.create_task(value_after(1, 10ms));
      auto b = group.create_task(value_after(2, 5ms));
      a.add_done_callback([&](Task<int>& t) { results.push_back(t.result()); });
      b.add_done_callback([&](Task<int>& t) { results.push_back(t.result()); });
      co_return;
    });
    co_await asyncio::sleep(0ms);
    EXPECT_EQ(results.size(), 2u);
  };
  asyncio::run(main());
}

TEST(TaskGroup, FirstFailureCancelsTheRestAndRaisesExceptionGroup) {
  auto sibling_cancelled = std::make_shared<bool>(false);
  auto sibling = [sibling_cancelled]() -> Task<> {
    try {
      co_await asyncio::sleep(10s);
    } catch (const asyncio::CancelledError&) {
      *sibling_cancelled = true;
      throw;
    }
  };
  auto main = [&]() -> Task<> {
    bool body_cancelled = false;
    try {
      co_await asyncio::task_group([&](asyncio::TaskGroup& group) -> Task<> {
        (void)group.create_task(sibling());
        (void)group.create_task(fail_after("one", 1ms));
        (void)group.create_task(fail_after("two", 1ms));
        try {
          co_await asyncio::sleep(10s);
        } catch (const asyncio::CancelledError&) {
          body_cancelled = true;
          throw;
        }
      });
      ADD_FAILURE() << "no ExceptionGroup";
    } catch (const asyncio::ExceptionGroup& group) {
      EXPECT_EQ(group.exceptions().size(), 2u);
      EXPECT_EQ(group.message(), "unhandled errors in a TaskGroup");
    }
    EXPECT_TRUE(body_cancelled);
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
  };
  asyncio::run(main());
  EXPECT_TRUE(*sibling_cancelled);
}

TEST(TaskGroup, BodyExceptionCancelsChildren) {
  auto main = []() -> Task<> {
    Task<int> child;
    try {
      co_await asyncio::task_group([&](asyncio::TaskGroup& group) -> Task<> {
        child = group.create_task(value_after(1, 10s));
        co_await asyncio::sleep(1ms);
        throw std::logic_error("body");
      });
    } catch (const asyncio::ExceptionGroup& group) {
      EXPECT_EQ(group.exceptions().size(), 1u);
      EXPECT_THROW(std::rethrow_exception(group.exceptions()[0]), std::logic_error);
    }
    EXPECT_TRUE(child.cancelled());
  };
  asyncio::run(main());
}

TEST(TaskGroup, CancellingTheOwnerCancelsChildrenAndPropagates) {
  auto main = []() -> Task<> {
    auto children = std::make_shared<std::vector<Task<int>>>();
    auto owner =
        asyncio::create_task(asyncio::task_group([children](asyncio::TaskGroup& group) -> Task<> {
          children->push_back(group.create_task(value_after(1, 10s)));
          co_await asyncio::sleep(10s);
        }));
    co_await asyncio::sleep(1ms);
    owner.cancel();
    EXPECT_THROW(co_await owner, asyncio::CancelledError);
    EXPECT_TRUE((*children)[0].cancelled());
  };
  asyncio::run(main());
}

TEST(TaskGroup, CreateTaskAfterTheGroupIsFinishedIsLogicError) {
  auto main = []() -> Task<> {
    asyncio::TaskGroup* kept = nullptr;
    co_await asyncio::task_group([&](asyncio::TaskGroup& group) -> Task<> {
      kept = &group;
      co_return;
    });
    (void)kept;  // the group lived in the finished coroutine: nothing to call
  };
  asyncio::run(main());
}

TEST(TaskGroup, CreateTaskWhileShuttingDownIsLogicError) {
  auto main = []() -> Task<> {
    try {
      co_await asyncio::task_group([&](asyncio::TaskGroup& group) -> Task<> {
        (void)group.create_task(fail_after("x", 0ms));
        try {
          co_await asyncio::sleep(10s);
        } catch (const asyncio::CancelledError&) {
        }
        EXPECT_THROW((void)group.create_task(value_after(1, 1ms)), std::logic_error);
      });
    } catch (const asyncio::ExceptionGroup&) {
    }
  };
  asyncio::run(main());
}

}  // namespace
