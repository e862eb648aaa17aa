// Tasks, coroutines and cancellation (CPython's test_tasks.py behaviours).
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "spindle/asyncio.hpp"

namespace {

namespace asyncio = spindle::asyncio;
using asyncio::Task;
using namespace std::chrono_literals;

static_assert(!std::is_base_of_v<std::exception, asyncio::CancelledError>,
              "CancelledError must not be caught by catch (const std::exception&)");

Task<int> answer() {
  co_return 42;
}

Task<int> add_after(int a, int b, std::chrono::milliseconds delay) {
  co_await asyncio::sleep(delay);
  co_return a + b;
}

Task<> fail_with(std::string message) {
  co_await asyncio::sleep(0ms);
  throw std::runtime_error(message);
}

TEST(Task, RunReturnsTheCoroutineResult) {
  EXPECT_EQ(asyncio::run(answer()), 42);
}

TEST(Task, AwaitingALazyTaskRunsItInline) {
  auto main = []() -> Task<int> {
    int total = 0;
    total += co_await answer();
    total += co_await add_after(1, 2, 1ms);
    co_return total;
  };
  EXPECT_EQ(asyncio::run(main()), 45);
}

TEST(Task, ExceptionPropagatesOutOfRun) {
  EXPECT_THROW(asyncio::run(fail_with("boom")), std::runtime_error);
}

TEST(Task, LazyTaskDoesNotRunUntilAwaited) {
  int runs = 0;
  auto body = [&]() -> Task<> {
    ++runs;
    co_return;
  };
  auto main = [&]() -> Task<> {
    Task<> lazy = body();
    co_await asyncio::sleep(0ms);
    EXPECT_EQ(runs, 0);
    co_await lazy;
    EXPECT_EQ(runs, 1);
  };
  asyncio::run(main());
}

TEST(Task, CreateTaskRunsConcurrently) {
  auto main = []() -> Task<> {
    auto start = std::chrono::steady_clock::now();
    auto a = asyncio::create_task(add_after(1, 1, 100ms));
    auto b = asyncio::create_task(add_after(2, 2, 100ms));
    EXPECT_EQ(co_await a, 2);
    EXPECT_EQ(co_await b, 4);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 190ms);
  };
  asyncio::run(main());
}

TEST(Task, ScheduledTaskCanBeAwaitedTwiceAndQueried) {
  auto main = []() -> Task<> {
    auto task = asyncio::create_task(answer());
    EXPECT_FALSE(task.done());
    EXPECT_EQ(co_await task, 42);
    EXPECT_EQ(co_await task, 42);
    EXPECT_TRUE(task.done());
    EXPECT_FALSE(task.cancelled());
    EXPECT_EQ(task.result(), 42);
    EXPECT_EQ(task.exception(), nullptr);
  };
  asyncio::run(main());
}

TEST(Task, ResultOfPendingTaskIsInvalidState) {
  auto main = []() -> Task<> {
    auto task = asyncio::create_task(add_after(1, 1, 10ms));
    EXPECT_THROW(task.result(), asyncio::InvalidStateError);
    EXPECT_THROW(task.exception(), asyncio::InvalidStateError);
    co_await task;
  };
  asyncio::run(main());
}

TEST(Task, LazyTaskMembersNeedScheduling) {
  Task<int> lazy = answer();
  EXPECT_THROW(lazy.done(), std::logic_error);
}

TEST(Task, CreateTaskTwiceIsInvalid) {
  auto main = []() -> Task<> {
    auto task = asyncio::create_task(answer());
    EXPECT_THROW((void)asyncio::create_task(std::move(task)), std::invalid_argument);
    co_return;
  };
  asyncio::run(main());
}

TEST(Task, CreateTaskWithoutRunningLoopIsLogicError) {
  EXPECT_THROW((void)asyncio::create_task(answer()), std::logic_error);
}

TEST(Task, NamesDefaultAndCustom) {
  auto main = []() -> Task<> {
    auto named = asyncio::create_task(answer(), {.name = "worker"});
    auto unnamed = asyncio::create_task(answer());
    EXPECT_EQ(named.get_name(), "worker");
    EXPECT_EQ(unnamed.get_name().rfind("Task-", 0), 0u);
    unnamed.set_name("renamed");
    EXPECT_EQ(unnamed.get_name(), "renamed");
    co_await named;
    co_await unnamed;
  };
  asyncio::run(main());
}

