// Python's concurrent.futures workloads, run in one program through spindle's thread pool and
// the pools a C++ program would use instead, each with two workers:
//   - spindle::futures::ThreadPoolExecutor({.max_workers = 2}),
//   - oneTBB: tbb::task_group inside a tbb::task_arena(2) (TBB's model: the thread that waits
//     is one of the arena's two threads and runs tasks meanwhile),
//   - Asio: asio::thread_pool(2) + asio::post (a std::promise where a result is needed),
//   - thread_pool::ThreadPool(2) from Debian's libthread-pool-dev (rvaser/thread_pool 4.0):
//     Submit returns a std::future,
//   - std::async(std::launch::async): a thread per call, not a pool (W2 and W4 only),
//   - Python's concurrent.futures.ThreadPoolExecutor(max_workers=2)
//     (bench/python/futures_workloads.py, one child process per round and workload).
//
// The workloads:
//   W1  N tiny tasks, each incrementing an atomic, submitted from one thread; then wait for all.
//       Pools with no wait-for-all that keeps the pool (spindle with its futures dropped, Asio,
//       thread_pool) are told by the task whose increment reaches N (an atomic flag and a futex
//       wake); TBB uses task_group::wait(). The row spindle-wait keeps every Future and calls
//       spindle::futures::wait(futures), as Python code would.
//   W2  submit one task and block on its result, N times in a row: microseconds per round trip.
//       oneTBB twice: task_group::run + wait() (the waiting thread may run the task itself: no
//       hand-off) and task_arena::enqueue + std::promise (a worker runs it).
//   W3  N tasks returning ints, collected as they complete: spindle::futures::as_completed;
//       peers use what they offer (TBB: results written into slots, no futures; Asio: a
//       std::promise per task; thread_pool: its std::futures, waited in order).
//   W4  the primes below L by trial division, in 64 chunks: speedup over the same chunks run
//       one after another on the main thread (the row "sequential").
//   MEM the size of a task object and the allocations per task (global operator new is
//       replaced in this program to count calls; the build wraps
//       spindle::detail::allocate_block, where tasks come from, to count those exactly).
//
// Every pool is built and warmed up (both threads started) before its clock starts, and torn
// down after it stops. Each round runs every workload's peers, in an order rotated each round;
// the tables show the median of the rounds, the CPU time each run used, and spindle's speed
// relative to each peer. The share of the machine other processes used during the runs is
// printed with each table: on a two-core machine a figure taken beside a compiler is noise.
//
//   build/release/bench/futures_side_by_side [--quick] [--rounds R] [--only W1,W2,W3,W4,MEM]
//       [--peers LABEL,...] [--no-python] [--python PATH] [--script PATH]
//       [--python-w4-limit L] [--mem-tasks N]
// W2's pinned figure: taskset -c 0 build/release/bench/futures_side_by_side --only W2
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <new>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <asio.hpp>
#include <thread_pool/thread_pool.hpp>

#include "spindle/futures.hpp"

#include "side_by_side.hpp"

#ifndef SPINDLE_BENCH_PYTHON
#define SPINDLE_BENCH_PYTHON "/usr/bin/python3"
#endif
#ifndef SPINDLE_BENCH_PYTHON_SCRIPT
#define SPINDLE_BENCH_PYTHON_SCRIPT "bench/python/futures_workloads.py"
#endif

// ---- counting allocations ---------------------------------------------------------------

namespace {

using spindle_bench::affinity_cpus;
using spindle_bench::load_average;
using spindle_bench::median;
using spindle_bench::with_commas;
std::atomic<bool> counting{false};
// Calls to global operator new while counting, but for those made by allocate_block.
std::atomic<std::uint64_t> heap_calls{0};

// Task blocks handed out by spindle::detail::allocate_block while counting, by size, and how
// many of them it took from the heap (its caches were empty).
constexpr std::size_t kSizeBuckets = 65;  // [k] counts sizes 8k-7 .. 8k; the last, larger
std::atomic<std::uint64_t> block_calls{0};
std::atomic<std::uint64_t> block_sizes[kSizeBuckets];
std::atomic<std::uint64_t> block_heap_calls{0};
thread_local bool in_allocate_block = false;

void count_heap_call() noexcept {
  if (counting.load(std::memory_order_relaxed)) {
    (in_allocate_block ? block_heap_calls : heap_calls).fetch_add(1, std::memory_order_relaxed);
  }
}
}  // namespace

void* operator new(std::size_t size) {
  count_heap_call();
  if (void* block = std::malloc(size == 0 ? 1 : size)) return block;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, std::align_val_t align) {
  count_heap_call();
  const auto alignment = static_cast<std::size_t>(align);
  const std::size_t rounded =
      (std::max<std::size_t>(size, 1) + alignment - 1) / alignment * alignment;
  if (void* block = std::aligned_alloc(alignment, rounded)) return block;
  throw std::bad_alloc();
}
// Not inlined: GCC would see free() meet a pointer from operator new and warn.
[[gnu::noinline]] void operator delete(void* block) noexcept {
  std::free(block);
}
[[gnu::noinline]] void operator delete(void* block, std::size_t) noexcept {
  std::free(block);
}
[[gnu::noinline]] void operator delete(void* block, std::align_val_t) noexcept {
  std::free(block);
}
[[gnu::noinline]] void operator delete(void* block, std::size_t, std::align_val_t) noexcept {
  std::free(block);
}

