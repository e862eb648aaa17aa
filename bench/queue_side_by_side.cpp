// One stream of ints, passed in one run through:
//   - a plain C++ baseline queue: std::mutex + std::condition_variable + std::deque, put does
//     lock / push / unlock / notify_one, get waits on the condition variable,
//   - spindle::queue::Queue<int> (maxsize 0),
//   - Python's queue.Queue (bench/python/queue_stream.py, run as a child process),
// and, bounded, through spindle::queue::Queue<int>(maxsize) and the baseline with a second
// condition variable for "not full".
//
// Workload, the same for every peer: 2 producer threads put N items in all (N/2 each, then
// one sentinel each); 2 consumer threads get until they see a sentinel. Time runs from before
// the threads start until the last one is joined; every item is checked to arrive once. The
// peers run interleaved, 9 rounds by default, each round in a rotated order; the tables show
// the median of the rounds. The CPU time other processes took meanwhile is printed too.
//
//   build/release/bench/queue_side_by_side [--items N] [--python-items N] [--rounds R]
//                                          [--maxsize M] [--python PATH] [--script PATH]
//                                          [--only LABEL,...] [--no-python]
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#include "spindle/queue.hpp"

#include "side_by_side.hpp"

#ifndef SPINDLE_BENCH_PYTHON
#define SPINDLE_BENCH_PYTHON "/usr/bin/python3"
#endif
#ifndef SPINDLE_BENCH_PYTHON_SCRIPT
#define SPINDLE_BENCH_PYTHON_SCRIPT "bench/python/queue_stream.py"
#endif

namespace {

using spindle_bench::median;
using spindle_bench::with_commas;

constexpr int kProducers = 2;
constexpr int kConsumers = 2;
constexpr int kSentinel = -1;

// ---- the baseline queues --------------------------------------------------------------

// Unbounded: put locks, pushes, unlocks and notifies one getter, every time.
class BaselineQueue {
 public:
  void put(int item) {
    {
      std::lock_guard guard(mutex_);
      items_.push_back(item);
    }
    not_empty_.notify_one();
  }
  int get() {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [&] { return !items_.empty(); });
    const int item = items_.front();
    items_.pop_front();
    return item;
  }

 private:
  std::mutex mutex_;
  std::condition_variable not_empty_;
  std::deque<int> items_;
};

// Bounded: the same, with a second condition variable for "not full".
class BaselineBoundedQueue {
 public:
  explicit BaselineBoundedQueue(std::size_t maxsize) : maxsize_(maxsize) {}
  void put(int item) {
    {
      std::unique_lock lock(mutex_);
      not_full_.wait(lock, [&] { return items_.size() < maxsize_; });
      items_.push_back(item);
    }
    not_empty_.notify_one();
  }
  int get() {
    int item;
    {
      std::unique_lock lock(mutex_);
      not_empty_.wait(lock, [&] { return !items_.empty(); });
      item = items_.front();
      items_.pop_front();
    }
    not_full_.notify_one();
    return item;
  }

 private:
  const std::size_t maxsize_;
  std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<int> items_;
};

// ---- the stream ------------------------------------------------------------------------

// Passes items 0 .. n-1 through `q` with kProducers producers and kConsumers consumers;
// returns items per second. Checks that every item arrived exactly once (count and sum).
template <class Q>
double run_stream(Q& q, std::size_t n) {
  std::vector<std::int64_t> sums(kConsumers, 0);
  std::vector<std::size_t> counts(kConsumers, 0);
  std::vector<std::thread> threads;
  threads.reserve(kProducers + kConsumers);

  const auto start = std::chrono::steady_clock::now();
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&q, &sums, &counts, c] {
      std::int64_t sum = 0;
      std::size_t count = 0;
      for (;;) {
        const int item = q.get();
        if (item == kSentinel) break;
        sum += item;
        ++count;
      }
      sums[c] = sum;
      counts[c] = count;
    });
  }
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&q, n, p] {
      const std::size_t first = n * p / kProducers;
      const std::size_t last = n * (p + 1) / kProducers;
      for (std::size_t i = first; i < last; ++i)
        q.put(static_cast<int>(i));
      q.put(kSentinel);
    });
  }
  for (auto& thread : threads)
    thread.join();
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;

  std::int64_t sum = 0;
  std::size_t count = 0;
  for (int c = 0; c < kConsumers; ++c) {
    sum += sums[c];
    count += counts[c];
  }
  const auto items = static_cast<std::int64_t>(n);
  if (count != n || sum != items * (items - 1) / 2) {
    throw std::runtime_error("stream check failed: items lost or duplicated");
  }
  return static_cast<double>(n) / elapsed.count();
}

// ---- the Python peer -------------------------------------------------------------------

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

struct PythonResult {
  double items_per_second = 0;
  std::string version;
};

