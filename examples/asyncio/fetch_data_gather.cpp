// asyncio lesson 1: three "downloads" started with create_task and collected with gather.
// Each waits 2 s (the tutorial simulates the network with asyncio.sleep); they wait together,
// so the whole run takes about 2 s, not 6.
//
// Usage: fetch_data_gather [SCALE]  (SCALE, default 1.0, multiplies every wait)
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/ranges.h>

#include "spindle/asyncio.hpp"
#include "spindle/print.hpp"

namespace asyncio = spindle::asyncio;
using Clock = std::chrono::steady_clock;

asyncio::Task<std::string> fetch_data(std::string url, double seconds) {
  spindle::print("Fetching data from {}", url);
  co_await asyncio::sleep(std::chrono::duration<double>(seconds));
  spindle::print("Data fetched from {}", url);
  co_return "Data from " + url;
}

asyncio::Task<> main_task(double scale) {
  std::vector<std::string> urls{"url1", "url2", "url3"};
  std::vector<asyncio::Task<std::string>> tasks;
  for (const auto& url : urls)
    tasks.push_back(asyncio::create_task(fetch_data(url, 2 * scale)));
  std::vector<std::string> results = co_await asyncio::gather(std::move(tasks));
  spindle::print("[{}]", fmt::join(results, ", "));
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