#ifdef SPINDLE_BENCH_COUNT_BLOCKS
// The link step passes --wrap for spindle::detail::allocate_block(std::size_t): every call
// to it comes here, and the original is __real_<its name>.
extern "C" void* __real__ZN7spindle6detail14allocate_blockEm(std::size_t size);
extern "C" void* __wrap__ZN7spindle6detail14allocate_blockEm(std::size_t size) {
  if (!counting.load(std::memory_order_relaxed)) {
    return __real__ZN7spindle6detail14allocate_blockEm(size);
  }
  block_calls.fetch_add(1, std::memory_order_relaxed);
  block_sizes[std::min((size + 7) / 8, kSizeBuckets - 1)].fetch_add(1, std::memory_order_relaxed);
  in_allocate_block = true;
  void* block = __real__ZN7spindle6detail14allocate_blockEm(size);
  in_allocate_block = false;
  return block;
}
#endif

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kWorkers = 2;
constexpr std::size_t kChunks = 64;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// W1's task: one atomic increment. The increment that reaches the target wakes the thread
// waiting for all of them. The counter has a cache line of its own: the Countdown lives on
// the submitting thread's stack, and a counter sharing a line with that frame would make
// every increment on a worker steal the line from the submitter (false sharing that every
// peer paid for, and that measured the harness rather than the pools).
class alignas(64) Countdown {
 public:
  explicit Countdown(std::size_t target) : target_(target) { (void)padding_; }
  void hit() noexcept {
    if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 == target_) {
      done_.store(1, std::memory_order_release);
      done_.notify_one();
    }
  }
  void wait() const noexcept { done_.wait(0, std::memory_order_acquire); }
  void check() const {
    if (count_.load() != target_)
      throw std::runtime_error("W1 check failed: tasks lost or run twice");
  }

 private:
  alignas(64) std::atomic<std::size_t> count_{0};
  const std::size_t target_;
  std::atomic<int> done_{0};
  char padding_[64 - sizeof(std::size_t) * 2 - sizeof(std::atomic<int>)];
};

// Starts both threads of a pool: two tasks that each wait (100 ms at most) for the other.
class WarmUp {
 public:
  void task() {
    arrived_.fetch_add(1);
    const auto until = Clock::now() + std::chrono::milliseconds(100);
    while (arrived_.load() < static_cast<int>(kWorkers) && Clock::now() < until) {
      std::this_thread::yield();
    }
  }

 private:
  std::atomic<int> arrived_{0};
};

// ---- W4: primes by trial division --------------------------------------------------------

