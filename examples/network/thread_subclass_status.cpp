// Network lesson 1: a Thread subclass per URL that stores the HTTP status its run() got; read
// it after join(). One URL answers 200, the other 400.
//
//   thread_subclass_status BASE_URL   (a `spindle serve` address, e.g. http://127.0.0.1:8000)
#include <chrono>
#include <deque>
#include <string>

#include "spindle/http.hpp"
#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace threading = spindle::threading;
namespace http = spindle::http;
using Clock = std::chrono::steady_clock;

// Fetches one URL on its own thread and keeps the status code.
class StatusThread : public threading::Thread {
 public:
  explicit StatusThread(std::string url) : url_(std::move(url)) {}
  const std::string& url() const { return url_; }
  // Valid once joined; 0 if the request got no response.
  long status() const { return status_; }

 protected:
  void run() override {
    try {
      status_ = http::get(url_).status;
    } catch (const http::RequestError& error) {
      spindle::print("{}", error.what());
    }
  }

 private:
  std::string url_;
  long status_ = 0;
};

int main(int argc, char** argv) {
  if (argc < 2) {
    spindle::print("usage: thread_subclass_status BASE_URL");
    return 2;
  }
  const std::string base = argv[1];
  const auto start = Clock::now();
  std::deque<StatusThread> threads;  // a deque never moves its elements
  for (const char* code : {"200", "400"})
    threads.emplace_back(base + "/status/" + code).start();
  for (auto& thread : threads) {
    thread.join();
    spindle::print("{}: {}", thread.url(), thread.status());
  }
  spindle::print("Finished in {:.2f} second(s)",
                 std::chrono::duration<double>(Clock::now() - start).count());
}
