// asyncio workloads run side by side in one program: spindle::asyncio, Asio's C++20
// coroutines (single-threaded io_context), and Python 3's asyncio and uvloop
// (bench/python/asyncio_side_by_side.py, run with /usr/bin/python3).
//
//   S10k   10,000 tasks each sleeping 1 s, gathered: wall time (goal: <= 1.02 s)
//   S100k  100,000 such tasks: wall time (goal: <= 1.1 s) and memory per sleeping task:
//          peak RSS of the run minus peak RSS of the same program doing nothing, over 100,000
//          (goal: <= 0.4 KB)
//   T1M    1,000,000 trivial tasks created, then gathered: tasks per second (goal: >= 30x
//          asyncio's)
//
// Every figure comes from a child process of its own (this program re-run with --child, or
// the Python script), so peak RSS belongs to one workload only. Each round runs every peer
// once per workload, in an order rotated each round; the table shows medians over the rounds
// and spindle's ratio to each peer. Asio has no gather: its tasks are co_spawned and
// io_context::run() returns when they are all done.
//
//   build/release/bench/asyncio_side_by_side [--rounds R] [--no-python] [--python PATH]
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <asio.hpp>

#include "spindle/asyncio.hpp"

#include "side_by_side.hpp"

#ifndef SPINDLE_BENCH_PYTHON
#define SPINDLE_BENCH_PYTHON "/usr/bin/python3"
#endif
#ifndef SPINDLE_BENCH_PYTHON_SCRIPT
#define SPINDLE_BENCH_PYTHON_SCRIPT "bench/python/asyncio_side_by_side.py"
#endif

namespace asyncio = spindle::asyncio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

using spindle_bench::median;

long peak_rss_kb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// ---- the workloads, run in a child ----

asyncio::Task<> spindle_sleeper() {
  co_await asyncio::sleep(1s);
}
asyncio::Task<> spindle_trivial() {
  co_return;
}

asyncio::Task<> spindle_main(std::string workload, long n) {
  if (workload == "empty") co_return;
  std::vector<asyncio::Task<>> tasks;
  tasks.reserve(static_cast<std::size_t>(n));
  for (long i = 0; i < n; ++i)
    tasks.push_back(
        asyncio::create_task(workload == "sleep" ? spindle_sleeper() : spindle_trivial()));
  co_await asyncio::gather(std::move(tasks));
}

asio::awaitable<void> asio_sleeper() {
  asio::steady_timer timer(co_await asio::this_coro::executor, 1s);
  co_await timer.async_wait(asio::use_awaitable);
}
asio::awaitable<void> asio_trivial() {
  co_return;
}

void asio_main(const std::string& workload, long n) {
  asio::io_context context(1);
  if (workload != "empty")
    for (long i = 0; i < n; ++i)
      asio::co_spawn(context, workload == "sleep" ? asio_sleeper() : asio_trivial(),
                     asio::detached);
  context.run();
}

int run_child(const std::string& peer, const std::string& workload, long n) {
  const auto start = Clock::now();
  if (peer == "spindle")
    asyncio::run(spindle_main(workload, n));
  else
    asio_main(workload, n);
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("wall=%.6f peak_rss_kb=%ld\n", wall, peak_rss_kb());
  return 0;
}

// ---- the parent ----

struct Figure {
  double wall = 0;
  long rss_kb = 0;
  bool ok = false;
};

