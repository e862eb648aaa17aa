// Lesson 4: the other way to give a thread its work is to derive from Thread and override
// run(). The object can keep what run() computes in a member; read it after join(), which
// guarantees run() has finished and its writes are visible.
#include <chrono>
#include <cstdint>
#include <deque>
#include <string>

#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace threading = spindle::threading;
using Clock = std::chrono::steady_clock;

// Sums the squares of first..last.
class SumOfSquares : public threading::Thread {
 public:
  SumOfSquares(std::string name, std::int64_t first, std::int64_t last)
      : Thread(threading::ThreadOptions{.name = std::move(name)}), first_(first), last_(last) {}

  // Valid once the thread has been joined.
  std::int64_t result() const { return result_; }

 protected:
  void run() override {
    std::int64_t sum = 0;
    for (std::int64_t n = first_; n <= last_; ++n) {
      sum += n * n;
    }
    result_ = sum;
  }

 private:
  std::int64_t first_;
  std::int64_t last_;
  std::int64_t result_ = 0;
};

int main() {
  const auto start = Clock::now();
  constexpr std::int64_t kLast = 1'000'000;
  constexpr std::int64_t kParts = 4;

  std::deque<SumOfSquares> workers;  // a deque never moves its elements
  for (std::int64_t part = 0; part < kParts; ++part) {
    const std::int64_t first = part * kLast / kParts + 1;
    const std::int64_t last = (part + 1) * kLast / kParts;
    workers.emplace_back("squares-" + std::to_string(part + 1), first, last).start();
  }

  std::int64_t total = 0;
  for (auto& worker : workers) {
    worker.join();  // also required before the object goes: its run() uses its members
    spindle::print("{} computed {}", worker.name(), worker.result());
    total += worker.result();
  }

  const std::int64_t expected = kLast * (kLast + 1) * (2 * kLast + 1) / 6;
  spindle::print("Sum of squares 1..{} = {} (formula says {}: {})", kLast, total, expected,
                 total == expected ? "match" : "MISMATCH");
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
  return total == expected ? 0 : 1;
}