// Runs `python script n` and reads "items_per_second=X python=V" from its stdout.
PythonResult run_python(const std::string& python, const std::string& script, std::size_t n) {
  const std::string command =
      shell_quote(python) + " " + shell_quote(script) + " " + std::to_string(n);
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run: " + command);
  std::string output;
  char buffer[256];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr)
    output += buffer;
  const int status = ::pclose(pipe);
  if (status != 0)
    throw std::runtime_error("failed (status " + std::to_string(status) + "): " + command + "\n" +
                             output);
  PythonResult result;
  const auto rate = output.find("items_per_second=");
  if (rate == std::string::npos) throw std::runtime_error("unexpected output: " + output);
  result.items_per_second =
      std::strtod(output.c_str() + rate + std::strlen("items_per_second="), nullptr);
  const auto version = output.find("python=");
  if (version != std::string::npos) {
    const auto begin = version + std::strlen("python=");
    result.version = output.substr(begin, output.find_first_of(" \n", begin) - begin);
  }
  return result;
}

// ---- reporting -------------------------------------------------------------------------

// ---- how busy the rest of the machine was -------------------------------------------

// CPU seconds used by every process (from /proc/stat) and by this one and its children (the
// Python peer). Their difference over the run is what other processes took: a figure taken
// while something else ran is not worth much on a two-core machine.
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

struct Peer {
  std::string label;            // short name: the round lines, --only
  std::string name;             // the table's name
  std::function<double()> run;  // one measurement: items per second
  std::vector<double> rates;
};

bool has(const std::vector<const Peer*>& peers, const Peer& peer) {
  return std::find(peers.begin(), peers.end(), &peer) != peers.end();
}

// The table of `peers` (those that ran), each compared with `reference`.
void print_table(const char* title, const std::vector<const Peer*>& peers, const Peer& reference) {
  std::printf("\n%s\n", title);
  std::printf("  %-40s %14s %18s %16s\n", "peer", "items/s", "min .. max (M/s)", "spindle / peer");
  for (const Peer* peer : peers) {
    const double rate = median(peer->rates);
    const auto [low, high] = std::minmax_element(peer->rates.begin(), peer->rates.end());
    std::printf("  %-40s %14s %8.2f .. %6.2f", peer->name.c_str(), with_commas(rate).c_str(),
                *low / 1e6, *high / 1e6);
    if (reference.rates.empty()) {
      std::printf("\n");
    } else {
      std::printf(" %15.2fx\n", median(reference.rates) / rate);
    }
  }
}

// numerator / denominator: the ratio of the medians (what the goal is judged on) and the
// median and range of the per-round ratios (each round runs both peers back to back).
void print_ratio(const char* label, const Peer& numerator, const Peer& denominator,
                 std::optional<double> goal) {
  std::vector<double> per_round;
  for (std::size_t r = 0; r < numerator.rates.size() && r < denominator.rates.size(); ++r) {
    per_round.push_back(numerator.rates[r] / denominator.rates[r]);
  }
  const double ratio = median(numerator.rates) / median(denominator.rates);
  const auto [low, high] = std::minmax_element(per_round.begin(), per_round.end());
  std::printf("  %-38s %9.2fx %9.2fx  (%5.2f .. %5.2f)   ", label, ratio, median(per_round), *low,
              *high);
  if (goal) {
    std::printf(">= %gx: %s\n", *goal, ratio >= *goal ? "met" : "NOT met");
  } else {
    std::printf("-\n");
  }
}

struct Options {
  std::size_t items = 2'000'000;
  std::size_t python_items = 200'000;
  int rounds = 9;
  std::size_t maxsize = 64;
  std::string python = SPINDLE_BENCH_PYTHON;
  std::string script = SPINDLE_BENCH_PYTHON_SCRIPT;
  std::vector<std::string> only;  // labels of the peers to run; empty: all
};

