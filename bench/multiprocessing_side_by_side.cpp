// spindle::multiprocessing beside Python's multiprocessing / ProcessPoolExecutor, two worker
// processes each, in one run (Python peer: bench/python/multiprocessing_workloads.py):
//   tasks      10,000 tiny tasks on ProcessPoolExecutor(2), collected with as_completed
//   roundtrip  submit(f).result() in a loop: microseconds per round trip
//   map        Pool(2).map of a small function over 1,000,000 ints (automatic chunks)
//   primes     primes below L by trial division in 64 chunks: ProcessPoolExecutor(2) speedup
//              over the same chunks run one after another; also, as the machine's ceiling,
//              the speedup of two plain std::threads taking the same chunks in turn (peer
//              "threads"; its ratio is spindle's share of it)
//   startup    Process.start() until the child's first message arrives (spawn; Python: its
//              default start method and spawn)
//   pipe       a 16-byte message to a child and back through Pipe(): microseconds
//   bulk       1 MiB messages to a child through Pipe(): MiB/s
// Every figure is the median of --rounds runs (default 3); "ratio" is how many times better
// spindle is (higher tasks/s or MiB/s, lower time).
//
//   build/release/bench/multiprocessing_side_by_side [--rounds R] [--only a,b] [--no-python]
//       [--python PATH] [--script PATH]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "spindle/multiprocessing.hpp"

#include "side_by_side.hpp"

#ifndef SPINDLE_BENCH_PYTHON
#define SPINDLE_BENCH_PYTHON "/usr/bin/python3"
#endif
#ifndef SPINDLE_BENCH_PYTHON_SCRIPT
#define SPINDLE_BENCH_PYTHON_SCRIPT "bench/python/multiprocessing_workloads.py"
#endif

namespace mp = spindle::multiprocessing;
using Clock = std::chrono::steady_clock;

