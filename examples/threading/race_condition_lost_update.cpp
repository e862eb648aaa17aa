// Lesson 7: a race condition. Each thread reads the shared counter, computes the new value,
// pauses (a context switch could happen here at any time; the sleep makes it certain), then
// writes back. Both threads read 0 before either writes, so one update overwrites the other:
// 0 + 10 + 20 ends as 20, not 30. Holding a Lock from the read to the write makes the update
// atomic, and the result is 30.
//
// The counter is a std::atomic so that each single read and write is well defined in C++;
// the race is in the read-modify-write sequence, which no single atomic operation covers.
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace threading = spindle::threading;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::atomic<int> counter{0};
threading::Lock lock;

// The +20 thread pauses longer, so it always writes last and the result is always 20, as in
// the tutorial.
void increase(int by) {
  int local_counter = counter.load();
  local_counter += by;
  std::this_thread::sleep_for(by * 10ms);
  counter.store(local_counter);
  spindle::print("counter={}", counter.load());
}

void increase_with_lock(int by) {
  const std::scoped_lock guard(lock);  // Python's `with lock:`
  int local_counter = counter.load();
  local_counter += by;
  std::this_thread::sleep_for(by * 10ms);
  counter.store(local_counter);
  spindle::print("counter={}", counter.load());
}

template <class F>
void run_two_threads(F function) {
  counter = 0;
  threading::Thread t1(function, 10);
  threading::Thread t2(function, 20);
  t1.start();
  t2.start();
  t1.join();
  t2.join();
}

int main() {
  const auto start = Clock::now();

  spindle::print("== Without a lock ==");
  run_two_threads(increase);
  spindle::print("The final counter is {} (one update was lost)", counter.load());

  spindle::print("== With a Lock ==");
  run_two_threads(increase_with_lock);
  spindle::print("The final counter with a lock is {}", counter.load());

  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
}
