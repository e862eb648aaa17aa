// Lesson 13: a Timer calls a function once, after an interval. To call it every so often,
// derive from Timer and override run() to loop until the timer is cancelled; finished() is
// the Event that cancel() sets, and wait(interval) doubles as a sleep that cancel() cuts
// short. Here the timer reports progress while the main thread computes primes.
#include <atomic>
#include <chrono>

#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace threading = spindle::threading;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class RepeatTimer : public threading::Timer {
 public:
  using Timer::Timer;

 protected:
  void run() override {
    while (!finished().wait(interval())) {
      call_function();
    }
  }
};

std::atomic<long> primes_found{0};
std::atomic<int> reports{0};

void report_progress() {
  ++reports;
  spindle::print("[timer] primes found so far: {}", primes_found.load());
}

bool is_prime(long n) {
  if (n < 2) return false;
  for (long d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

int main() {
  const auto start = Clock::now();

  RepeatTimer timer(250ms, report_progress);
  timer.start();

  // Compute for about 1.2 s, however fast this machine is.
  long n = 2;
  while (Clock::now() - start < 1200ms) {
    for (const long end = n + 1000; n < end; ++n) {
      if (is_prime(n)) ++primes_found;
    }
  }
  timer.cancel();
  timer.join();  // its run() uses the object: join before it goes

  spindle::print(
      "Main thread: {} primes below {}; the timer reported {} time(s), then was cancelled",
      primes_found.load(), n, reports.load());
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
}