namespace {

using spindle_bench::median;

constexpr int workers = 2;
constexpr int chunks = 64;

int tiny(int x) {
  return x + 1;
}

int count_primes(int low, int high) {
  int count = 0;
  for (int n = std::max(low, 2); n < high; ++n) {
    if (n % 2 == 0) {
      count += n == 2;
      continue;
    }
    bool prime = true;
    for (int d = 3; d * d <= n; d += 2) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    count += prime;
  }
  return count;
}

// The primes below `limit`, counted chunk after chunk in this thread, and how long it took.
std::pair<long, double> primes_one_after_another(int limit) {
  const int step = (limit + chunks - 1) / chunks;
  const auto start = Clock::now();
  long count = 0;
  for (int low = 0; low < limit; low += step)
    count += count_primes(low, std::min(low + step, limit));
  return {count, std::chrono::duration<double>(Clock::now() - start).count()};
}

void hello(mp::Connection<std::string> connection) {
  connection.send("up");
}

void echo(mp::Connection<std::string> connection) {
  for (;;) {
    std::string message = connection.recv();
    if (message.empty()) return;
    connection.send(message);
  }
}

void sink(mp::Connection<std::string> connection, int count) {
  for (int i = 0; i < count; ++i)
    connection.recv();
  connection.send("done");
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void warm(mp::ProcessPoolExecutor& pool) {
  std::vector<spindle::futures::Future<int>> futures;
  for (int i = 0; i < workers * 4; ++i)
    futures.push_back(pool.submit(tiny, i));
  for (auto& future : futures)
    future.result();
}

struct Figure {
  double value;
  std::string unit;
};

Figure run_spindle(const std::string& workload, long n) {
  if (workload == "tasks") {
    mp::ProcessPoolExecutor pool({.max_workers = workers});
    warm(pool);
    const auto start = Clock::now();
    std::vector<spindle::futures::Future<int>> futures;
    futures.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i)
      futures.push_back(pool.submit(tiny, i));
    long long total = 0;
    for (auto future : spindle::futures::as_completed(futures))
      total += future.result();
    const double seconds = seconds_since(start);
    if (total != n * (n + 1) / 2) std::fprintf(stderr, "tasks: wrong total\n");
    return {static_cast<double>(n) / seconds, "tasks/s"};
  }
  if (workload == "roundtrip") {
    mp::ProcessPoolExecutor pool({.max_workers = workers});
    warm(pool);
    const auto start = Clock::now();
    for (int i = 0; i < n; ++i)
      pool.submit(tiny, i).result();
    return {seconds_since(start) / static_cast<double>(n) * 1e6, "us"};
  }
  if (workload == "map") {
    mp::Pool pool({.processes = workers});
    pool.map(tiny, std::vector<int>(workers * 4));
    std::vector<int> inputs(static_cast<std::size_t>(n));
    std::iota(inputs.begin(), inputs.end(), 0);
    const auto start = Clock::now();
    const std::vector<int> results = pool.map(tiny, inputs);
    const double seconds = seconds_since(start);
    if (results.size() != inputs.size() || results.back() != n)
      std::fprintf(stderr, "map: wrong\n");
    return {seconds, "s"};
  }
  if (workload == "primes") {
    const int limit = static_cast<int>(n);
    const int step = (limit + chunks - 1) / chunks;
    const auto [sequential, sequential_seconds] = primes_one_after_another(limit);
    mp::ProcessPoolExecutor pool({.max_workers = workers});
    warm(pool);
    const auto start = Clock::now();
    std::vector<spindle::futures::Future<int>> futures;
    for (int low = 0; low < limit; low += step) {
      futures.push_back(pool.submit(count_primes, low, std::min(low + step, limit)));
    }
    long parallel = 0;
    for (auto& future : futures)
      parallel += future.result();
    const double seconds = seconds_since(start);
    if (parallel != sequential) std::fprintf(stderr, "primes: wrong count\n");
    return {sequential_seconds / seconds, "x"};
  }
  if (workload == "startup") {
    double total = 0;
    for (int i = 0; i < n; ++i) {
      auto [mine, theirs] = mp::Pipe<std::string>();
      mp::Process process(hello, std::move(theirs));
      const auto start = Clock::now();
      process.start();
      mine.recv();
      total += seconds_since(start);
      process.join();
    }
    return {total / static_cast<double>(n) * 1e3, "ms"};
  }
  if (workload == "pipe") {
    auto [mine, theirs] = mp::Pipe<std::string>();
    mp::Process process(echo, std::move(theirs));
    process.start();
    const std::string message(16, 'x');
    mine.send(message);
    mine.recv();
    const auto start = Clock::now();
    for (int i = 0; i < n; ++i) {
      mine.send(message);
      mine.recv();
    }
    const double seconds = seconds_since(start);
    mine.send("");
    process.join();
    return {seconds / static_cast<double>(n) * 1e6, "us"};
  }
  if (workload == "bulk") {
    auto [mine, theirs] = mp::Pipe<std::string>();
    mp::Process process(sink, std::move(theirs), static_cast<int>(n));
    process.start();
    const std::string message(1 << 20, 'x');
    const auto start = Clock::now();
    for (int i = 0; i < n; ++i)
      mine.send(message);
    mine.recv();
    const double seconds = seconds_since(start);
    process.join();
    return {static_cast<double>(n) / seconds, "MiB/s"};
  }
  return {0, "?"};
}

// The primes workload on two plain threads, each taking the next chunk in turn: the
// speedup over the chunks run one after another. No pool does better on this machine.
double primes_on_threads(int limit) {
  const int step = (limit + chunks - 1) / chunks;
  const auto [sequential, sequential_seconds] = primes_one_after_another(limit);
  std::atomic<int> next_chunk{0};
  std::atomic<long> parallel{0};
  const auto work = [&] {
    for (int low = next_chunk++ * step; low < limit; low = next_chunk++ * step)
      parallel += count_primes(low, std::min(low + step, limit));
  };
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < workers; ++i)
    threads.emplace_back(work);
  for (auto& thread : threads)
    thread.join();
  const double seconds = seconds_since(start);
  if (parallel != sequential) std::fprintf(stderr, "primes on threads: wrong count\n");
  return sequential_seconds / seconds;
}

std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text)
    quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::optional<Figure> run_python(const std::string& python, const std::string& script,
                                 const std::string& workload, long n, const std::string& method) {
  const std::string command = shell_quote(python) + " " + shell_quote(script) + " " + workload +
                              " " + std::to_string(n) + (method.empty() ? "" : " " + method);
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  char line[512];
  std::optional<Figure> figure;
  while (std::fgets(line, sizeof line, pipe) != nullptr) {
    std::istringstream fields(line);
    std::string word;
    Figure found{0, ""};
    bool is_result = false;
    while (fields >> word) {
      if (word == "result") is_result = true;
      if (word.rfind("value=", 0) == 0) found.value = std::stod(word.substr(6));
      if (word.rfind("unit=", 0) == 0) found.unit = word.substr(5);
    }
    if (is_result) figure = found;
  }
  ::pclose(pipe);
  return figure;
}

