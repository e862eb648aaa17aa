// Lesson 6: a daemon thread does background work that must not keep the program alive. This
// one prints a counter every second, forever; the main thread waits for a line on stdin.
// When main returns the program ends, and the daemon thread with it. (A non-daemon thread
// would make the program wait for it at exit, which here would be forever.)
//
// With stdin closed or empty (`</dev/null`) the program ends at once.
#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace threading = spindle::threading;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

void show_timer() {
  for (int count = 1;; ++count) {
    std::this_thread::sleep_for(1s);
    spindle::print("Has been waiting for {} second(s)...", count);
  }
}

int main() {
  const auto start = Clock::now();

  threading::Thread timer({.name = "timer", .daemon = true}, show_timer);
  timer.start();

  spindle::print("Press enter to quit");
  std::string line;
  if (std::getline(std::cin, line)) {
    spindle::print("Got a line: quitting; the daemon thread '{}' ends with the program",
                   timer.name());
  } else {
    spindle::print(
        "stdin is closed or empty: quitting; the daemon thread '{}' ends with the program",
        timer.name());
  }

  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
}
