// Network lesson 5: fifteen downloads one after another, then the same fifteen with map on a
// ThreadPoolExecutor. Each asks the server for a 200 ms delay: about 3 s in sequence, about
// 0.2 s on fifteen threads, because a thread waiting for the network holds no CPU.
//
//   sequential_vs_pool_map BASE_URL
#include <chrono>
#include <string>
#include <vector>

#include "spindle/futures.hpp"
#include "spindle/http.hpp"
#include "spindle/print.hpp"

namespace futures = spindle::futures;
namespace http = spindle::http;
using Clock = std::chrono::steady_clock;

long download(const std::string& url) {
  return http::get(url).status;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int main(int argc, char** argv) {
  if (argc < 2) {
    spindle::print("usage: sequential_vs_pool_map BASE_URL");
    return 2;
  }
  std::vector<std::string> urls;
  for (int i = 0; i < 15; ++i)
    urls.push_back(std::string(argv[1]) + "/delay/200?file=" + std::to_string(i));
  const auto start = Clock::now();

  auto t = Clock::now();
  int ok = 0;
  for (const auto& url : urls)
    ok += download(url) == 200;
  const double sequential = seconds_since(t);
  spindle::print("Sequential: {} of {} downloads OK in {:.2f} second(s)", ok, urls.size(),
                 sequential);

  t = Clock::now();
  ok = 0;
  {
    futures::ThreadPoolExecutor executor({.max_workers = 15});
    for (long status : executor.map(download, urls))
      ok += status == 200;
  }
  const double pooled = seconds_since(t);
  spindle::print("ThreadPoolExecutor.map: {} of {} downloads OK in {:.2f} second(s) ({:.1f}x)", ok,
                 urls.size(), pooled, sequential / pooled);
  spindle::print("Finished in {:.2f} second(s)", seconds_since(start));
}
