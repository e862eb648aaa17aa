#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "spindle/threading.hpp"

namespace {

using namespace std::chrono_literals;
namespace threading = spindle::threading;
using threading::Event;
using threading::Thread;

TEST(Event, StartsClearAndFollowsSetAndClear) {
  Event event;
  EXPECT_FALSE(event.is_set());
  event.set();
  EXPECT_TRUE(event.is_set());
  event.set();
  EXPECT_TRUE(event.is_set());
  event.clear();
  EXPECT_FALSE(event.is_set());
}

TEST(Event, WaitTimesOutReturningFalse) {
  Event event;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(event.wait(30ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
}

TEST(Event, WaitOnASetEventReturnsAtOnce) {
  Event event;
  event.set();
  event.wait();
  EXPECT_TRUE(event.wait(0s));
}

TEST(Event, SetWakesEveryWaiter) {
  Event event;
  std::atomic<int> woken{0};
  std::vector<std::unique_ptr<Thread>> threads;
  for (int i = 0; i < 5; ++i) {
    threads.push_back(std::make_unique<Thread>([&] {
      if (event.wait(30s)) ++woken;
    }));
    threads.back()->start();
  }
  event.set();
  for (auto& thread : threads)
    thread->join();
  EXPECT_EQ(woken.load(), 5);
}

TEST(Event, NegativeTimeoutThrowsInvalidArgument) {
  Event event;
  EXPECT_THROW(event.wait(-1ms), std::invalid_argument);
}

TEST(Event, StopsAWorkerEarly) {
  Event stop;
  int rounds = 0;
  Event first_round;
  Thread worker([&] {
    while (!stop.wait(1ms)) {
      ++rounds;
      first_round.set();
    }
  });
  worker.start();
  first_round.wait();
  stop.set();
  worker.join();
  EXPECT_GE(rounds, 1);
}

}  // namespace