bool higher_is_better(const std::string& unit) {
  return unit == "tasks/s" || unit == "MiB/s" || unit == "x";
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 3;
  bool python_peer = true;
  std::string python = SPINDLE_BENCH_PYTHON;
  std::string script = SPINDLE_BENCH_PYTHON_SCRIPT;
  std::vector<std::string> only;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--rounds") {
      rounds = std::max(1, std::stoi(value()));
    } else if (arg == "--no-python") {
      python_peer = false;
    } else if (arg == "--python") {
      python = value();
    } else if (arg == "--script") {
      script = value();
    } else if (arg == "--only") {
      std::stringstream list(value());
      for (std::string item; std::getline(list, item, ',');)
        only.push_back(item);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--rounds R] [--only tasks,roundtrip,map,primes,startup,pipe,bulk] "
                   "[--no-python] [--python PATH] [--script PATH]\n",
                   argv[0]);
      return 2;
    }
  }
  struct Workload {
    std::string name;
    long n_spindle;
    long n_python;
    std::string goal;
  };
  const std::vector<Workload> workloads = {
      {"tasks", 10'000, 10'000, "goal: ratio >= 20"},
      {"roundtrip", 20'000, 2'000, "goal: spindle <= 30 us"},
      {"map", 1'000'000, 1'000'000, "goal: ratio >= 20"},
      {"primes", 3'000'000, 3'000'000, "goal: spindle >= 1.9x"},
      {"startup", 20, 10, ""},
      {"pipe", 20'000, 20'000, ""},
      {"bulk", 200, 200, ""},
  };
  std::printf("spindle::multiprocessing vs Python %s, %d worker processes, %d round(s), %zu CPUs\n",
              python.c_str(), workers, rounds, mp::cpu_count());
  std::printf("%-10s %-16s %14s %10s %8s  %s\n", "workload", "peer", "figure", "unit", "ratio", "");
  for (const auto& workload : workloads) {
    if (!only.empty() && std::find(only.begin(), only.end(), workload.name) == only.end()) continue;
    std::vector<double> ours;
    std::string unit;
    for (int r = 0; r < rounds; ++r) {
      const Figure figure = run_spindle(workload.name, workload.n_spindle);
      ours.push_back(figure.value);
      unit = figure.unit;
    }
    const double our_median = median(ours);
    std::printf("%-10s %-16s %14.4g %10s %8s  %s\n", workload.name.c_str(), "spindle", our_median,
                unit.c_str(), "", workload.goal.c_str());
    if (workload.name == "primes") {
      std::vector<double> ceiling;
      for (int r = 0; r < rounds; ++r)
        ceiling.push_back(primes_on_threads(static_cast<int>(workload.n_spindle)));
      std::printf("%-10s %-16s %14.4g %10s %7.2fx\n", "primes", "threads", median(ceiling), "x",
                  our_median / median(ceiling));
    }
    if (!python_peer) continue;
    std::vector<std::string> methods{""};
    if (workload.name == "startup") methods.push_back("spawn");
    for (const auto& method : methods) {
      std::vector<double> theirs;
      for (int r = 0; r < rounds; ++r) {
        if (auto figure = run_python(python, script, workload.name, workload.n_python, method)) {
          theirs.push_back(figure->value);
        }
      }
      if (theirs.empty()) {
        std::printf("%-10s %-16s %14s\n", workload.name.c_str(), "python", "failed");
        continue;
      }
      const double their_median = median(theirs);
      const double ratio =
          higher_is_better(unit) ? our_median / their_median : their_median / our_median;
      const std::string label = method.empty() ? "python" : "python-" + method;
      std::printf("%-10s %-16s %14.4g %10s %7.1fx\n", workload.name.c_str(), label.c_str(),
                  their_median, unit.c_str(), ratio);
    }
    std::fflush(stdout);
  }
  return 0;
}