TEST(Task, SleepZeroYieldsToOtherTasks) {
  std::vector<std::string> order;
  auto worker = [&](std::string name) -> Task<> {
    for (int i = 0; i < 2; ++i) {
      order.push_back(name + std::to_string(i));
      co_await asyncio::sleep(0s);
    }
  };
  auto main = [&]() -> Task<> {
    auto a = asyncio::create_task(worker("a"));
    auto b = asyncio::create_task(worker("b"));
    co_await a;
    co_await b;
  };
  asyncio::run(main());
  EXPECT_EQ(order, (std::vector<std::string>{"a0", "b0", "a1", "b1"}));
}

TEST(Task, SleepsEndInDeadlineOrder) {
  std::vector<int> order;
  auto sleeper = [&](int id, std::chrono::milliseconds delay) -> Task<> {
    co_await asyncio::sleep(delay);
    order.push_back(id);
  };
  auto main = [&]() -> Task<> {
    co_await asyncio::gather(sleeper(3, 30ms), sleeper(1, 10ms), sleeper(2, 20ms));
  };
  asyncio::run(main());
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(TaskCancel, CancelledSleepingTaskRaisesCancelledErrorInAwaiter) {
  auto main = []() -> Task<> {
    auto task = asyncio::create_task(add_after(1, 1, 10s));
    co_await asyncio::sleep(0ms);
    EXPECT_TRUE(task.cancel("stop it"));
    bool caught = false;
    try {
      co_await task;
    } catch (const asyncio::CancelledError& error) {
      caught = true;
      EXPECT_STREQ(error.what(), "stop it");
    }
    EXPECT_TRUE(caught);
    EXPECT_TRUE(task.cancelled());
    EXPECT_TRUE(task.done());
    EXPECT_THROW(task.result(), asyncio::CancelledError);
    EXPECT_FALSE(task.cancel());
  };
  asyncio::run(main());
}

TEST(TaskCancel, CancelBeforeFirstStepNeverRunsTheCoroutine) {
  bool ran = false;
  auto body = [&]() -> Task<> {
    ran = true;
    co_return;
  };
  auto main = [&]() -> Task<> {
    auto task = asyncio::create_task(body());
    task.cancel();
    try {
      co_await task;
    } catch (const asyncio::CancelledError&) {
    }
    EXPECT_TRUE(task.cancelled());
  };
  asyncio::run(main());
  EXPECT_FALSE(ran);
}

TEST(TaskCancel, TaskCanCatchCancellationAndReturnAValue) {
  auto stubborn = []() -> Task<int> {
    try {
      co_await asyncio::sleep(10s);
    } catch (const asyncio::CancelledError&) {
      co_return 7;
    }
    co_return 0;
  };
  auto main = [&]() -> Task<> {
    auto task = asyncio::create_task(stubborn());
    co_await asyncio::sleep(0ms);
    task.cancel();
    EXPECT_EQ(co_await task, 7);
    EXPECT_FALSE(task.cancelled());
  };
  asyncio::run(main());
}

TEST(TaskCancel, CancellationIsNotCaughtAsStdException) {
  bool std_caught = false;
  auto body = [&]() -> Task<> {
    try {
      co_await asyncio::sleep(10s);
    } catch (const std::exception&) {
      std_caught = true;
    }
  };
  auto main = [&]() -> Task<> {
    auto task = asyncio::create_task(body());
    co_await asyncio::sleep(0ms);
    task.cancel();
    EXPECT_THROW(co_await task, asyncio::CancelledError);
  };
  asyncio::run(main());
  EXPECT_FALSE(std_caught);
}

TEST(TaskCancel, CancellationTravelsInwardToTheAwaitedTask) {
  auto inner_task = std::make_shared<Task<int>>();
  auto outer = [&]() -> Task<int> { co_return co_await *inner_task; };
  auto main = [&]() -> Task<> {
    *inner_task = asyncio::create_task(add_after(1, 1, 10s));
    auto task = asyncio::create_task(outer());
    co_await asyncio::sleep(0ms);
    task.cancel();
    EXPECT_THROW(co_await task, asyncio::CancelledError);
    EXPECT_TRUE(inner_task->cancelled());
  };
  asyncio::run(main());
}

TEST(TaskCancel, CancellationReachesNestedInlineCoroutines) {
  std::vector<std::string> cleanup;
  auto leaf = [&]() -> Task<> {
    try {
      co_await asyncio::sleep(10s);
    } catch (const asyncio::CancelledError&) {
      cleanup.push_back("leaf");
      throw;
    }
  };
  auto middle = [&]() -> Task<> {
    try {
      co_await leaf();
    } catch (const asyncio::CancelledError&) {
      cleanup.push_back("middle");
      throw;
    }
  };
  auto main = [&]() -> Task<> {
    auto task = asyncio::create_task(middle());
    co_await asyncio::sleep(0ms);
    task.cancel();
    EXPECT_THROW(co_await task, asyncio::CancelledError);
  };
  asyncio::run(main());
  EXPECT_EQ(cleanup, (std::vector<std::string>{"leaf", "middle"}));
}

TEST(TaskCancel, CancelWhileRunningIsDeliveredAtTheNextSuspension) {
  auto self_cancel = []() -> Task<> {
    asyncio::current_task().cancel();
    co_await asyncio::sleep(0ms);
    ADD_FAILURE() << "not reached";
  };
  auto main = [&]() -> Task<> {
    auto task = asyncio::create_task(self_cancel());
    EXPECT_THROW(co_await task, asyncio::CancelledError);
    EXPECT_TRUE(task.cancelled());
  };
  asyncio::run(main());
}

TEST(TaskCancel, CancellingAndUncancelCount) {
  auto main = []() -> Task<> {
    auto task = asyncio::create_task(add_after(1, 1, 10s));
    co_await asyncio::sleep(0ms);
    task.cancel();
    task.cancel();
    EXPECT_EQ(task.cancelling(), 2);
    EXPECT_EQ(task.uncancel(), 1);
    EXPECT_THROW(co_await task, asyncio::CancelledError);
  };
  asyncio::run(main());
}

TEST(TaskCancel, ATaskCannotAwaitItself) {
  auto holder = std::make_shared<Task<>>();
  auto body = [&]() -> Task<> {
    co_await asyncio::sleep(0ms);
    co_await *holder;
  };
  auto main = [&]() -> Task<> {
    *holder = asyncio::create_task(body());
    EXPECT_THROW(co_await *holder, std::logic_error);
  };
  asyncio::run(main());
}

TEST(Task, DoneCallbackRunsOnTheLoopAfterCompletion) {
  auto main = []() -> Task<> {
    std::vector<int> seen;
    auto task = asyncio::create_task(answer());
    task.add_done_callback([&](Task<int>& done) { seen.push_back(done.result()); });
    co_await task;
    EXPECT_TRUE(seen.empty());  // scheduled with call_soon, not run inline
    co_await asyncio::sleep(0ms);
    co_await asyncio::sleep(0ms);
    EXPECT_EQ(seen, std::vector<int>{42});
  };
  asyncio::run(main());
}

TEST(Task, DetachedTaskRunsOn) {
  auto flag = std::make_shared<bool>(false);
  auto body = [flag]() -> Task<> {
    co_await asyncio::sleep(5ms);
    *flag = true;
  };
  auto main = [&]() -> Task<> {
    (void)asyncio::create_task(body());
    co_await asyncio::sleep(50ms);
  };
  asyncio::run(main());
  EXPECT_TRUE(*flag);
}

TEST(Task, MoveOnlyResult) {
  auto make = []() -> Task<std::unique_ptr<int>> { co_return std::make_unique<int>(5); };
  auto main = [&]() -> Task<int> {
    auto inline_value = co_await make();
    auto task = asyncio::create_task(make());
    auto scheduled_value = co_await std::move(task);
    co_return *inline_value + *scheduled_value;
  };
  EXPECT_EQ(asyncio::run(main()), 10);
}

TEST(CurrentTask, IdentifiesTheRunningTaskAndAllTasks) {
  auto main = []() -> Task<> {
    auto me = asyncio::current_task();
    EXPECT_TRUE(static_cast<bool>(me));
    auto other = asyncio::create_task(add_after(1, 1, 10ms), {.name = "other"});
    auto tasks = asyncio::all_tasks();
    EXPECT_EQ(tasks.size(), 2u);
    bool found = false;
    for (auto& task : tasks)
      found = found || task.get_name() == "other";
    EXPECT_TRUE(found);
    co_await other;
  };
  asyncio::run(main());
  EXPECT_THROW(asyncio::current_task(), std::logic_error);
}

TEST(Run, CancelsTasksLeftPendingAtTheEnd) {
  auto cancelled = std::make_shared<bool>(false);
  auto lingering = [cancelled]() -> Task<> {
    try {
      co_await asyncio::sleep(10s);
    } catch (const asyncio::CancelledError&) {
      *cancelled = true;
      throw;
    }
  };
  auto main = [&]() -> Task<> {
    (void)asyncio::create_task(lingering());
    co_await asyncio::sleep(0ms);
  };
  asyncio::run(main());
  EXPECT_TRUE(*cancelled);
}

TEST(Run, NestedRunIsLogicError) {
  auto main = []() -> Task<> {
    EXPECT_THROW(asyncio::run(answer()), std::logic_error);
    co_return;
  };
  asyncio::run(main());
}

TEST(Reporting, ExceptionNeverRetrievedIsReported) {
  asyncio::EventLoop loop;
  std::vector<std::string> reports;
  loop.set_exception_handler([&](asyncio::EventLoop&, const asyncio::ExceptionContext& context) {
    reports.push_back(context.message);
  });
  auto main = []() -> Task<> {
    (void)asyncio::create_task(fail_with("lost"));
    co_await asyncio::sleep(10ms);
  };
  loop.run_until_complete(main());
  loop.close();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0], "Task exception was never retrieved");
}

