// Network lesson 4: a ThreadPoolExecutor downloads several files; as_completed yields each
// future as soon as its download is done, so the smallest files are usually printed first.
//
//   pool_as_completed_downloads BASE_URL
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "spindle/futures.hpp"
#include "spindle/http.hpp"
#include "spindle/print.hpp"

namespace futures = spindle::futures;
namespace http = spindle::http;
using Clock = std::chrono::steady_clock;

// Downloads `url`; returns the URL and the number of bytes received.
std::pair<std::string, std::uint64_t> download(const std::string& url) {
  return {url, http::get(url).body_size};
}

int main(int argc, char** argv) {
  if (argc < 2) {
    spindle::print("usage: pool_as_completed_downloads BASE_URL");
    return 2;
  }
  const std::string base = argv[1];
  const auto start = Clock::now();
  int failed = 0;
  {
    futures::ThreadPoolExecutor executor({.max_workers = 5});
    std::vector<futures::Future<std::pair<std::string, std::uint64_t>>> downloads;
    for (int size : {4000000, 1000, 2000000, 100, 500000})
      downloads.push_back(executor.submit(download, base + "/bytes/" + std::to_string(size)));
    for (const auto& future : futures::as_completed(downloads)) {
      try {
        const auto [url, bytes] = future.result();
        spindle::print("{} was {} bytes", url, bytes);
      } catch (const http::RequestError& error) {
        spindle::print("{}", error.what());
        ++failed;
      }
    }
  }
  spindle::print("Finished in {:.2f} second(s)",
                 std::chrono::duration<double>(Clock::now() - start).count());
  return failed == 0 ? 0 : 1;
}