bool is_prime(std::uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (std::uint32_t d = 3; d * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

long count_primes(std::uint32_t first, std::uint32_t last) {
  long count = 0;
  for (std::uint32_t n = first; n < last; ++n)
    count += is_prime(n) ? 1 : 0;
  return count;
}

std::pair<std::uint32_t, std::uint32_t> chunk(std::uint32_t limit, std::size_t c) {
  return {static_cast<std::uint32_t>(std::uint64_t{limit} * c / kChunks),
          static_cast<std::uint32_t>(std::uint64_t{limit} * (c + 1) / kChunks)};
}

// Every W4 run must find the same count.
class PrimeCheck {
 public:
  void check(long primes) {
    if (!expected_) expected_ = primes;
    if (*expected_ != primes) throw std::runtime_error("W4 check failed: prime counts differ");
  }
  std::optional<long> expected() const { return expected_; }

 private:
  std::optional<long> expected_;
};

// ---- the peers ---------------------------------------------------------------------------

// spindle::futures::ThreadPoolExecutor({.max_workers = 2})
struct SpindlePeer {
  spindle::futures::ThreadPoolExecutor executor{{.max_workers = kWorkers}};
  SpindlePeer() {
    WarmUp warm;
    auto a = executor.submit([&warm] { warm.task(); });
    auto b = executor.submit([&warm] { warm.task(); });
    a.result();
    b.result();
  }

  double w1(std::size_t n) {
    Countdown countdown(n);
    const auto start = Clock::now();
    for (std::size_t i = 0; i < n; ++i)
      executor.submit([&countdown] { countdown.hit(); });
    countdown.wait();
    const double elapsed = seconds_since(start);
    countdown.check();
    return static_cast<double>(n) / elapsed;
  }
  double w1_wait(std::size_t n) {
    Countdown countdown(n);
    const auto start = Clock::now();
    std::vector<spindle::futures::Future<void>> futures;
    futures.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      futures.push_back(executor.submit([&countdown] { countdown.hit(); }));
    spindle::futures::wait(futures);
    const double elapsed = seconds_since(start);
    countdown.check();
    return static_cast<double>(n) / elapsed;
  }
  double w2(std::size_t n) {
    long total = 0;
    const auto start = Clock::now();
    for (std::size_t i = 0; i < n; ++i)
      total += executor.submit([] { return 1; }).result();
    const double elapsed = seconds_since(start);
    if (total != static_cast<long>(n)) throw std::runtime_error("W2 check failed");
    return elapsed / static_cast<double>(n) * 1e6;
  }
  double w3(std::size_t n) {
    std::int64_t total = 0;
    const auto start = Clock::now();
    std::vector<spindle::futures::Future<int>> futures;
    futures.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      futures.push_back(executor.submit([i] { return static_cast<int>(i); }));
    }
    for (const auto& future : spindle::futures::as_completed(futures))
      total += future.result();
    const double elapsed = seconds_since(start);
    check_sum(total, n);
    return static_cast<double>(n) / elapsed;
  }
  double w4(std::uint32_t limit, PrimeCheck& primes) {
    long total = 0;
    const auto start = Clock::now();
    std::vector<spindle::futures::Future<long>> futures;
    for (std::size_t c = 0; c < kChunks; ++c) {
      const auto [first, last] = chunk(limit, c);
      futures.push_back(executor.submit(count_primes, first, last));
    }
    for (const auto& future : futures)
      total += future.result();
    const double elapsed = seconds_since(start);
    primes.check(total);
    return elapsed;
  }
  static void check_sum(std::int64_t total, std::size_t n) {
    const auto items = static_cast<std::int64_t>(n);
    if (total != items * (items - 1) / 2) throw std::runtime_error("W3 check failed");
  }
};

// oneTBB: a task_arena of two threads; work goes through a task_group run inside it, so the
// thread that waits is the arena's second thread.
struct TbbPeer {
  tbb::task_arena arena{static_cast<int>(kWorkers)};
  TbbPeer() {
    arena.initialize();
    WarmUp warm;
    arena.execute([&] {
      tbb::task_group group;
      group.run([&warm] { warm.task(); });
      group.run([&warm] { warm.task(); });
      group.wait();
    });
  }

  double w1(std::size_t n) {
    Countdown countdown(n);
    double elapsed = 0;
    arena.execute([&] {
      tbb::task_group group;
      const auto start = Clock::now();
      for (std::size_t i = 0; i < n; ++i)
        group.run([&countdown] { countdown.hit(); });
      group.wait();
      elapsed = seconds_since(start);
    });
    countdown.check();
    return static_cast<double>(n) / elapsed;
  }
  // task_group::run + wait: the waiting thread may well run the task itself.
  double w2(std::size_t n) {
    long total = 0;
    double elapsed = 0;
    arena.execute([&] {
      tbb::task_group group;
      const auto start = Clock::now();
      for (std::size_t i = 0; i < n; ++i) {
        int value = 0;
        group.run([&value] { value = 1; });
        group.wait();
        total += value;
      }
      elapsed = seconds_since(start);
    });
    if (total != static_cast<long>(n)) throw std::runtime_error("W2 check failed");
    return elapsed / static_cast<double>(n) * 1e6;
  }
  // task_arena::enqueue from outside the arena: a worker runs it; a std::promise carries it.
  double w2_enqueue(std::size_t n) {
    long total = 0;
    const auto start = Clock::now();
    for (std::size_t i = 0; i < n; ++i) {
      std::promise<int> promise;
      auto future = promise.get_future();
      arena.enqueue([&promise] { promise.set_value(1); });
      total += future.get();
    }
    const double elapsed = seconds_since(start);
    if (total != static_cast<long>(n)) throw std::runtime_error("W2 check failed");
    return elapsed / static_cast<double>(n) * 1e6;
  }
  double w3(std::size_t n) {
    std::vector<int> slots(n);
    double elapsed = 0;
    std::int64_t total = 0;
    arena.execute([&] {
      tbb::task_group group;
      const auto start = Clock::now();
      for (std::size_t i = 0; i < n; ++i) {
        group.run([&slots, i] { slots[i] = static_cast<int>(i); });
      }
      group.wait();
      for (const int value : slots)
        total += value;
      elapsed = seconds_since(start);
    });
    SpindlePeer::check_sum(total, n);
    return static_cast<double>(n) / elapsed;
  }
  double w4(std::uint32_t limit, PrimeCheck& primes) {
    std::vector<long> counts(kChunks);
    double elapsed = 0;
    arena.execute([&] {
      tbb::task_group group;
      const auto start = Clock::now();
      for (std::size_t c = 0; c < kChunks; ++c) {
        group.run([&counts, limit, c] {
          const auto [first, last] = chunk(limit, c);
          counts[c] = count_primes(first, last);
        });
      }
      group.wait();
      elapsed = seconds_since(start);
    });
    long total = 0;
    for (const long count : counts)
      total += count;
    primes.check(total);
    return elapsed;
  }
};

// Asio: asio::thread_pool(2) and asio::post; a std::promise where a result is needed.
struct AsioPeer {
  asio::thread_pool pool{kWorkers};
  AsioPeer() {
    WarmUp warm;
    std::promise<void> a;
    std::promise<void> b;
    asio::post(pool, [&] {
      warm.task();
      a.set_value();
    });
    asio::post(pool, [&] {
      warm.task();
      b.set_value();
    });
    a.get_future().get();
    b.get_future().get();
  }
  ~AsioPeer() { pool.join(); }

  double w1(std::size_t n) {
    Countdown countdown(n);
    const auto start = Clock::now();
    for (std::size_t i = 0; i < n; ++i)
      asio::post(pool, [&countdown] { countdown.hit(); });
    countdown.wait();
    const double elapsed = seconds_since(start);
    countdown.check();
    return static_cast<double>(n) / elapsed;
  }
  double w2(std::size_t n) {
    long total = 0;
    const auto start = Clock::now();
    for (std::size_t i = 0; i < n; ++i) {
      std::promise<int> promise;
      auto future = promise.get_future();
      asio::post(pool, [&promise] { promise.set_value(1); });
      total += future.get();
    }
    const double elapsed = seconds_since(start);
    if (total != static_cast<long>(n)) throw std::runtime_error("W2 check failed");
    return elapsed / static_cast<double>(n) * 1e6;
  }
  double w3(std::size_t n) {
    std::int64_t total = 0;
    const auto start = Clock::now();
    std::vector<std::future<int>> futures;
    futures.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      std::promise<int> promise;
      futures.push_back(promise.get_future());
      asio::post(pool, [promise = std::move(promise), i]() mutable {
        promise.set_value(static_cast<int>(i));
      });
    }
    for (auto& future : futures)
      total += future.get();
    const double elapsed = seconds_since(start);
    SpindlePeer::check_sum(total, n);
    return static_cast<double>(n) / elapsed;
  }
  double w4(std::uint32_t limit, PrimeCheck& primes) {
    long total = 0;
    const auto start = Clock::now();
    std::vector<std::future<long>> futures;
    for (std::size_t c = 0; c < kChunks; ++c) {
      std::promise<long> promise;
      futures.push_back(promise.get_future());
      asio::post(pool, [promise = std::move(promise), limit, c]() mutable {
        const auto [first, last] = chunk(limit, c);
        promise.set_value(count_primes(first, last));
      });
    }
    for (auto& future : futures)
      total += future.get();
    const double elapsed = seconds_since(start);
    primes.check(total);
    return elapsed;
  }
};

// thread_pool::ThreadPool(2) (libthread-pool-dev): Submit returns a std::future.
struct ThreadPoolPeer {
  thread_pool::ThreadPool pool{kWorkers};
  ThreadPoolPeer() {
    WarmUp warm;
    auto a = pool.Submit([&warm] { warm.task(); });
    auto b = pool.Submit([&warm] { warm.task(); });
    a.get();
    b.get();
  }

