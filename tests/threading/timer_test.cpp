#include <gtest/gtest.h>

#include <atomic>
#include <chrono>

#include "spindle/threading.hpp"

namespace {

using namespace std::chrono_literals;
namespace threading = spindle::threading;
using threading::Event;
using threading::Timer;

TEST(Timer, CallsTheFunctionWithItsArgumentsAfterTheInterval) {
  int received = 0;
  const auto start = std::chrono::steady_clock::now();
  Timer timer(
      20ms, [&received](int value) { received = value; }, 5);
  timer.start();
  timer.join();
  EXPECT_EQ(received, 5);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
  EXPECT_TRUE(timer.finished().is_set());
}

TEST(Timer, CancelBeforeTheIntervalPreventsTheCall) {
  bool called = false;
  Timer timer(30s, [&called] { called = true; });
  timer.start();
  timer.cancel();
  const auto start = std::chrono::steady_clock::now();
  timer.join();
  EXPECT_FALSE(called);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST(Timer, CancelBeforeStartPreventsTheCall) {
  bool called = false;
  Timer timer(0s, [&called] { called = true; });
  timer.cancel();
  timer.start();
  timer.join();
  EXPECT_FALSE(called);
}

TEST(Timer, NegativeIntervalThrowsInvalidArgument) {
  EXPECT_THROW(Timer(-1s, [] {}), std::invalid_argument);
}

TEST(Timer, DestroyingAStartedTimerCancelsIt) {
  std::atomic<bool> called{false};
  {
    Timer timer(30s, [&called] { called = true; });
    timer.start();
  }
  EXPECT_FALSE(called);
}

class RepeatTimer : public Timer {
 public:
  using Timer::Timer;

 protected:
  void run() override {
    while (!finished().wait(interval()))
      call_function();
  }
};

TEST(Timer, ASubclassCanRepeatUntilCancelled) {
  std::atomic<int> calls{0};
  Event three_calls;
  RepeatTimer timer(1ms, [&] {
    if (++calls == 3) three_calls.set();
  });
  timer.start();
  three_calls.wait();
  timer.cancel();
  timer.join();
  EXPECT_GE(calls.load(), 3);
}

}  // namespace
