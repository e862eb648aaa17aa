// Multiprocessing lesson 1: one process per CPU, each counting to 200,000,000 in a loop and
// printing its process id. The processes run at the same time on different CPUs, so the
// whole run takes about as long as one count.
//
//   spin_one_process_per_cpu [STEPS]   (default 200000000; the ctest entry uses fewer)
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "spindle/multiprocessing.hpp"
#include "spindle/print.hpp"

namespace mp = spindle::multiprocessing;
using Clock = std::chrono::steady_clock;

void spin(long steps) {
  volatile long count = 0;  // volatile: the compiler may not skip the loop
  while (count < steps)
    count = count + 1;
  spindle::print("Process {} ({}) counted to {}", ::getpid(), mp::current_process().name(), steps);
}

int main(int argc, char** argv) {
  const long steps = argc > 1 ? std::atol(argv[1]) : 200'000'000;
  const auto start = Clock::now();
  spindle::print("Main process {} starts {} process(es), one per CPU", ::getpid(), mp::cpu_count());
  std::vector<mp::Process> processes;
  for (std::size_t i = 0; i < mp::cpu_count(); ++i)
    processes.emplace_back(spin, steps);
  for (auto& process : processes)
    process.start();
  for (auto& process : processes)
    process.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
}