TEST(Reporting, RetrievedExceptionIsNotReported) {
  asyncio::EventLoop loop;
  int reports = 0;
  loop.set_exception_handler(
      [&](asyncio::EventLoop&, const asyncio::ExceptionContext&) { ++reports; });
  auto main = []() -> Task<> {
    auto task = asyncio::create_task(fail_with("seen"));
    EXPECT_THROW(co_await task, std::runtime_error);
  };
  loop.run_until_complete(main());
  loop.close();
  EXPECT_EQ(reports, 0);
}

TEST(Reporting, PendingTaskDestroyedAtCloseIsReportedAndFreed) {
  asyncio::EventLoop loop;
  std::vector<std::string> reports;
  loop.set_exception_handler([&](asyncio::EventLoop&, const asyncio::ExceptionContext& context) {
    reports.push_back(context.message + " " + context.subject);
  });
  auto sleeper = []() -> Task<> { co_await asyncio::sleep(10s); };
  auto main = [&]() -> Task<> {
    (void)asyncio::create_task(sleeper(), {.name = "sleepy"});
    (void)asyncio::create_task(sleeper(), {.name = "never-started"});
    co_await asyncio::sleep(0ms);
  };
  loop.run_until_complete(main());
  loop.close();
  ASSERT_EQ(reports.size(), 2u);
  for (auto& report : reports)
    EXPECT_EQ(report.rfind("Task was destroyed but it is pending!", 0), 0u) << report;
}

