// Futures lesson 4: map with max_workers = 3 squares five numbers on three threads. The
// results come back in input order however the threads interleave, as list(executor.map(...)).
#include <chrono>
#include <vector>

#include <fmt/ranges.h>

#include "spindle/futures.hpp"
#include "spindle/print.hpp"

namespace futures = spindle::futures;
using Clock = std::chrono::steady_clock;

int square(int n) {
  return n * n;
}

int main() {
  const auto start = Clock::now();
  const std::vector<int> numbers = {1, 2, 3, 4, 5};
  std::vector<int> results;
  {
    futures::ThreadPoolExecutor executor({.max_workers = 3});
    for (int result : executor.map(square, numbers)) {
      results.push_back(result);
    }
  }
  spindle::print("{}", results);
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
  return results == std::vector<int>{1, 4, 9, 16, 25} ? 0 : 1;
}
