// Lesson 11: a Semaphore(3) lets at most three threads into a section at once: ten
// "downloads" of 0.5 s each run three at a time, so they take about 2 s (4 rounds), and never
// more than three run together.
#include <algorithm>
#include <chrono>
#include <deque>
#include <mutex>
#include <thread>

#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace threading = spindle::threading;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

threading::Semaphore slots(3);

// How many downloads run now, and the most seen at once.
threading::Lock stats_lock;
int running = 0;
int max_running = 0;

void download(int number) {
  const std::scoped_lock slot(slots);  // acquire() ... release(), as `with semaphore:`
  {
    const std::scoped_lock guard(stats_lock);
    ++running;
    max_running = std::max(max_running, running);
    spindle::print("Downloading file {} ({} running)", number, running);
  }
  std::this_thread::sleep_for(500ms);
  {
    const std::scoped_lock guard(stats_lock);
    --running;
    spindle::print("Finished downloading file {}", number);
  }
}

int main() {
  const auto start = Clock::now();

  std::deque<threading::Thread> threads;  // a deque never moves its elements
  for (int number = 1; number <= 10; ++number) {
    threads.emplace_back(download, number).start();
  }
  for (auto& thread : threads) {
    thread.join();
  }

  spindle::print("Max concurrent downloads: {} (limit 3)", max_running);
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
  return max_running <= 3 ? 0 : 1;
}