TEST(Reporting, DefaultHandlerPrintsToStderr) {
  testing::internal::CaptureStderr();
  {
    asyncio::EventLoop loop;
    auto main = []() -> Task<> {
      (void)asyncio::create_task(fail_with("printed"));
      co_await asyncio::sleep(10ms);
    };
    loop.run_until_complete(main());
  }
  const std::string printed = testing::internal::GetCapturedStderr();
  EXPECT_NE(printed.find("Task exception was never retrieved"), std::string::npos) << printed;
  EXPECT_NE(printed.find("std::runtime_error: printed"), std::string::npos) << printed;
}

TEST(Task, NeverAwaitedLazyTaskIsFreed) {
  // LeakSanitizer checks that the frame does not leak.
  Task<int> lazy = add_after(1, 2, 1ms);
  EXPECT_TRUE(lazy.valid());
}

}  // namespace

namespace {

TEST(Sleep, WorksAsATaskAnywhereACoroutineDoes) {
  auto main = []() -> Task<> {
    auto scheduled = asyncio::create_task(asyncio::sleep(1ms));
    co_await scheduled;
    EXPECT_TRUE(scheduled.done());
    co_await asyncio::gather(asyncio::sleep(1ms), asyncio::sleep(2ms));
    co_await asyncio::shield(asyncio::sleep(1ms));
    EXPECT_THROW(co_await asyncio::wait_for(asyncio::sleep(10s), 5ms), spindle::TimeoutError);
    Task<> lazy = asyncio::sleep(0s);
    EXPECT_TRUE(lazy.valid());
    co_await lazy;
    EXPECT_FALSE(lazy.valid());
    EXPECT_THROW(co_await lazy, std::logic_error);
    co_await asyncio::sleep(-5ms);  // negative: just yields, as Python
  };
  asyncio::run(main());
}

TEST(Sleep, CancelledScheduledSleep) {
  auto main = []() -> Task<> {
    auto sleeping = asyncio::create_task(asyncio::sleep(10s));
    co_await asyncio::sleep(0s);
    sleeping.cancel();
    EXPECT_THROW(co_await sleeping, asyncio::CancelledError);
  };
  asyncio::run(main());
}

}  // namespace