[[noreturn]] void usage(int status) {
  std::fprintf(status == 0 ? stdout : stderr,
               "usage: queue_side_by_side [--items N] [--python-items N] [--rounds R]\n"
               "                          [--maxsize M] [--python PATH] [--script PATH]\n"
               "                          [--only LABEL[,LABEL...]] [--no-python]\n"
               "labels: baseline, spindle, python, baseline-bounded, spindle-bounded\n");
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
    if (arg == "--items") {
      options.items = std::stoul(value());
    } else if (arg == "--python-items") {
      options.python_items = std::stoul(value());
    } else if (arg == "--rounds") {
      options.rounds = std::stoi(value());
    } else if (arg == "--maxsize") {
      options.maxsize = std::stoul(value());
    } else if (arg == "--python") {
      options.python = value();
    } else if (arg == "--script") {
      options.script = value();
    } else if (arg == "--only") {
      options.only = split(value());
    } else if (arg == "--no-python") {
      options.only = {"baseline", "spindle", "baseline-bounded", "spindle-bounded"};
    } else if (arg == "--help" || arg == "-h") {
      usage(0);
    } else {
      usage(2);
    }
  }
  if (options.items < 2 || options.python_items < 2 || options.rounds < 1 || options.maxsize < 1 ||
      options.items > 0x7fffffffU) {
    usage(2);
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options options = parse(argc, argv);
  const std::string bound = std::to_string(options.maxsize);
  std::string python_version = "3";

  Peer baseline{"baseline",
                "C++ baseline (mutex + cv + deque)",
                [&] {
                  BaselineQueue q;
                  return run_stream(q, options.items);
                },
                {}};
  Peer spindle{"spindle",
               "spindle::queue::Queue<int>",
               [&] {
                 spindle::queue::Queue<int> q;
                 return run_stream(q, options.items);
               },
               {}};
  Peer python{"python",
              "Python queue.Queue",
              [&] {
                const PythonResult result =
                    run_python(options.python, options.script, options.python_items);
                python_version = result.version;
                return result.items_per_second;
              },
              {}};
  Peer baseline_bounded{"baseline-bounded",
                        "C++ baseline bounded (2 cvs), maxsize " + bound,
                        [&] {
                          BaselineBoundedQueue q(options.maxsize);
                          return run_stream(q, options.items);
                        },
                        {}};
  Peer spindle_bounded{"spindle-bounded",
                       "spindle::queue::Queue<int>(" + bound + ")",
                       [&] {
                         spindle::queue::Queue<int> q(options.maxsize);
                         return run_stream(q, options.items);
                       },
                       {}};

  std::vector<Peer*> order;
  for (Peer* peer : {&baseline, &spindle, &python, &baseline_bounded, &spindle_bounded}) {
    if (options.only.empty() ||
        std::find(options.only.begin(), options.only.end(), peer->label) != options.only.end()) {
      order.push_back(peer);
    }
  }
  if (order.empty()) usage(2);

  std::printf(
      "queue_side_by_side: %d producers, %d consumers, int items, one sentinel per "
      "consumer; %u hardware threads\n",
      kProducers, kConsumers, std::thread::hardware_concurrency());
  std::printf("%zu items per C++ run, %zu per Python run; %d rounds, interleaved; medians\n\n",
              options.items, options.python_items, options.rounds);
  std::printf("%-9s", "M items/s");
  for (const Peer* peer : order)
    std::printf(" %17s", peer->label.c_str());
  std::printf("\n");

  const CpuClock cpu_before = read_cpu_clock();
  const auto wall_before = std::chrono::steady_clock::now();
  for (int round = 0; round < options.rounds; ++round) {
    // Rotate the order each round so no peer always runs first or right after another.
    for (std::size_t k = 0; k < order.size(); ++k) {
      Peer& peer = *order[(k + static_cast<std::size_t>(round)) % order.size()];
      peer.rates.push_back(peer.run());
    }
    std::printf("round %-3d", round + 1);
    for (const Peer* peer : order)
      std::printf(" %17.3f", peer->rates.back() / 1e6);
    std::printf("\n");
  }
  const CpuClock cpu_after = read_cpu_clock();
  const std::chrono::duration<double> wall = std::chrono::steady_clock::now() - wall_before;
  python.name = "Python " + python_version + " queue.Queue";

  const double others =
      std::max(0.0, (cpu_after.machine - cpu_before.machine) - (cpu_after.own - cpu_before.own));
  const double cpus = std::max(1U, std::thread::hardware_concurrency());
  const double others_share = others / (wall.count() * cpus);
  std::printf(
      "\nother processes used %.1f%% of the machine's CPU time during the rounds%s\n",
      100 * others_share,
      others_share > 0.05 ? " -- WARNING: the machine was not quiet; figures are unreliable" : "");

  const std::vector<const Peer*> ran(order.begin(), order.end());
  std::vector<const Peer*> unbounded;
  for (const Peer* peer : {&baseline, &spindle, &python}) {
    if (has(ran, *peer)) unbounded.push_back(peer);
  }
  std::vector<const Peer*> bounded;
  for (const Peer* peer : {&baseline_bounded, &spindle_bounded}) {
    if (has(ran, *peer)) bounded.push_back(peer);
  }
  if (!unbounded.empty()) print_table("Unbounded (maxsize 0)", unbounded, spindle);
  if (!bounded.empty()) {
    print_table(("Bounded (maxsize " + bound + ")").c_str(), bounded, spindle_bounded);
  }

  std::printf("\n  %-38s %10s %10s  %-17s   %s\n", "ratio", "of medians", "per round",
              "(min .. max)", "goal");
  if (has(ran, spindle) && has(ran, baseline)) {
    print_ratio("spindle / C++ baseline", spindle, baseline, 1.0);
  }
  if (has(ran, spindle) && has(ran, python)) {
    print_ratio("spindle / Python queue.Queue", spindle, python, 50.0);
  }
  if (has(ran, spindle_bounded) && has(ran, baseline_bounded)) {
    print_ratio("spindle / C++ baseline, bounded", spindle_bounded, baseline_bounded, std::nullopt);
  }
  if (has(ran, spindle_bounded) && has(ran, spindle)) {
    print_ratio("spindle bounded / spindle unbounded", spindle_bounded, spindle, std::nullopt);
  }
  return 0;
} catch (const std::exception& error) {
  std::fprintf(stderr, "queue_side_by_side: %s\n", error.what());
  return 1;
}
