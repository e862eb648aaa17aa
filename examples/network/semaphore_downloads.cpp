// Network lesson 3: five downloads, each on its own thread, of which a Semaphore(3) lets three
// run at once. Each asks the server for a 500 ms delay, so they take about 1 s (two rounds).
//
//   semaphore_downloads BASE_URL
#include <algorithm>
#include <chrono>
#include <deque>
#include <mutex>
#include <string>

#include "spindle/http.hpp"
#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace threading = spindle::threading;
namespace http = spindle::http;
using Clock = std::chrono::steady_clock;

threading::Semaphore slots(3);
threading::Lock stats_lock;
int running = 0;
int max_running = 0;

void download(const std::string& url, int number) {
  const std::scoped_lock slot(slots);  // `with semaphore:`
  {
    const std::scoped_lock guard(stats_lock);
    max_running = std::max(max_running, ++running);
    spindle::print("Downloading file {} ({} running)", number, running);
  }
  long status = 0;
  try {
    status = http::get(url).status;
  } catch (const http::RequestError& error) {
    spindle::print("{}", error.what());
  }
  const std::scoped_lock guard(stats_lock);
  --running;
  spindle::print("Finished downloading file {} (status {})", number, status);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    spindle::print("usage: semaphore_downloads BASE_URL");
    return 2;
  }
  const std::string url = std::string(argv[1]) + "/delay/500";
  const auto start = Clock::now();
  std::deque<threading::Thread> threads;
  for (int number = 1; number <= 5; ++number)
    threads.emplace_back(download, url, number).start();
  for (auto& thread : threads)
    thread.join();
  spindle::print("Max concurrent downloads: {} (limit 3)", max_running);
  spindle::print("Finished in {:.2f} second(s)",
                 std::chrono::duration<double>(Clock::now() - start).count());
  return max_running <= 3 ? 0 : 1;
}
