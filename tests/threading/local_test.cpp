#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "spindle/threading.hpp"

namespace {

namespace threading = spindle::threading;
using threading::local;
using threading::Thread;

TEST(Local, EachThreadSeesItsOwnValue) {
  local<int> value;
  value.get() = 1;
  std::vector<int> seen(4, -1);
  std::vector<std::unique_ptr<Thread>> threads;
  for (int i = 0; i < 4; ++i) {
    threads.push_back(std::make_unique<Thread>([&, i] {
      seen[i] = value.get();  // a fresh default-constructed int
      value.get() = 100 + i;
      EXPECT_EQ(*value, 100 + i);
    }));
    threads.back()->start();
  }
  for (auto& thread : threads)
    thread->join();
  EXPECT_EQ(seen, (std::vector<int>{0, 0, 0, 0}));
  EXPECT_EQ(value.get(), 1);
}

TEST(Local, TheFactoryMakesEachThreadsFirstValue) {
  local<std::string> greeting([] { return std::string("hello"); });
  std::string in_thread;
  Thread thread([&] { in_thread = greeting.get(); });
  thread.start();
  thread.join();
  EXPECT_EQ(in_thread, "hello");
  EXPECT_EQ(greeting->size(), 5u);
}

struct Tracked {
  static inline std::atomic<int> alive{0};
  Tracked() { ++alive; }
  ~Tracked() { --alive; }
};

TEST(Local, AThreadsValueIsDestroyedWhenTheThreadEnds) {
  local<Tracked> value;
  Thread thread([&] { value.get(); });
  thread.start();
  thread.join();
  EXPECT_EQ(Tracked::alive.load(), 0);
}

TEST(Local, AForeignThreadsValueIsDestroyedWhenItEnds) {
  local<Tracked> value;
  std::thread foreign([&] { value.get(); });
  foreign.join();
  EXPECT_EQ(Tracked::alive.load(), 0);
}

TEST(Local, ValuesAreDestroyedWithTheLocal) {
  {
    local<Tracked> value;
    value.get();
    EXPECT_EQ(Tracked::alive.load(), 1);
  }
  EXPECT_EQ(Tracked::alive.load(), 0);
}

TEST(Local, ManyLocalsInOneThreadAreIndependent) {
  local<int> first;
  local<int> second([] { return 7; });
  first.get() = 3;
  EXPECT_EQ(first.get(), 3);
  EXPECT_EQ(second.get(), 7);
}

}  // namespace