  double w1(std::size_t n) {
    Countdown countdown(n);
    const auto start = Clock::now();
    for (std::size_t i = 0; i < n; ++i)
      pool.Submit([&countdown] { countdown.hit(); });
    countdown.wait();
    const double elapsed = seconds_since(start);
    countdown.check();
    return static_cast<double>(n) / elapsed;
  }
  double w2(std::size_t n) {
    long total = 0;
    const auto start = Clock::now();
    for (std::size_t i = 0; i < n; ++i)
      total += pool.Submit([] { return 1; }).get();
    const double elapsed = seconds_since(start);
    if (total != static_cast<long>(n)) throw std::runtime_error("W2 check failed");
    return elapsed / static_cast<double>(n) * 1e6;
  }
  double w3(std::size_t n) {
    std::int64_t total = 0;
    const auto start = Clock::now();
    std::vector<std::future<int>> futures;
    futures.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      futures.push_back(pool.Submit([i] { return static_cast<int>(i); }));
    }
    for (auto& future : futures)
      total += future.get();
    const double elapsed = seconds_since(start);
    SpindlePeer::check_sum(total, n);
    return static_cast<double>(n) / elapsed;
  }
  double w4(std::uint32_t limit, PrimeCheck& primes) {
    long total = 0;
    const auto start = Clock::now();
    std::vector<std::future<long>> futures;
    for (std::size_t c = 0; c < kChunks; ++c) {
      const auto [first, last] = chunk(limit, c);
      futures.push_back(pool.Submit(count_primes, first, last));
    }
    for (auto& future : futures)
      total += future.get();
    const double elapsed = seconds_since(start);
    primes.check(total);
    return elapsed;
  }
};

// std::async(std::launch::async): a new thread per call.
double async_w2(std::size_t n) {
  long total = 0;
  const auto start = Clock::now();
  for (std::size_t i = 0; i < n; ++i)
    total += std::async(std::launch::async, [] { return 1; }).get();
  const double elapsed = seconds_since(start);
  if (total != static_cast<long>(n)) throw std::runtime_error("W2 check failed");
  return elapsed / static_cast<double>(n) * 1e6;
}

double async_w4(std::uint32_t limit, PrimeCheck& primes) {
  long total = 0;
  const auto start = Clock::now();
  std::vector<std::future<long>> futures;
  for (std::size_t c = 0; c < kChunks; ++c) {
    const auto [first, last] = chunk(limit, c);
    futures.push_back(std::async(std::launch::async, count_primes, first, last));
  }
  for (auto& future : futures)
    total += future.get();
  const double elapsed = seconds_since(start);
  primes.check(total);
  return elapsed;
}

double sequential_w4(std::uint32_t limit, PrimeCheck& primes) {
  long total = 0;
  const auto start = Clock::now();
  for (std::size_t c = 0; c < kChunks; ++c) {
    const auto [first, last] = chunk(limit, c);
    total += count_primes(first, last);
  }
  const double elapsed = seconds_since(start);
  primes.check(total);
  return elapsed;
}

// ---- the Python peer -----------------------------------------------------------------------

std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char ch : text) {
    if (ch == '\'') {
      quoted += "'\\''";
    } else {
      quoted += ch;
    }
  }
  return quoted + "'";
}

// Runs `python script WORKLOAD n` and returns the key=value fields of its "result" line.
std::map<std::string, std::string> run_python(const std::string& python, const std::string& script,
                                              const std::string& workload, std::size_t n) {
  const std::string command =
      shell_quote(python) + " " + shell_quote(script) + " " + workload + " " + std::to_string(n);
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run: " + command);
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr)
    output += buffer;
  const int status = ::pclose(pipe);
  if (status != 0) {
    throw std::runtime_error("failed (status " + std::to_string(status) + "): " + command + "\n" +
                             output);
  }
  const auto line = output.find("result ");
  if (line == std::string::npos) throw std::runtime_error("unexpected output: " + output);
  std::istringstream fields(output.substr(line + 7, output.find('\n', line) - line - 7));
  std::map<std::string, std::string> result;
  for (std::string field; fields >> field;) {
    const auto equals = field.find('=');
    if (equals != std::string::npos) result[field.substr(0, equals)] = field.substr(equals + 1);
  }
  if (result.count("value") == 0 || result["workload"] != workload) {
    throw std::runtime_error("unexpected output: " + output);
  }
  return result;
}

// ---- how busy the rest of the machine was --------------------------------------------------

// CPU seconds used by every process (/proc/stat) and by this one and its waited-for children
// (the Python peer). The difference over a run is what other processes took.
struct CpuClock {
  double machine = 0;
  double own = 0;
};

