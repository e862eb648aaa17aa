// Lesson 3: join() blocks until that thread ends. Call it right after start() and the next
// thread is not even started yet: the threads run one after the other, and a 1 s task plus a
// 2 s task take 3 s instead of 2 s. Start every thread first, join them afterwards.
#include <chrono>
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

  threading::Thread t1(do_something, 1);
  t1.start();
  t1.join();  // too early: main waits here for t1 before t2 exists

  threading::Thread t2(do_something, 2);
  t2.start();
  t2.join();

  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
  spindle::print(
      "Why 3 s and not 2 s: each thread was joined right after start(), so the 1 s and 2 s "
      "tasks ran one after the other. Start both threads first, then join both.");
}
