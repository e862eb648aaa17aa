// Cross-process queue throughput, side by side in one run with Python's multiprocessing.Queue
// (bench/python/mp_queue_stream.py, run as a child process):
//   - small: a child process puts N ints, then a sentinel; the parent gets until the sentinel,
//   - large: a child process puts M messages of 1 MiB; the parent gets them.
// Time runs from before the child is forked until the parent has the last item and has reaped
// the child. spindle runs R rounds of each (the median is shown), Python one run per round of
// its own; the same item counts. Also shown: one uncontended Lock acquire + release.
//
//   build/rel/bench/multiprocessing_shared_bench [--items N] [--messages M] [--rounds R]
//                                                [--buffer-bytes B] [--python PATH]
//                                                [--script PATH] [--no-python]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "spindle/detail/multiprocessing_shared.hpp"

#include "side_by_side.hpp"

#ifndef SPINDLE_BENCH_PYTHON
#define SPINDLE_BENCH_PYTHON "/usr/bin/python3"
#endif
#ifndef SPINDLE_BENCH_MP_SCRIPT
#define SPINDLE_BENCH_MP_SCRIPT "bench/python/mp_queue_stream.py"
#endif

namespace mp = spindle::multiprocessing;
using Clock = std::chrono::steady_clock;

namespace {

using spindle_bench::load_average;
using spindle_bench::median;

constexpr std::size_t kMiB = 1 << 20;

template <class Body>
pid_t fork_child(Body body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::_exit(0);
  }
  return pid;
}

void reap(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("child failed");
}

double small_items_per_second(std::size_t n, std::size_t buffer_bytes) {
  mp::Queue<long> queue(0, {.buffer_bytes = buffer_bytes});
  const auto start = Clock::now();
  const pid_t child = fork_child([&] {
    for (std::size_t i = 0; i < n; ++i)
      queue.put(static_cast<long>(i));
    queue.put(-1);
  });
  long sum = 0;
  std::size_t count = 0;
  for (;;) {
    const long item = queue.get();
    if (item < 0) break;
    sum += item;
    ++count;
  }
  reap(child);
  const std::chrono::duration<double> elapsed = Clock::now() - start;
  const auto items = static_cast<long>(n);
  if (count != n || sum != items * (items - 1) / 2) throw std::runtime_error("small stream check");
  return static_cast<double>(n) / elapsed.count();
}

double large_mib_per_second(std::size_t m, std::size_t buffer_bytes) {
  mp::Queue<std::string> queue(0, {.buffer_bytes = buffer_bytes});
  const auto start = Clock::now();
  const pid_t child = fork_child([&] {
    const std::string payload(kMiB, 'x');
    for (std::size_t i = 0; i < m; ++i)
      queue.put(payload);
  });
  for (std::size_t i = 0; i < m; ++i) {
    if (queue.get().size() != kMiB) throw std::runtime_error("large stream check");
  }
  reap(child);
  const std::chrono::duration<double> elapsed = Clock::now() - start;
  return static_cast<double>(m) / elapsed.count();
}

double lock_nanoseconds() {
  mp::Lock lock;
  constexpr int kIterations = 2'000'000;
  const auto start = Clock::now();
  for (int i = 0; i < kIterations; ++i) {
    lock.acquire();
    lock.release();
  }
  const std::chrono::duration<double, std::nano> elapsed = Clock::now() - start;
  return elapsed.count() / kIterations;
}

struct PythonResult {
  double small = 0;
  double large = 0;
  std::string version;
};

double field(const std::string& output, const std::string& name) {
  const auto at = output.find(name + "=");
  if (at == std::string::npos) throw std::runtime_error("unexpected Python output: " + output);
  return std::strtod(output.c_str() + at + name.size() + 1, nullptr);
}

PythonResult run_python(const std::string& python, const std::string& script, std::size_t n,
                        std::size_t m) {
  const std::string command =
      "'" + python + "' '" + script + "' " + std::to_string(n) + " " + std::to_string(m);
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run: " + command);
  std::string output;
  char buffer[256];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr)
    output += buffer;
  if (::pclose(pipe) != 0) throw std::runtime_error("failed: " + command + "\n" + output);
  PythonResult result{field(output, "small_items_per_second"),
                      field(output, "large_mib_per_second"), ""};
  const auto version = output.find("python=");
  if (version != std::string::npos) {
    result.version = output.substr(version + 7);
    while (!result.version.empty() && std::isspace(result.version.back()))
      result.version.pop_back();
  }
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t items = 1'000'000;
  std::size_t messages = 500;
  int rounds = 5;
  std::size_t buffer_bytes = mp::QueueOptions{}.buffer_bytes;
  std::string python = SPINDLE_BENCH_PYTHON;
  std::string script = SPINDLE_BENCH_MP_SCRIPT;
  bool with_python = true;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto next = [&] {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return std::string(argv[++i]);
    };
    if (arg == "--items") {
      items = std::stoul(next());
    } else if (arg == "--messages") {
      messages = std::stoul(next());
    } else if (arg == "--buffer-bytes") {
      buffer_bytes = std::stoul(next());
    } else if (arg == "--rounds") {
      rounds = std::stoi(next());
    } else if (arg == "--python") {
      python = next();
    } else if (arg == "--script") {
      script = next();
    } else if (arg == "--no-python") {
      with_python = false;
    } else {
      std::fprintf(stderr, "unknown option %s\n", arg.c_str());
      return 2;
    }
  }

  std::vector<double> small, large, py_small, py_large;
  std::string version;
  for (int round = 0; round < rounds; ++round) {
    small.push_back(small_items_per_second(items, buffer_bytes));
    large.push_back(large_mib_per_second(messages, buffer_bytes));
    if (with_python) {
      const PythonResult result = run_python(python, script, items, messages);
      py_small.push_back(result.small);
      py_large.push_back(result.large);
      version = result.version;
    }
  }
  std::printf(
      "multiprocessing queue, child -> parent, %zu-byte ring, median of %d rounds (load "
      "average %s)\n",
      buffer_bytes, rounds, load_average().c_str());
  std::printf("%-34s %16s %16s %8s\n", "stream", "spindle", "Python", "ratio");
  const auto row = [&](const char* name, const char* unit, double ours, std::vector<double>& py) {
    if (py.empty()) {
      std::printf("%-34s %12.0f %s %16s %8s\n", name, ours, unit, "-", "-");
    } else {
      const double theirs = median(py);
      std::printf("%-34s %12.0f %s %12.0f %s %7.1fx\n", name, ours, unit, theirs, unit,
                  ours / theirs);
    }
  };
  row(("small: " + std::to_string(items) + " longs").c_str(), "/s  ", median(small), py_small);
  row(("large: " + std::to_string(messages) + " x 1 MiB").c_str(), "MiB/s", median(large),
      py_large);
  std::printf("uncontended Lock acquire + release: %.1f ns\n", lock_nanoseconds());
  if (with_python) std::printf("Python %s (multiprocessing.Queue, fork)\n", version.c_str());
  return 0;
}
