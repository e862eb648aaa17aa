// Futures lesson 1: a ThreadPoolExecutor runs each submitted call on one of its threads and
// hands back a Future at once. result() waits for the call's return value, so two 1 s calls
// submitted together finish in about 1 s.
#include <chrono>
#include <string>
#include <thread>

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
    // As `with ThreadPoolExecutor() as executor:` the destructor waits for the calls.
    futures::ThreadPoolExecutor executor;
    futures::Future<std::string> f1 = executor.submit(do_something, 1);
    futures::Future<std::string> f2 = executor.submit(do_something, 1);
    spindle::print("{}", f1.result());
    spindle::print("{}", f2.result());
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
}
