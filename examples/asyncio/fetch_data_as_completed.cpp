// asyncio lesson 2: the same downloads taking 3 s, 1 s and 2 s, handled with as_completed in
// the order they finish (url2, url3, url1), not the order they started. About 3 s in all.
//
// Usage: fetch_data_as_completed [SCALE]  (SCALE, default 1.0, multiplies every wait)
#include <chrono>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "spindle/asyncio.hpp"
#include "spindle/print.hpp"

namespace asyncio = spindle::asyncio;
using Clock = std::chrono::steady_clock;

asyncio::Task<std::string> fetch_data(std::string url, double seconds) {
  spindle::print("Fetching data from {} ({:g} s)", url, seconds);
  co_await asyncio::sleep(std::chrono::duration<double>(seconds));
  co_return "Data from " + url;
}

asyncio::Task<> main_task(double scale) {
  std::vector<std::pair<std::string, double>> urls{{"url1", 3}, {"url2", 1}, {"url3", 2}};
  std::vector<asyncio::Task<std::string>> tasks;
  for (const auto& [url, seconds] : urls)
    tasks.push_back(fetch_data(url, seconds * scale));
  for (auto next : asyncio::as_completed(std::move(tasks))) {
    std::string result = co_await next;
    spindle::print("Completed: {}", result);
  }
}

int main(int argc, char** argv) {
  const double scale = argc > 1 ? std::strtod(argv[1], nullptr) : 1.0;
  if (!(scale > 0 && scale <= 10)) {
    spindle::print(stderr, "usage: {} [SCALE]  (0 < SCALE <= 10, default 1.0)", argv[0]);
    return 2;
  }
  const auto start = Clock::now();
  asyncio::run(main_task(scale));
  spindle::print("Finished in {:.2f} second(s)",
                 std::chrono::duration<double>(Clock::now() - start).count());
}
