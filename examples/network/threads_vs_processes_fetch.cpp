// Network lesson 6: fetch many URLs with a ThreadPoolExecutor, then with a
// ProcessPoolExecutor, and compare. Waiting for the network costs no CPU, so both overlap the
// waits equally; the processes only add start-up and the cost of shipping results back. The
// targets are plain functions so that worker processes can run them.
//
//   threads_vs_processes_fetch BASE_URL
#include <chrono>
#include <string>
#include <vector>

#include "spindle/futures.hpp"
#include "spindle/http.hpp"
#include "spindle/multiprocessing.hpp"
#include "spindle/print.hpp"

namespace futures = spindle::futures;
namespace mp = spindle::multiprocessing;
namespace http = spindle::http;
using Clock = std::chrono::steady_clock;

// The body's size, or -1 if the request failed.
long fetch_size(std::string url) {
  try {
    return static_cast<long>(http::get(url).body_size);
  } catch (const http::RequestError&) {
    return -1;
  }
}

template <class Executor>
long fetch_all(Executor& executor, const std::vector<std::string>& urls) {
  std::vector<futures::Future<long>> sizes;
  for (const auto& url : urls)
    sizes.push_back(executor.submit(fetch_size, url));
  long total = 0;
  for (auto& size : sizes) {
    const long bytes = size.result();
    if (bytes < 0) return -1;
    total += bytes;
  }
  return total;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int main(int argc, char** argv) {
  if (argc < 2) {
    spindle::print("usage: threads_vs_processes_fetch BASE_URL");
    return 2;
  }
  std::vector<std::string> urls;
  for (int i = 0; i < 16; ++i)
    urls.push_back(std::string(argv[1]) + "/delay/200?n=" + std::to_string(i));
  const auto start = Clock::now();

  auto t = Clock::now();
  long by_threads = 0;
  {
    futures::ThreadPoolExecutor threads({.max_workers = 8});
    by_threads = fetch_all(threads, urls);
  }
  const double thread_seconds = seconds_since(t);
  spindle::print("Threads:   {} URLs, {} bytes in {:.2f} second(s)", urls.size(), by_threads,
                 thread_seconds);

  t = Clock::now();
  long by_processes = 0;
  {
    mp::ProcessPoolExecutor processes({.max_workers = 8});
    by_processes = fetch_all(processes, urls);
  }
  const double process_seconds = seconds_since(t);
  spindle::print("Processes: {} URLs, {} bytes in {:.2f} second(s)", urls.size(), by_processes,
                 process_seconds);
  spindle::print("Same bytes: {}", by_threads == by_processes && by_threads >= 0 ? "yes" : "NO");
  spindle::print(
      "Both overlap the waits: for I/O-bound work threads are enough, and cheaper than "
      "processes.");
  spindle::print("Finished in {:.2f} second(s)", seconds_since(start));
}
