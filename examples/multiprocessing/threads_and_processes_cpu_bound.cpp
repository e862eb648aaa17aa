// Multiprocessing lesson 4: the same CPU-bound function (counting primes by trial division)
// run sequentially, on a ThreadPoolExecutor and on a ProcessPoolExecutor, two workers each.
//
// In Python only the process pool gets faster: the GIL lets one thread run Python code at a
// time. C++ has no GIL, so threads run on both CPUs at once and the thread pool scales as well
// as the process pool, without shipping arguments and results between processes. Processes
// are still the tool when a task may crash (a dead worker does not take the program down) or
// needs its own address space.
//
//   threads_and_processes_cpu_bound [LIMIT]   (default 20000000)
#include <chrono>
#include <cstdlib>
#include <vector>

#include "spindle/futures.hpp"
#include "spindle/multiprocessing.hpp"
#include "spindle/print.hpp"

namespace mp = spindle::multiprocessing;
using Clock = std::chrono::steady_clock;

long count_primes(long low, long high) {
  long count = 0;
  for (long n = low < 2 ? 2 : low; n < high; ++n) {
    bool prime = true;
    for (long d = 2; d * d <= n; ++d) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    count += prime;
  }
  return count;
}

template <class Executor>
long run_on(Executor& executor, long limit, int chunks) {
  std::vector<spindle::futures::Future<long>> futures;
  const long step = (limit + chunks - 1) / chunks;
  for (long low = 0; low < limit; low += step) {
    futures.push_back(executor.submit(count_primes, low, std::min(low + step, limit)));
  }
  long total = 0;
  for (auto& future : futures)
    total += future.result();
  return total;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int main(int argc, char** argv) {
  const long limit = argc > 1 ? std::atol(argv[1]) : 20'000'000;
  const int chunks = 64;
  const auto start = Clock::now();

  auto t = Clock::now();
  const long sequential = count_primes(0, limit);
  const double sequential_seconds = seconds_since(t);
  spindle::print("Sequential:           {} primes below {} in {:.2f} s", sequential, limit,
                 sequential_seconds);

  spindle::futures::ThreadPoolExecutor threads({.max_workers = 2});
  t = Clock::now();
  const long by_threads = run_on(threads, limit, chunks);
  const double thread_seconds = seconds_since(t);
  spindle::print("ThreadPoolExecutor:   {} primes in {:.2f} s ({:.2f}x)", by_threads,
                 thread_seconds, sequential_seconds / thread_seconds);

  mp::ProcessPoolExecutor processes({.max_workers = 2});
  t = Clock::now();
  const long by_processes = run_on(processes, limit, chunks);
  const double process_seconds = seconds_since(t);
  spindle::print("ProcessPoolExecutor:  {} primes in {:.2f} s ({:.2f}x)", by_processes,
                 process_seconds, sequential_seconds / process_seconds);

  spindle::print("Same counts: {}",
                 sequential == by_threads && by_threads == by_processes ? "yes" : "NO");
  spindle::print(
      "Both pools scale: C++ threads run on every CPU at once (there is no GIL), so "
      "a thread pool is as fast as a process pool for CPU-bound work, and cheaper.");
  spindle::print("Finished in {:.2f} second(s)", seconds_since(start));
}