Figure run_process(const std::vector<std::string>& argv) {
  int out[2];
  if (pipe(out) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    std::vector<char*> args;
    for (const auto& arg : argv)
      args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  std::string text;
  char buffer[256];
  ssize_t got;
  while ((got = read(out[0], buffer, sizeof buffer)) > 0)
    text.append(buffer, static_cast<std::size_t>(got));
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  Figure figure;
  figure.ok =
      WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
      std::sscanf(text.c_str(), "wall=%lf peak_rss_kb=%ld", &figure.wall, &figure.rss_kb) == 2;
  return figure;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::strcmp(argv[1], "--child") == 0)
    return run_child(argv[2], argv[3], std::atol(argv[4]));

  int rounds = 3;
  bool python = true;
  std::string python_path = SPINDLE_BENCH_PYTHON;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--rounds" && i + 1 < argc) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--no-python") {
      python = false;
    } else if (arg == "--python" && i + 1 < argc) {
      python_path = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--rounds R] [--no-python] [--python PATH]\n", argv[0]);
      return 2;
    }
  }
  char self[4096];
  const ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
  if (length <= 0) return 1;
  self[length] = '\0';

  std::vector<std::string> peers{"spindle", "asio"};
  if (python) {
    peers.push_back("asyncio");
    peers.push_back("uvloop");
  }
  struct Workload {
    std::string name, kind;
    long n;
  };
  const std::vector<Workload> workloads{{"empty", "empty", 0},
                                        {"S10k", "sleep", 10000},
                                        {"S100k", "sleep", 100000},
                                        {"T1M", "trivial", 1000000}};

  std::map<std::string, std::map<std::string, std::vector<double>>> walls, rss;
  for (int round = 0; round < rounds; ++round) {
    for (std::size_t w = 0; w < workloads.size(); ++w) {
      const Workload& workload = workloads[w];
      for (std::size_t p = 0; p < peers.size(); ++p) {
        const std::string& peer = peers[(p + static_cast<std::size_t>(round)) % peers.size()];
        std::vector<std::string> command;
        if (peer == "spindle" || peer == "asio")
          command = {self, "--child", peer, workload.kind, std::to_string(workload.n)};
        else
          command = {python_path, SPINDLE_BENCH_PYTHON_SCRIPT, peer, workload.kind,
                     std::to_string(workload.n)};
        const Figure figure = run_process(command);
        if (!figure.ok) {
          std::fprintf(stderr, "%s %s failed\n", peer.c_str(), workload.name.c_str());
          continue;
        }
        walls[workload.name][peer].push_back(figure.wall);
        rss[workload.name][peer].push_back(static_cast<double>(figure.rss_kb));
      }
    }
  }

  std::printf("asyncio side by side: medians of %d round(s); load average at the end %s\n\n",
              rounds, spindle_bench::load_average().c_str());
  std::printf("%-7s %-8s %12s %16s %14s %s\n", "work", "peer", "wall (s)", "figure", "KB/task",
              "spindle vs peer");
  for (const Workload& workload : workloads) {
    if (workload.kind == "empty") continue;
    double spindle_figure = 0;
    for (const std::string& peer : peers) {
      const double wall = median(walls[workload.name][peer]);
      const double base = median(rss["empty"][peer]);
      const double kb_per_task =
          (median(rss[workload.name][peer]) - base) / static_cast<double>(workload.n);
      const bool rate = workload.kind == "trivial";
      const double figure = rate ? static_cast<double>(workload.n) / wall : wall;
      if (peer == "spindle") spindle_figure = figure;
      const double ratio = rate ? spindle_figure / figure : figure / spindle_figure;
      char shown[64];
      if (rate)
        std::snprintf(shown, sizeof shown, "%.0f tasks/s", figure);
      else
        std::snprintf(shown, sizeof shown, "%.3f s", figure);
      std::printf("%-7s %-8s %12.3f %16s %14.3f %s\n", workload.name.c_str(), peer.c_str(), wall,
                  shown, kb_per_task,
                  peer == "spindle" ? "" : (std::to_string(ratio).substr(0, 5) + "x").c_str());
    }
  }
  std::printf(
      "\nKB/task: (peak RSS of the run - peak RSS of the empty run) / tasks.\n"
      "spindle vs peer: for S10k/S100k the peer's wall over spindle's; for T1M spindle's\n"
      "tasks/s over the peer's.\n");
}
