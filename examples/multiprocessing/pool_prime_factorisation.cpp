// Multiprocessing lesson 2: the prime factors of 64 random numbers between 40,000,000 and
// 80,000,000, computed by Pool.map over a pool with one worker per CPU. map splits the list
// into chunks, ships each chunk to a worker and returns the results in input order.
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "spindle/multiprocessing.hpp"
#include "spindle/print.hpp"

namespace mp = spindle::multiprocessing;
using Clock = std::chrono::steady_clock;

std::vector<long> factorise(long n) {
  std::vector<long> factors;
  for (long d = 2; d * d <= n; ++d) {
    while (n % d == 0) {
      factors.push_back(d);
      n /= d;
    }
  }
  if (n > 1) factors.push_back(n);
  return factors;
}

int main() {
  const auto start = Clock::now();
  std::mt19937_64 random(std::random_device{}());
  std::uniform_int_distribution<long> pick(40'000'000, 80'000'000);
  std::vector<long> numbers(64);
  for (long& number : numbers)
    number = pick(random);

  mp::Pool pool;  // cpu_count() workers
  const std::vector<std::vector<long>> factors = pool.map(factorise, numbers);
  bool all_correct = true;
  for (std::size_t i = 0; i < numbers.size(); ++i) {
    long product = 1;
    for (long factor : factors[i])
      product *= factor;
    all_correct = all_correct && product == numbers[i];
    spindle::print("{} = {}", numbers[i], fmt::join(factors[i], " * "));
  }
  spindle::print("{} numbers factorised by {} worker process(es); every product checks: {}",
                 numbers.size(), pool.processes(), all_correct ? "yes" : "NO");
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
}
