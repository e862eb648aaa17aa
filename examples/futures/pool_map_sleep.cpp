// Futures lesson 2: executor.map submits one call per element at once and yields the results
// in input order, not in the order the calls finish. The calls overlap, so sleeping 1 s and
// 2 s takes about 2 s, the longest of them.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "spindle/futures.hpp"
#include "spindle/print.hpp"

namespace futures = spindle::futures;
using Clock = std::chrono::steady_clock;

std::string do_something(int seconds) {
  spindle::print("Sleeping {} second(s)...", seconds);
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  return fmt::format("Done Sleeping...{}", seconds);
}

int main() {
  const auto start = Clock::now();
  {
    futures::ThreadPoolExecutor executor;
    const std::vector<int> secs = {1, 2};
    // The 1 s result is printed first however the calls are scheduled: map keeps input order.
    for (const std::string& result : executor.map(do_something, secs)) {
      spindle::print("{}", result);
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
}
