// Bridges to threads: wrap_future, co_await of a futures::Future, run_in_executor,
// to_thread, run_coroutine_threadsafe, and signal handlers (CPython's test_futures.py
// wrap_future tests, test_tasks.py run_coroutine_threadsafe and to_thread tests,
// test_unix_events.py signal tests).
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "spindle/asyncio.hpp"

namespace {

namespace asyncio = spindle::asyncio;
namespace futures = spindle::futures;
using asyncio::Task;
using namespace std::chrono_literals;

TEST(WrapFuture, AwaitsAThreadPoolResult) {
  futures::ThreadPoolExecutor pool({.max_workers = 2});
  auto main = [&]() -> Task<int> {
    futures::Future<int> submitted = pool.submit([] { return 6 * 7; });
    co_return co_await asyncio::wrap_future(submitted);
  };
  EXPECT_EQ(asyncio::run(main()), 42);
}

TEST(WrapFuture, CoAwaitOnAFuturesFutureDirectly) {
  futures::ThreadPoolExecutor pool({.max_workers = 2});
  auto main = [&]() -> Task<std::string> {
    auto text = co_await pool.submit([] { return std::string("from a thread"); });
    co_await pool.submit([] {});
    co_return text;
  };
  EXPECT_EQ(asyncio::run(main()), "from a thread");
}

TEST(WrapFuture, ExceptionCrossesOver) {
  futures::ThreadPoolExecutor pool({.max_workers = 1});
  auto main = [&]() -> Task<> {
    EXPECT_THROW(co_await pool.submit([]() -> int { throw std::out_of_range("far"); }),
                 std::out_of_range);
  };
  asyncio::run(main());
}

TEST(WrapFuture, CancellingTheAwaiterCancelsAPendingFuturesFuture) {
  futures::Future<int> never_run;  // pending, not running
  auto main = [&]() -> Task<> {
    auto waiter_body = [&]() -> Task<int> { co_return co_await never_run; };
    auto waiter = asyncio::create_task(waiter_body());
    co_await asyncio::sleep(0s);
    waiter.cancel();
    EXPECT_THROW(co_await waiter, asyncio::CancelledError);
    co_await asyncio::sleep(0s);  // the cancellation callback runs via call_soon
  };
  asyncio::run(main());
  EXPECT_TRUE(never_run.cancelled());
}

TEST(WrapFuture, CompletedFromAnotherThreadWhileTheLoopWaits) {
  futures::Future<int> future;
  std::thread completer;
  auto main = [&]() -> Task<int> {
    completer = std::thread([future]() mutable {
      future.set_running_or_notify_cancel();
      future.set_result(5);
    });
    co_return co_await future;
  };
  EXPECT_EQ(asyncio::run(main()), 5);
  completer.join();
}

TEST(RunInExecutor, GivenExecutorAndDefault) {
  futures::ThreadPoolExecutor pool({.max_workers = 1});
  auto main = [&]() -> Task<> {
    auto& loop = asyncio::get_running_loop();
    EXPECT_EQ(co_await loop.run_in_executor(
                  pool, [](int x) { return x + 1; }, 1),
              2);
    EXPECT_EQ(co_await loop.run_in_executor(
                  nullptr, [](int x) { return x * 3; }, 3),
              9);
  };
  asyncio::run(main());
}

TEST(ToThread, RunsOffTheLoopWhileTheLoopRuns) {
  auto main = []() -> Task<> {
    const auto loop_thread = std::this_thread::get_id();
    std::latch loop_ran(1);
    // The worker waits until a task on the loop has run: the loop is not blocked.
    auto ticker_body = [&]() -> Task<> {
      co_await asyncio::sleep(1ms);
      loop_ran.count_down();
    };
    auto ticker = asyncio::create_task(ticker_body());
    auto worker_thread = co_await asyncio::to_thread([&] {
      loop_ran.wait();
      return std::this_thread::get_id();
    });
    EXPECT_NE(worker_thread, loop_thread);
    co_await ticker;
    co_await asyncio::to_thread([] {});
  };
  asyncio::run(main());
}

TEST(RunCoroutineThreadsafe, ResultFromAnotherThread) {
  asyncio::EventLoop loop;
  int seen = 0;
  std::thread other([&] {
    auto compute = []() -> Task<int> {
      co_await asyncio::sleep(1ms);
      co_return 21 * 2;
    };
    futures::Future<int> result = asyncio::run_coroutine_threadsafe(compute(), loop);
    seen = result.result();
    loop.call_soon_threadsafe([&] { loop.stop(); });
  });
  loop.run_forever();
  other.join();
  EXPECT_EQ(seen, 42);
}

TEST(RunCoroutineThreadsafe, ExceptionReachesTheOtherThread) {
  asyncio::EventLoop loop;
  bool thrown = false;
  std::thread other([&] {
    auto failing = []() -> Task<> {
      co_await asyncio::sleep(0s);
      throw std::domain_error("inside");
    };
    try {
      asyncio::run_coroutine_threadsafe(failing(), loop).result();
    } catch (const std::domain_error&) {
      thrown = true;
    }
    loop.call_soon_threadsafe([&] { loop.stop(); });
  });
  loop.run_forever();
  other.join();
  EXPECT_TRUE(thrown);
}

// A free function, not a capturing lambda: the task outlives the thread that made it.
Task<> sleep_until_cancelled(std::shared_ptr<bool> cancelled, std::latch* started) {
  started->count_down();
  try {
    co_await asyncio::sleep(1h);
  } catch (const asyncio::CancelledError&) {
    *cancelled = true;
    throw;
  }
}

TEST(RunCoroutineThreadsafe, CancellingTheFutureCancelsTheTask) {
  asyncio::EventLoop loop;
  auto cancelled = std::make_shared<bool>(false);
  std::latch started(1);
  std::thread other([&] {
    futures::Future<void> result =
        asyncio::run_coroutine_threadsafe(sleep_until_cancelled(cancelled, &started), loop);
    started.wait();
    EXPECT_TRUE(result.cancel());
    // Stop once the cancellation has reached the task (both hops go through the same queue).
    loop.call_soon_threadsafe([&] { loop.call_soon([&] { loop.stop(); }); });
  });
  loop.run_forever();
  other.join();
  loop.run_until_complete(asyncio::sleep(0s));
  EXPECT_TRUE(*cancelled);
}

TEST(RunCoroutineThreadsafe, ClosedLoopIsLogicError) {
  asyncio::EventLoop loop;
  loop.close();
  auto nothing = []() -> Task<> { co_return; };
  EXPECT_THROW(asyncio::run_coroutine_threadsafe(nothing(), loop), std::logic_error);
}

TEST(RunCoroutineThreadsafe, LoopClosedBeforeStartCancelsTheFuture) {
  futures::Future<void> result;
  {
    asyncio::EventLoop loop;
    auto nothing = []() -> Task<> { co_return; };
    result = asyncio::run_coroutine_threadsafe(nothing(), loop);
  }
  EXPECT_TRUE(result.cancelled());
}

TEST(SignalHandler, RunsOnTheLoopWhenTheSignalArrives) {
  auto main = []() -> Task<> {
    auto& loop = asyncio::get_running_loop();
    asyncio::Event received;
    loop.add_signal_handler(SIGUSR1, [&] { received.set(); });
    std::raise(SIGUSR1);
    co_await received.wait();
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    EXPECT_FALSE(loop.remove_signal_handler(SIGUSR1));
    EXPECT_THROW(loop.add_signal_handler(SIGKILL, [] {}), std::invalid_argument);
    EXPECT_THROW(loop.add_signal_handler(0, [] {}), std::invalid_argument);
  };
  asyncio::run(main());
}

}  // namespace