CpuClock read_cpu_clock() {
  CpuClock clock;
  std::ifstream stat("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) {
    clock.machine =
        (user + nice + system + irq + softirq) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  const auto seconds = [](const rusage& usage) {
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  };
  rusage self{};
  rusage children{};
  ::getrusage(RUSAGE_SELF, &self);
  ::getrusage(RUSAGE_CHILDREN, &children);
  clock.own = seconds(self) + seconds(children);
  return clock;
}

// ---- the workloads and their tables --------------------------------------------------------

enum class Kind {
  rate,     // per second: higher is better
  micros,   // microseconds: lower is better
  seconds,  // W4's time: lower is better; speedup against the row "sequential"
  speedup,  // W4's Python row: its own speedup (its own sequential run, its own limit)
};

struct Row {
  std::string label;  // --peers, the round lines
  std::string name;   // the table
  Kind kind;
  std::function<double()> run;
  std::vector<double> values{};
  std::vector<double> cpu{};  // CPU seconds this process and its children used, per run
};

struct Workload {
  std::string id;
  std::string title;
  std::vector<Row> rows;  // rows[0]: spindle, the reference
  double others_cpu = 0;  // CPU seconds other processes used during this workload's runs
  double wall = 0;
};

const Row* find_row(const Workload& workload, const std::string& label) {
  for (const Row& row : workload.rows) {
    if (row.label == label && !row.values.empty()) return &row;
  }
  return nullptr;
}

std::string show(Kind kind, double value) {
  char text[64];
  switch (kind) {
    case Kind::rate:
      return with_commas(value);
    case Kind::micros:
      std::snprintf(text, sizeof text, "%.2f", value);
      return text;
    case Kind::seconds:
      std::snprintf(text, sizeof text, "%.1f", value * 1e3);
      return text;
    case Kind::speedup:
      std::snprintf(text, sizeof text, "%.2fx", value);
      return text;
  }
  return "";
}

// In the round lines: rates in millions.
std::string show_short(Kind kind, double value) {
  char text[64];
  switch (kind) {
    case Kind::rate:
      std::snprintf(text, sizeof text, "%.3fM", value / 1e6);
      return text;
    case Kind::micros:
      std::snprintf(text, sizeof text, "%.2fus", value);
      return text;
    case Kind::seconds:
      std::snprintf(text, sizeof text, "%.1fms", value * 1e3);
      return text;
    case Kind::speedup:
      std::snprintf(text, sizeof text, "%.2fx", value);
      return text;
  }
  return "";
}

// Speed of `row` relative to `reference` (above 1: the reference is faster).
double advantage(const Row& reference, const Row& row) {
  const double ours = median(reference.values);
  const double theirs = median(row.values);
  switch (row.kind) {
    case Kind::rate:
      return ours / theirs;
    case Kind::micros:
    case Kind::seconds:
      return theirs / ours;
    case Kind::speedup:
      return 0;  // set by the caller: speedups, not times, compare
  }
  return 0;
}

void print_table(const Workload& workload) {
  const Row& spindle = workload.rows.front();
  const Row* sequential = find_row(workload, "sequential");
  const bool speedups = workload.rows.front().kind == Kind::seconds;
  const char* unit = "";
  switch (workload.rows.front().kind) {
    case Kind::rate:
      unit = "per second";
      break;
    case Kind::micros:
      unit = "us per trip";
      break;
    case Kind::seconds:
    case Kind::speedup:
      unit = "ms";
      break;
  }
  std::printf("\n%s: %s\n", workload.id.c_str(), workload.title.c_str());
  std::printf("  %-52s %12s %22s %8s", "peer", unit, "min .. max", "CPU ms");
  if (speedups) std::printf(" %8s", "speedup");
  std::printf(" %15s\n", "spindle / peer");
  const double spindle_speedup = sequential != nullptr && !spindle.values.empty()
                                     ? median(sequential->values) / median(spindle.values)
                                     : 0;
  for (const Row& row : workload.rows) {
    if (row.values.empty()) continue;
    const auto [low, high] = std::minmax_element(row.values.begin(), row.values.end());
    std::printf("  %-52s %12s %10s .. %-9s %8.1f", row.name.c_str(),
                show(row.kind, median(row.values)).c_str(), show(row.kind, *low).c_str(),
                show(row.kind, *high).c_str(), median(row.cpu) * 1e3);
    double speedup = 0;
    if (row.kind == Kind::speedup) {
      speedup = median(row.values);
    } else if (row.kind == Kind::seconds && sequential != nullptr) {
      speedup = median(sequential->values) / median(row.values);
    }
    if (speedups) std::printf(" %7.2fx", speedup);
    if (&row == &spindle || spindle.values.empty() || row.label == "sequential") {
      std::printf("\n");
    } else if (row.kind == Kind::speedup) {
      std::printf(" %14.2fx\n", spindle_speedup / speedup);
    } else {
      std::printf(" %14.2fx\n", advantage(spindle, row));
    }
  }
  std::printf(
      "  CPU ms: CPU time used by this program (or the Python child) in one run, pool start\n"
      "  and stop included; median\n");
  if (workload.wall > 0) {
    const double cpus = std::max(1U, std::thread::hardware_concurrency());
    const double share = workload.others_cpu / (workload.wall * cpus);
    std::printf("  other processes used %.1f%% of the machine's CPU time during these runs%s\n",
                100 * share, share > 0.05 ? " (WARNING: not quiet; figures unreliable)" : "");
  }
}

struct Goal {
  std::string text;
  std::string figure;
  bool met;
};

// ---- MEM: the task object and its allocations ------------------------------------------------

struct AllocationCount {
  double heap_per_task = 0;        // global operator new, but for allocate_block's
  double blocks_per_task = 0;      // allocate_block
  double block_heap_per_task = 0;  // allocate_block's own calls to operator new
  std::vector<std::pair<std::size_t, std::uint64_t>> block_sizes;  // (up to N bytes, count)
};

template <class Work>
AllocationCount count_allocations(std::size_t n, Work work) {
  heap_calls.store(0);
  block_calls.store(0);
  block_heap_calls.store(0);
  for (auto& bucket : block_sizes)
    bucket.store(0);
  counting.store(true);
  work();
  counting.store(false);
  AllocationCount count;
  count.heap_per_task = static_cast<double>(heap_calls.load()) / static_cast<double>(n);
  count.blocks_per_task = static_cast<double>(block_calls.load()) / static_cast<double>(n);
  count.block_heap_per_task = static_cast<double>(block_heap_calls.load()) / static_cast<double>(n);
  for (std::size_t k = 0; k < kSizeBuckets; ++k) {
    if (block_sizes[k].load() != 0) count.block_sizes.emplace_back(k * 8, block_sizes[k].load());
  }
  return count;
}

std::string describe_blocks(const AllocationCount& count) {
  std::string text;
  for (const auto& [size, calls] : count.block_sizes) {
    if (!text.empty()) text += ", ";
    if (size >= (kSizeBuckets - 1) * 8) text += '>';
    text += std::to_string(size);
    text += " B x ";
    text += with_commas(static_cast<double>(calls));
  }
  return text.empty() ? "none" : text;
}

void run_memory(std::size_t n, const std::vector<std::string>& peers, std::vector<Goal>& goals) {
  const auto wanted = [&](const std::string& label) {
    return label == "spindle" || peers.empty() ||
           std::find(peers.begin(), peers.end(), label) != peers.end();
  };
  int anchor = 0;
  int* pointer = &anchor;
  auto small = [pointer] { return *pointer; };
  auto small_void = [pointer] { ++*pointer; };
  using spindle::futures::internal::TaskState;
  const std::size_t size_int = sizeof(TaskState<int, decltype(small)>);
  const std::size_t size_void = sizeof(TaskState<void, decltype(small_void)>);
  std::printf(
      "\nMEM: the task object, and allocations per task (%s tasks, after as many to warm "
      "the caches)\n",
      with_commas(static_cast<double>(n)).c_str());
  std::printf("  sizeof(TaskState<int, lambda capturing one pointer>)   %4zu bytes\n", size_int);
  std::printf("  sizeof(TaskState<void, lambda capturing one pointer>)  %4zu bytes\n", size_void);
  std::printf("  sizeof(spindle::detail::FutureCore)                    %4zu bytes\n",
              sizeof(spindle::detail::FutureCore));
  goals.push_back({"MEM task object <= 128 bytes",
                   std::to_string(std::max(size_int, size_void)) + " B",
                   std::max(size_int, size_void) <= 128});

  const auto fire_and_forget = [n](auto&& submit_one, auto&& wait) {
    Countdown countdown(n);
    for (std::size_t i = 0; i < n; ++i)
      submit_one(countdown);
    wait(countdown);
  };
  const auto print_row = [](const char* pattern, const AllocationCount* count, double heap) {
    if (count == nullptr) {
      std::printf("  %-52s %8s %8s %9.3f %8s  %s\n", pattern, "-", "-", heap, "-", "-");
    } else {
      std::printf("  %-52s %8.3f %8.3f %9.3f %8.3f  %s\n", pattern, count->blocks_per_task,
                  count->block_heap_per_task, count->heap_per_task,
                  count->blocks_per_task + count->heap_per_task, describe_blocks(*count).c_str());
    }
  };
  std::printf("  per task:%44s %8s %8s %9s %8s  %s\n", "", "blocks", "(fresh)", "other new",
              "total", "block sizes asked");

  if (wanted("spindle")) {
    spindle::futures::ThreadPoolExecutor executor({.max_workers = kWorkers});
    const auto submit = [&](Countdown& countdown) {
      executor.submit([&countdown] { countdown.hit(); });
    };
    const auto wait = [](Countdown& countdown) { countdown.wait(); };
    const auto round_trips = [&] {
      for (std::size_t i = 0; i < n; ++i)
        executor.submit([pointer] { return *pointer; }).result();
    };
    const auto collect = [&] {
      std::vector<spindle::futures::Future<int>> futures;
      futures.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        futures.push_back(executor.submit([i] { return static_cast<int>(i); }));
      }
      std::int64_t total = 0;
      for (const auto& future : spindle::futures::as_completed(futures))
        total += future.result();
      SpindlePeer::check_sum(total, n);
    };
    fire_and_forget(submit, wait);  // warm the block caches
    const AllocationCount w1 = count_allocations(n, [&] { fire_and_forget(submit, wait); });
    round_trips();
    const AllocationCount w2 = count_allocations(n, round_trips);
    collect();
    const AllocationCount w3 = count_allocations(n, collect);
    print_row("spindle submit, Future dropped (W1)", &w1, 0);
    print_row("spindle submit(...).result() (W2)", &w2, 0);
    print_row("spindle submit, Futures kept + as_completed (W3)", &w3, 0);
#ifdef SPINDLE_BENCH_COUNT_BLOCKS
    const double total = w1.blocks_per_task + w1.heap_per_task;
    char figure[64];
    std::snprintf(figure, sizeof figure, "%.3f", total);
    goals.push_back({"MEM allocations per task (W1: blocks + other new) == 1", figure,
                     total > 0.99 && total < 1.01});
#else
    std::printf("  (allocate_block is not wrapped in this build: its blocks are not counted)\n");
#endif
  }
  if (wanted("tbb")) {
    tbb::task_arena arena(static_cast<int>(kWorkers));
    const auto run = [&] {
      arena.execute([&] {
        tbb::task_group group;
        Countdown countdown(n);
        for (std::size_t i = 0; i < n; ++i)
          group.run([&countdown] { countdown.hit(); });
        group.wait();
      });
    };
    run();
    print_row("oneTBB task_group::run (W1; own allocator, unseen)", nullptr,
              count_allocations(n, run).heap_per_task);
  }
  if (wanted("asio")) {
    asio::thread_pool pool(kWorkers);
    const auto submit = [&](Countdown& countdown) {
      asio::post(pool, [&countdown] { countdown.hit(); });
    };
    const auto wait = [](Countdown& countdown) { countdown.wait(); };
    fire_and_forget(submit, wait);
    print_row("Asio post (W1)", nullptr,
              count_allocations(n, [&] { fire_and_forget(submit, wait); }).heap_per_task);
    pool.join();
  }
  if (wanted("threadpool")) {
    thread_pool::ThreadPool pool(kWorkers);
    const auto submit = [&](Countdown& countdown) {
      pool.Submit([&countdown] { countdown.hit(); });
    };
    const auto wait = [](Countdown& countdown) { countdown.wait(); };
    fire_and_forget(submit, wait);
    print_row("thread_pool Submit, std::future dropped (W1)", nullptr,
              count_allocations(n, [&] { fire_and_forget(submit, wait); }).heap_per_task);
  }
  std::printf(
      "  blocks: calls to spindle::detail::allocate_block, where tasks and futures live (fresh:\n"
      "  those its per-thread caches could not serve, taken from the heap); other new: calls to\n"
      "  global operator new for anything else; total: blocks + other new\n");
}

