// Futures lesson 3: as_completed yields each future as soon as its call finishes, whatever
// the order they were submitted in. Ten calls sleep a random 1-10 s each; they overlap, so the
// whole run takes about as long as the longest of them.
//
// Usage: as_completed_random_sleeps [SCALE]  (SCALE, default 1.0, multiplies every sleep)
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "spindle/futures.hpp"
#include "spindle/print.hpp"

namespace futures = spindle::futures;
using Clock = std::chrono::steady_clock;

std::string do_something(double seconds) {
  spindle::print("Sleeping {:g} second(s)...", seconds);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  return fmt::format("Done Sleeping...{:g}", seconds);
}

int main(int argc, char** argv) {
  double scale = 1.0;
  if (argc > 1) {
    char* end = nullptr;
    scale = std::strtod(argv[1], &end);
    if (argc > 2 || end == argv[1] || *end != '\0' || !(scale > 0 && scale <= 10)) {
      spindle::print(stderr, "usage: {} [SCALE]  (0 < SCALE <= 10, default 1.0)", argv[0]);
      return 2;
    }
  }

  // Different on every run, so the finishing order differs too; printed, so a run can be
  // checked against its own durations.
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> one_to_ten(1, 10);
  std::vector<double> secs;
  for (int i = 0; i < 10; ++i) {
    secs.push_back(one_to_ten(random) * scale);
  }
  spindle::print("Chosen sleeps (s): {:g}", fmt::join(secs, ", "));

  const auto start = Clock::now();
  {
    // One worker per call: with fewer, some calls would wait for a free thread and the run
    // would take longer than its longest sleep on a machine with few CPUs.
    futures::ThreadPoolExecutor executor({.max_workers = secs.size()});
    std::vector<futures::Future<std::string>> results;
    for (double sec : secs) {
      results.push_back(executor.submit(do_something, sec));
    }
    for (const auto& future : futures::as_completed(results)) {
      spindle::print("{}", future.result());
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  const double longest = std::ranges::max(secs);
  spindle::print("longest sleep {:g} s, finished in {:.2f} s", longest, elapsed);
  if (elapsed >= longest + 2.0) {
    spindle::print("FAILED: took 2 s or more beyond the longest task");
    return 1;
  }
  spindle::print("OK: finished with the longest task");
  spindle::print("Finished in {:.2f} second(s)", elapsed);
}
