// Lesson 9: a counter shared by five threads, each incrementing it 100,000 times. `value += 1`
// is a read followed by a write, so without a lock increments get lost; with the Lock held
// around each increment the total is exactly 500000.
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>

#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace threading = spindle::threading;
using Clock = std::chrono::steady_clock;

class Counter {
 public:
  void increment() {
    const std::scoped_lock guard(lock_);
    value_ += 1;
  }
  long value() {
    const std::scoped_lock guard(lock_);
    return value_;
  }

 private:
  threading::Lock lock_;
  long value_ = 0;
};

void work(Counter& counter, int times) {
  for (int i = 0; i < times; ++i) {
    counter.increment();
  }
}

int main() {
  const auto start = Clock::now();
  constexpr int kThreads = 5;
  constexpr int kIncrements = 100'000;
  Counter counter;

  std::deque<threading::Thread> threads;  // a deque never moves its elements
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back(work, std::ref(counter), kIncrements).start();
  }
  for (auto& thread : threads) {
    thread.join();
  }

  spindle::print("Final count: {} (expected {})", counter.value(), kThreads * kIncrements);
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
  return counter.value() == kThreads * kIncrements ? 0 : 1;
}