// ---- options -----------------------------------------------------------------------------

struct Options {
  bool quick = false;
  int rounds = 5;
  std::size_t w1_tasks = 1'000'000;
  std::size_t w2_trips = 100'000;
  std::size_t w2_async_trips = 10'000;
  std::size_t w3_tasks = 100'000;
  std::uint32_t w4_limit = 2'000'000;
  std::size_t mem_tasks = 100'000;
  std::size_t python_w1 = 100'000;
  std::size_t python_w2 = 20'000;
  std::size_t python_w3 = 100'000;
  std::size_t python_w4 = 500'000;
  bool python_w4_set = false;
  bool mem_tasks_set = false;
  bool no_python = false;
  std::string python = SPINDLE_BENCH_PYTHON;
  std::string script = SPINDLE_BENCH_PYTHON_SCRIPT;
  std::vector<std::string> only;   // workloads; empty: all
  std::vector<std::string> peers;  // row labels; empty: all
};

[[noreturn]] void usage(int status) {
  std::fprintf(status == 0 ? stdout : stderr,
               "usage: futures_side_by_side [--quick] [--rounds R] [--only W1,W2,W3,W4,MEM]\n"
               "                            [--peers LABEL,...] [--no-python] [--python PATH]\n"
               "                            [--script PATH] [--python-w4-limit L] [--mem-tasks N]\n"
               "peer labels: spindle, spindle-wait, sequential, tbb, tbb-enqueue, asio, "
               "threadpool,\n"
               "             async, python\n");
  std::exit(status);
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t begin = 0;
  for (;;) {
    const std::size_t comma = text.find(',', begin);
    parts.push_back(text.substr(begin, comma - begin));
    if (comma == std::string::npos) return parts;
    begin = comma + 1;
  }
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(2);
      return argv[++i];
    };
    if (arg == "--quick") {
      options.quick = true;
    } else if (arg == "--rounds") {
      options.rounds = std::stoi(value());
    } else if (arg == "--only") {
      options.only = split(value());
    } else if (arg == "--peers") {
      options.peers = split(value());
    } else if (arg == "--no-python") {
      options.no_python = true;
    } else if (arg == "--python") {
      options.python = value();
    } else if (arg == "--script") {
      options.script = value();
    } else if (arg == "--mem-tasks") {
      options.mem_tasks = std::stoul(value());
      options.mem_tasks_set = true;
    } else if (arg == "--python-w4-limit") {
      options.python_w4 = std::stoul(value());
      options.python_w4_set = true;
    } else if (arg == "--help" || arg == "-h") {
      usage(0);
    } else {
      usage(2);
    }
  }
  for (const std::string& id : options.only) {
    if (id != "W1" && id != "W2" && id != "W3" && id != "W4" && id != "MEM") usage(2);
  }
  if (options.quick) {
    options.rounds = std::min(options.rounds, 2);
    options.w1_tasks = 100'000;
    options.w2_trips = 10'000;
    options.w2_async_trips = 1'000;
    options.w3_tasks = 20'000;
    options.w4_limit = 300'000;
    if (!options.mem_tasks_set) options.mem_tasks = 20'000;
    options.python_w1 = 20'000;
    options.python_w2 = 2'000;
    options.python_w3 = 10'000;
    if (!options.python_w4_set) options.python_w4 = 100'000;
  }
  if (options.rounds < 1 || options.python_w4 < kChunks || options.mem_tasks < 1) usage(2);
  return options;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options options = parse(argc, argv);
  const auto selected = [&](const std::string& id) {
    return options.only.empty() ||
           std::find(options.only.begin(), options.only.end(), id) != options.only.end();
  };
  const auto count = [](std::size_t n) { return with_commas(static_cast<double>(n)); };
  std::string python_version = "3";
  const auto python = [&](const char* workload, std::size_t n) {
    auto result = run_python(options.python, options.script, workload, n);
    python_version = result["python"];
    return std::strtod(result["value"].c_str(), nullptr);
  };
  PrimeCheck primes;
  const std::uint32_t limit = options.w4_limit;

  std::vector<Workload> workloads;
  workloads.push_back({"W1",
                       count(options.w1_tasks) +
                           " tiny tasks (an atomic increment each) from one thread, then " +
                           "wait for all (Python: " + count(options.python_w1) + ")",
                       {
                           {"spindle", "spindle ThreadPoolExecutor, Futures dropped", Kind::rate,
                            [&] { return SpindlePeer().w1(options.w1_tasks); }},
                           {"spindle-wait", "spindle ThreadPoolExecutor, Futures kept + wait()",
                            Kind::rate, [&] { return SpindlePeer().w1_wait(options.w1_tasks); }},
                           {"tbb", "oneTBB task_group::run + wait()", Kind::rate,
                            [&] { return TbbPeer().w1(options.w1_tasks); }},
                           {"asio", "Asio thread_pool + post", Kind::rate,
                            [&] { return AsioPeer().w1(options.w1_tasks); }},
                           {"threadpool", "thread_pool::ThreadPool Submit, std::future dropped",
                            Kind::rate, [&] { return ThreadPoolPeer().w1(options.w1_tasks); }},
                           {"python", "Python ThreadPoolExecutor", Kind::rate,
                            [&] { return python("W1", options.python_w1); }},
                       }});
  workloads.push_back({"W2",
                       "submit one task and block on its result, " + count(options.w2_trips) +
                           " times in a row (std::async: " + count(options.w2_async_trips) +
                           ", Python: " + count(options.python_w2) + ")",
                       {
                           {"spindle", "spindle submit(...).result()", Kind::micros,
                            [&] { return SpindlePeer().w2(options.w2_trips); }},
                           {"tbb", "oneTBB task_group::run + wait() (may run it itself)",
                            Kind::micros, [&] { return TbbPeer().w2(options.w2_trips); }},
                           {"tbb-enqueue", "oneTBB task_arena::enqueue + std::promise",
                            Kind::micros, [&] { return TbbPeer().w2_enqueue(options.w2_trips); }},
                           {"asio", "Asio post + std::promise", Kind::micros,
                            [&] { return AsioPeer().w2(options.w2_trips); }},
                           {"threadpool", "thread_pool::ThreadPool Submit(...).get()", Kind::micros,
                            [&] { return ThreadPoolPeer().w2(options.w2_trips); }},
                           {"async", "std::async(launch::async).get() (a thread each)",
                            Kind::micros, [&] { return async_w2(options.w2_async_trips); }},
                           {"python", "Python submit(...).result()", Kind::micros,
                            [&] { return python("W2", options.python_w2); }},
                       }});
  workloads.push_back({"W3",
                       count(options.w3_tasks) +
                           " tasks returning ints, collected as they complete (Python: " +
                           count(options.python_w3) + ")",
                       {
                           {"spindle", "spindle submit + as_completed", Kind::rate,
                            [&] { return SpindlePeer().w3(options.w3_tasks); }},
                           {"tbb", "oneTBB task_group, results into slots (no futures)", Kind::rate,
                            [&] { return TbbPeer().w3(options.w3_tasks); }},
                           {"asio", "Asio post + std::promise, futures in order", Kind::rate,
                            [&] { return AsioPeer().w3(options.w3_tasks); }},
                           {"threadpool", "thread_pool::ThreadPool Submit, futures in order",
                            Kind::rate, [&] { return ThreadPoolPeer().w3(options.w3_tasks); }},
                           {"python", "Python submit + as_completed", Kind::rate,
                            [&] { return python("W3", options.python_w3); }},
                       }});
  workloads.push_back(
      {"W4",
       "primes below " + count(limit) + " by trial division in " + std::to_string(kChunks) +
           " chunks (Python: below " + count(options.python_w4) +
           ", speedup over its own sequential run)",
       {
           {"spindle", "spindle submit, results in order", Kind::seconds,
            [&] { return SpindlePeer().w4(limit, primes); }},
           {"sequential", "sequential (one thread, no pool)", Kind::seconds,
            [&] { return sequential_w4(limit, primes); }},
           {"tbb", "oneTBB task_group", Kind::seconds, [&] { return TbbPeer().w4(limit, primes); }},
           {"asio", "Asio post + std::promise", Kind::seconds,
            [&] { return AsioPeer().w4(limit, primes); }},
           {"threadpool", "thread_pool::ThreadPool Submit", Kind::seconds,
            [&] { return ThreadPoolPeer().w4(limit, primes); }},
           {"async", "std::async(launch::async) (64 threads)", Kind::seconds,
            [&] { return async_w4(limit, primes); }},
           {"python", "Python ThreadPoolExecutor (GIL)", Kind::speedup,
            [&] { return python("W4", options.python_w4); }},
       }});

  // Keep the selected workloads and peers; spindle, the reference, always stays.
  for (auto& workload : workloads) {
    if (!selected(workload.id)) workload.rows.clear();
    std::erase_if(workload.rows, [&](const Row& row) {
      if (row.label == "python" && options.no_python) return true;
      if (row.label == "spindle" || row.label == "sequential" || options.peers.empty())
        return false;
      return std::find(options.peers.begin(), options.peers.end(), row.label) ==
             options.peers.end();
    });
  }
  std::erase_if(workloads, [](const Workload& workload) { return workload.rows.empty(); });

  std::printf(
      "futures_side_by_side: %zu workers per pool; %u hardware threads, %zu CPU(s) in this "
      "process's affinity mask\n",
      kWorkers, std::thread::hardware_concurrency(), affinity_cpus());
  std::printf("%d rounds, peers interleaved (the order rotates each round); medians%s\n",
              options.rounds, options.quick ? "; --quick: small counts, not for the record" : "");
  std::printf("load average at start: %s\n", load_average().c_str());
  if (!workloads.empty()) std::printf("\n");

  for (int round = 0; round < options.rounds; ++round) {
    for (Workload& workload : workloads) {
      const std::size_t n = workload.rows.size();
      for (std::size_t k = 0; k < n; ++k) {
        Row& row = workload.rows[(k + static_cast<std::size_t>(round)) % n];
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let lingering threads sleep
        const CpuClock before = read_cpu_clock();
        const auto start = Clock::now();
        row.values.push_back(row.run());
        const double wall = seconds_since(start);
        const CpuClock after = read_cpu_clock();
        row.cpu.push_back(after.own - before.own);
        workload.wall += wall;
        workload.others_cpu +=
            std::max(0.0, (after.machine - before.machine) - (after.own - before.own));
      }
      std::printf("round %d %-3s", round + 1, workload.id.c_str());
      for (const Row& row : workload.rows) {
        std::printf("  %s %s", row.label.c_str(), show_short(row.kind, row.values.back()).c_str());
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }

  std::vector<Goal> goals;
  for (Workload& workload : workloads) {
    for (Row& row : workload.rows) {
      if (row.label == "python") row.name = "Python " + python_version + " " + row.name.substr(7);
    }
    print_table(workload);
    const Row& spindle = workload.rows.front();
    const Row* tbb = find_row(workload, "tbb");
    const Row* python_row = find_row(workload, "python");
    char figure[64];
    if (workload.id == "W1") {
      const double rate = median(spindle.values);
      std::snprintf(figure, sizeof figure, "%.2f M/s", rate / 1e6);
      goals.push_back({"W1 spindle >= 7 M tasks/s", figure, rate >= 7e6});
      if (tbb != nullptr) {
        const double ratio = advantage(spindle, *tbb);
        std::snprintf(figure, sizeof figure, "%.2fx", ratio);
        goals.push_back({"W1 spindle / oneTBB task_group >= 1.5x", figure, ratio >= 1.5});
      }
      if (python_row != nullptr) {
        const double ratio = advantage(spindle, *python_row);
        std::snprintf(figure, sizeof figure, "%.1fx", ratio);
        goals.push_back({"W1 spindle / Python >= 60x", figure, ratio >= 60});
      }
    } else if (workload.id == "W2") {
      const double micros = median(spindle.values);
      const bool pinned = affinity_cpus() == 1;
      std::snprintf(figure, sizeof figure, "%.2f us", micros);
      goals.push_back({pinned ? "W2 spindle round trip <= 2.1 us (pinned to one CPU)"
                              : "W2 spindle round trip <= 5 us (unpinned)",
                       figure, micros <= (pinned ? 2.1 : 5.0)});
    } else if (workload.id == "W3") {
      const double rate = median(spindle.values);
      std::snprintf(figure, sizeof figure, "%.2f M/s", rate / 1e6);
      goals.push_back({"W3 spindle >= 5 M results/s", figure, rate >= 5e6});
    } else if (workload.id == "W4") {
      if (const Row* sequential = find_row(workload, "sequential")) {
        const double speedup = median(sequential->values) / median(spindle.values);
        std::snprintf(figure, sizeof figure, "%.2fx", speedup);
        goals.push_back({"W4 spindle speedup over one thread >= 1.9x", figure, speedup >= 1.9});
      }
      if (python_row != nullptr) {
        std::snprintf(figure, sizeof figure, "%.2fx", median(python_row->values));
        std::printf("  Python's threads: %s over its sequential run (the GIL; expected ~0.95x)\n",
                    figure);
      }
      if (primes.expected()) {
        std::printf("  %s primes below %s in every run\n",
                    count(static_cast<std::size_t>(*primes.expected())).c_str(),
                    count(limit).c_str());
      }
    }
  }
  if (selected("MEM")) run_memory(options.mem_tasks, options.peers, goals);

  std::printf("\nload average at end: %s\n", load_average().c_str());
  std::printf("\nGoals\n");
  for (const Goal& goal : goals) {
    std::printf("  %-54s %12s  %s\n", goal.text.c_str(), goal.figure.c_str(),
                goal.met ? "met" : "NOT met");
  }
  return 0;
} catch (const std::exception& error) {
  std::fprintf(stderr, "futures_side_by_side: %s\n", error.what());
  return 1;
}
