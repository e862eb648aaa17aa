// Futures lesson 5: the thread-safe counter again, with the threads managed by a pool. Five
// tasks each increment a shared counter 100,000 times; the Lock held around each increment
// keeps every one of them, so the total is exactly 500000.
#include <chrono>
#include <functional>
#include <mutex>
#include <vector>

#include "spindle/futures.hpp"
#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace futures = spindle::futures;
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
  constexpr int kTasks = 5;
  constexpr int kIncrements = 100'000;
  Counter counter;

  {
    futures::ThreadPoolExecutor executor({.max_workers = kTasks});
    std::vector<futures::Future<void>> tasks;
    for (int i = 0; i < kTasks; ++i) {
      // submit copies its arguments: std::ref shares the one counter.
      tasks.push_back(executor.submit(work, std::ref(counter), kIncrements));
    }
    // result() rethrows what a task threw, which the pool would otherwise keep to itself.
    for (const auto& task : tasks) {
      task.result();
    }
  }

  spindle::print("Final count: {} (expected {})", counter.value(), kTasks * kIncrements);
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
  return counter.value() == kTasks * kIncrements ? 0 : 1;
}
