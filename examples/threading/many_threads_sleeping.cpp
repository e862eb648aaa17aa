// Lesson 2: ten threads that each sleep 1 s finish together in about 1 s, not 10 s. Start
// them all first, then join them all.
#include <chrono>
#include <deque>
#include <thread>

#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace threading = spindle::threading;
using Clock = std::chrono::steady_clock;

void do_something(int seconds) {
  spindle::print("Sleeping {} second(s)...", seconds);
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  spindle::print("Done Sleeping...{}", seconds);
}

int main() {
  const auto start = Clock::now();

  // A Thread cannot be copied or moved (other threads may refer to it). A std::deque never
  // moves its elements, so it can hold Threads directly.
  std::deque<threading::Thread> threads;
  for (int i = 0; i < 10; ++i) {
    threads.emplace_back(do_something, 1).start();
  }
  for (auto& thread : threads) {
    thread.join();
  }

  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
}
