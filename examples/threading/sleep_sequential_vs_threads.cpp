// Lesson 1: a task that waits (sleeps, downloads, reads a file) leaves the CPU idle. Run two
// such tasks one after the other and they take 2 s; run them on two threads and the waits
// overlap, so they take 1 s.
#include <chrono>
#include <thread>

#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace threading = spindle::threading;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

void do_something() {
  spindle::print("Sleeping 1 second...");
  std::this_thread::sleep_for(1s);
  spindle::print("Done Sleeping...");
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int main() {
  spindle::print("== One after the other ==");
  auto start = Clock::now();
  do_something();
  do_something();
  spindle::print("Sequential: Finished in {:.2f} second(s)", seconds_since(start));

  spindle::print("== On two threads ==");
  start = Clock::now();
  threading::Thread t1(do_something);
  threading::Thread t2(do_something);
  t1.start();
  t2.start();
  t1.join();
  t2.join();
  spindle::print("Two threads: Finished in {:.2f} second(s)", seconds_since(start));
}
