// The event loop: callbacks, timers, thread-safe scheduling, running and closing
// (CPython's test_events.py / test_base_events.py behaviours).
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <functional>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "spindle/asyncio.hpp"
#include "spindle/detail/asyncio_uv.hpp"

namespace {

namespace asyncio = spindle::asyncio;
using asyncio::EventLoop;
using asyncio::Task;
using namespace std::chrono_literals;

TEST(EventLoop, CallSoonRunsCallbacksInOrder) {
  EventLoop loop;
  std::vector<int> order;
  loop.call_soon([&] { order.push_back(1); });
  loop.call_soon([&](int value) { order.push_back(value); }, 2);
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(EventLoop, CallbackScheduledByACallbackRunsInTheNextIteration) {
  EventLoop loop;
  std::vector<std::string> order;
  loop.call_soon([&] {
    order.push_back("first");
    loop.call_soon([&] { order.push_back("third"); });
  });
  loop.call_soon([&] { order.push_back("second"); });
  loop.call_soon([&] { loop.call_soon([&] { loop.stop(); }); });
  loop.run_forever();
  EXPECT_EQ(order, (std::vector<std::string>{"first", "second", "third"}));
}

TEST(EventLoop, CancelledHandleDoesNotRun) {
  EventLoop loop;
  bool ran = false;
  auto handle = loop.call_soon([&] { ran = true; });
  handle.cancel();
  EXPECT_TRUE(handle.cancelled());
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_FALSE(ran);
}

TEST(EventLoop, CallLaterWaitsAtLeastTheDelayAndOrdersByDeadline) {
  EventLoop loop;
  std::vector<int> order;
  const auto start = loop.time();
  EventLoop::clock::time_point fired;
  loop.call_later(30ms, [&] {
    order.push_back(2);
    fired = loop.time();
    loop.stop();
  });
  loop.call_later(10ms, [&] { order.push_back(1); });
  loop.run_forever();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_GE(fired - start, 30ms);
}

// A loop polls briefly after a burst of work before it sleeps; waiting for a timer it sleeps.
TEST(EventLoop, AWaitingLoopSleepsInsteadOfPolling) {
  EventLoop loop;
  int bursts = 0;
  // Ten bursts of work, each followed by 30 ms of nothing.
  std::function<void()> burst = [&] {
    if (++bursts == 10) {
      loop.stop();
      return;
    }
    loop.call_later(30ms, burst);
  };
  loop.call_soon(burst);
  rusage before{};
  ::getrusage(RUSAGE_THREAD, &before);
  loop.run_forever();
  rusage after{};
  ::getrusage(RUSAGE_THREAD, &after);
  const auto cpu = [](const rusage& usage) {
    return std::chrono::seconds(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           std::chrono::microseconds(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
  };
  EXPECT_EQ(bursts, 10);
  // 270 ms of waiting; polling for all of it would use about as much CPU time.
  EXPECT_LT(cpu(after) - cpu(before), 100ms);
}

TEST(EventLoop, CallAtAndTimerHandle) {
  EventLoop loop;
  bool cancelled_ran = false;
  const auto when = loop.time() + 20ms;
  auto handle = loop.call_at(when, [&] { loop.stop(); });
  EXPECT_EQ(handle.when(), when);
  auto cancelled = loop.call_later(5ms, [&] { cancelled_ran = true; });
  cancelled.cancel();
  loop.run_forever();
  EXPECT_FALSE(cancelled_ran);
  EXPECT_GE(loop.time(), when);
}

TEST(EventLoop, CallSoonThreadsafeWakesTheLoopFromAnotherThread) {
  EventLoop loop;
  std::latch started(1);
  std::thread::id ran_on;
  loop.call_soon([&] { started.count_down(); });
  std::thread other([&] {
    started.wait();
    loop.call_soon_threadsafe([&] {
      ran_on = std::this_thread::get_id();
      loop.stop();
    });
  });
  loop.run_forever();
  other.join();
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(EventLoop, CallSoonThreadsafeAfterCloseIsLogicError) {
  EventLoop loop;
  loop.close();
  EXPECT_TRUE(loop.is_closed());
  EXPECT_THROW(loop.call_soon_threadsafe([] {}), std::logic_error);
  EXPECT_THROW(loop.call_soon([] {}), std::logic_error);
  loop.close();  // idempotent
}

TEST(EventLoop, ExceptionInCallbackGoesToTheHandler) {
  EventLoop loop;
  std::string message;
  loop.set_exception_handler(
      [&](EventLoop&, const asyncio::ExceptionContext& context) { message = context.message; });
  loop.call_soon([] { throw std::runtime_error("bad callback"); });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(message, "Exception in callback");
}

TEST(EventLoop, RunUntilCompleteReturnsResult) {
  EventLoop loop;
  auto work = []() -> Task<int> {
    co_await asyncio::sleep(1ms);
    co_return 3;
  };
  EXPECT_EQ(loop.run_until_complete(work()), 3);
  EXPECT_FALSE(loop.is_running());
}

TEST(EventLoop, RunUntilCompleteStoppedEarlyIsLogicError) {
  EventLoop loop;
  auto work = [&]() -> Task<> {
    loop.stop();
    co_await asyncio::sleep(10s);
  };
  EXPECT_THROW(loop.run_until_complete(work()), std::logic_error);
}

TEST(EventLoop, GetRunningLoopOnlyWhileRunning) {
  EXPECT_THROW(asyncio::get_running_loop(), std::logic_error);
  EventLoop loop;
  EventLoop* seen = nullptr;
  loop.call_soon([&] {
    seen = &asyncio::get_running_loop();
    EXPECT_TRUE(loop.is_running());
    EXPECT_THROW(loop.close(), std::logic_error);
    EXPECT_THROW(loop.run_forever(), std::logic_error);
    loop.stop();
  });
  loop.run_forever();
  EXPECT_EQ(seen, &loop);
}

TEST(EventLoop, SecondLoopCannotRunInsideTheFirst) {
  EventLoop outer;
  EventLoop inner;
  outer.call_soon([&] {
    EXPECT_THROW(inner.run_forever(), std::logic_error);
    outer.stop();
  });
  outer.run_forever();
}

TEST(EventLoop, FutureSetResultWakesAwaitingTask) {
  EventLoop loop;
  auto future = loop.create_future<int>();
  auto waiter = [](asyncio::Future<int> f) -> Task<int> { co_return co_await f; };
  loop.call_later(5ms, [future]() mutable { future.set_result(11); });
  EXPECT_EQ(loop.run_until_complete(waiter(future)), 11);
  EXPECT_TRUE(future.done());
  EXPECT_THROW(future.set_result(1), asyncio::InvalidStateError);
}

TEST(EventLoop, FutureExceptionAndCancel) {
  EventLoop loop;
  auto failing = loop.create_future<int>();
  failing.set_exception(std::make_exception_ptr(std::out_of_range("x")));
  EXPECT_THROW(loop.run_until_complete(failing), std::out_of_range);
  auto cancelled = loop.create_future<>();
  EXPECT_TRUE(cancelled.cancel("why"));
  EXPECT_TRUE(cancelled.cancelled());
  EXPECT_FALSE(cancelled.cancel());
  EXPECT_THROW(cancelled.result(), asyncio::CancelledError);
}

TEST(EventLoop, CancellingTaskCancelsTheFutureItAwaits) {
  EventLoop loop;
  auto future = loop.create_future<int>();
  auto waiter = [](asyncio::Future<int> f) -> Task<int> { co_return co_await f; };
  auto main = [&]() -> Task<> {
    auto task = asyncio::create_task(waiter(future));
    co_await asyncio::sleep(0ms);
    task.cancel();
    EXPECT_THROW(co_await task, asyncio::CancelledError);
    EXPECT_TRUE(future.cancelled());
  };
  loop.run_until_complete(main());
}

TEST(EventLoop, FutureDoneCallback) {
  EventLoop loop;
  auto future = loop.create_future<int>();
  int seen = 0;
  future.add_done_callback([&](asyncio::Future<int>& done) {
    seen = done.result();
    loop.stop();
  });
  future.set_result(9);
  loop.run_forever();
  EXPECT_EQ(seen, 9);
}

TEST(EventLoop, UvLoopAccessorGivesTheLibuvLoop) {
  EventLoop loop;
  uv_loop_t* uv = asyncio::internal::uv_loop(loop);
  ASSERT_NE(uv, nullptr);
  // A libuv handle started on it drives the asyncio loop.
  uv_timer_t timer;
  uv_timer_init(uv, &timer);
  timer.data = &loop;
  uv_timer_start(
      &timer, [](uv_timer_t* t) { static_cast<EventLoop*>(t->data)->stop(); }, 1, 0);
  loop.run_forever();
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
  loop.close();
}

// A libuv timer already due fires in uv_run's first phase, before the poll: stop() there must
// keep the poll from waiting for I/O that never comes.
TEST(EventLoop, StopFromALibuvCallbackBeforeThePollReturnsAtOnce) {
  EventLoop loop;
  uv_timer_t timer;
  uv_timer_init(asyncio::internal::uv_loop(loop), &timer);
  timer.data = &loop;
  uv_timer_start(
      &timer, [](uv_timer_t* t) { static_cast<EventLoop*>(t->data)->stop(); }, 0, 0);
  loop.run_forever();
  EXPECT_FALSE(loop.is_running());
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
  loop.close();
}

}  // namespace
