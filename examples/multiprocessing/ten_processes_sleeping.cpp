// Multiprocessing lesson 3: ten processes that each sleep 2 seconds. They sleep at the same
// time, so the program takes about 2 seconds, not 20.
//
//   ten_processes_sleeping [SECONDS]   (default 2)
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "spindle/multiprocessing.hpp"
#include "spindle/print.hpp"

namespace mp = spindle::multiprocessing;
using Clock = std::chrono::steady_clock;

void do_something(double seconds) {
  spindle::print("Sleeping {} second(s)...", seconds);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  spindle::print("Done Sleeping...");
}

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const auto start = Clock::now();
  std::vector<mp::Process> processes;
  for (int i = 0; i < 10; ++i) {
    processes.emplace_back(do_something, seconds);
    processes.back().start();
  }
  for (auto& process : processes)
    process.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
}
