// spindle compare [--quick] [--svg FILE] [--trace FILE]: the tutorials' lesson measured on this
// machine. An I/O-bound workload (N requests to /delay/D of a test server started in-process)
// and a CPU-bound workload (counting primes by trial division, in chunks) each run
// sequentially, on a ThreadPoolExecutor, on a ProcessPoolExecutor and on asyncio; a table of
// wall time, CPU time (this process and its reaped children, so the processes' workers count)
// and speedup over sequential. Every run is traced (spindle/trace.hpp); --svg draws the
// timeline, --trace writes the Chrome trace.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "primes.hpp"
#include "spindle/asyncio.hpp"
#include "spindle/futures.hpp"
#include "spindle/http.hpp"
#include "spindle/multiprocessing.hpp"
#include "spindle/trace.hpp"
#include "test_server.hpp"

namespace spindle_cli {

namespace {

namespace asyncio = spindle::asyncio;
namespace trace = spindle::trace;
using Clock = std::chrono::steady_clock;

struct CompareOptions {
  bool quick = false;
  std::string svg;
  std::string trace_file;
};

// The sizes of the two workloads.
struct Plan {
  int requests;         // I/O: requests made
  int delay_ms;         // I/O: each request's delay at the server
  std::uint64_t limit;  // CPU: primes counted below this
  int chunks;           // CPU: tasks it is split into
};

// One measured run.
struct Run {
  std::string workload;        // "I/O" or "CPU"
  std::string way;             // "sequential", "threads", "processes", "asyncio"
  double wall = 0;             // seconds
  double cpu = 0;              // seconds, user + system, this process and reaped children
  double speedup = 1;          // sequential wall / this wall
  std::uint64_t checksum = 0;  // what the run computed (all runs of a workload agree)
  trace::Section section;
};

double cpu_seconds() {
  const auto seconds = [](const rusage& usage) {
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  };
  rusage self{};
  rusage children{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  return seconds(self) + seconds(children);
}

// Runs `body` traced and measured; `body` returns the run's checksum.
Run measure(std::string workload, std::string way, const std::function<std::uint64_t()>& body) {
  Run run;
  run.workload = std::move(workload);
  run.way = std::move(way);
  trace::start();
  const double cpu_before = cpu_seconds();
  const auto started = Clock::now();
  run.checksum = body();
  run.wall = std::chrono::duration<double>(Clock::now() - started).count();
  run.cpu = cpu_seconds() - cpu_before;
  trace::stop();
  run.section = {fmt::format("{} bound, {}: {:.3f} s", run.workload, run.way, run.wall),
                 trace::spans()};
  return run;
}

// One blocking request; 1 when it answered 200. A plain function, so that a worker process can
// run it.
std::uint64_t fetch_one(std::string url) {
  return spindle::http::get(std::move(url)).status == 200 ? 1 : 0;
}

// The primes in chunk `index` of `chunks` of [0, limit).
std::uint64_t count_chunk(std::uint64_t limit, int chunks, int index) {
  const std::uint64_t size = limit / static_cast<std::uint64_t>(chunks);
  const std::uint64_t from = size * static_cast<std::uint64_t>(index);
  const std::uint64_t to = index == chunks - 1 ? limit : from + size;
  return count_primes_by_trial_division(from, to);
}

// GET `path` with asyncio streams as the HTTP client (one connection per request, closed by
// the server after the answer); 1 when it answered 200.
asyncio::Task<std::uint64_t> fetch_async(std::string host, int port, std::string path) {
  auto [reader, writer] = co_await asyncio::open_connection(host, port);
  writer.write(fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", path, host));
  co_await writer.drain();
  const std::string response = co_await reader.read();
  writer.close();
  co_await writer.wait_closed();
  co_return response.rfind("HTTP/1.1 200 ", 0) == 0 ? 1 : 0;
}

asyncio::Task<std::uint64_t> fetch_all_async(std::string host, int port, std::string path,
                                             int requests) {
  std::vector<asyncio::Task<std::uint64_t>> tasks;
  for (int i = 0; i < requests; ++i)
    tasks.push_back(asyncio::create_task(fetch_async(host, port, path),
                                         {.name = fmt::format("request {}", i + 1)}));
  std::uint64_t ok = 0;
  for (const auto value : co_await asyncio::gather(std::move(tasks)))
    ok += value;
  co_return ok;
}

asyncio::Task<std::uint64_t> count_chunk_task(std::uint64_t limit, int chunks, int index) {
  co_return count_chunk(limit, chunks, index);
}

// Plain tasks on the loop's one thread: they take turns, none runs in parallel.
asyncio::Task<std::uint64_t> count_all_async(std::uint64_t limit, int chunks) {
  std::vector<asyncio::Task<std::uint64_t>> tasks;
  for (int i = 0; i < chunks; ++i)
    tasks.push_back(asyncio::create_task(count_chunk_task(limit, chunks, i),
                                         {.name = fmt::format("chunk {}", i + 1)}));
  std::uint64_t total = 0;
  for (const auto value : co_await asyncio::gather(std::move(tasks)))
    total += value;
  co_return total;
}

// Sums the results of futures, in order.
template <class Future>
std::uint64_t sum_of(std::vector<Future>& futures) {
  std::uint64_t total = 0;
  for (auto& future : futures)
    total += future.result();
  return total;
}

std::vector<Run> run_io(const Plan& plan, std::size_t cores) {
  TestServer server;
  const std::string path = fmt::format("/delay/{}", plan.delay_ms);
  const std::string url = server.url(path);
  const auto workers = static_cast<std::size_t>(plan.requests);
  std::vector<Run> runs;
  runs.push_back(measure("I/O", "sequential", [&] {
    std::uint64_t ok = 0;
    for (int i = 0; i < plan.requests; ++i) {
      const trace::ScopedSpan span("sequential", [i] { return fmt::format("request {}", i + 1); });
      ok += fetch_one(url);
    }
    return ok;
  }));
  runs.push_back(measure("I/O", "threads", [&] {
    spindle::ThreadPoolExecutor pool({.max_workers = workers, .thread_name_prefix = "thread"});
    std::vector<spindle::Future<std::uint64_t>> futures;
    for (int i = 0; i < plan.requests; ++i)
      futures.push_back(pool.submit(fetch_one, url));
    return sum_of(futures);
  }));
  runs.push_back(measure("I/O", "processes", [&] {
    // As many processes as requests would be absurd; twice the cores, as a tutorial would.
    spindle::ProcessPoolExecutor pool({.max_workers = std::min(workers, 2 * cores)});
    std::vector<spindle::Future<std::uint64_t>> futures;
    for (int i = 0; i < plan.requests; ++i)
      futures.push_back(pool.submit(fetch_one, url));
    return sum_of(futures);
  }));
  runs.push_back(measure("I/O", "asyncio", [&] {
    return asyncio::run(fetch_all_async(server.host(), server.port(), path, plan.requests));
  }));
  return runs;
}

std::vector<Run> run_cpu(const Plan& plan, std::size_t cores) {
  std::vector<Run> runs;
  runs.push_back(measure("CPU", "sequential", [&] {
    std::uint64_t total = 0;
    for (int i = 0; i < plan.chunks; ++i) {
      const trace::ScopedSpan span("sequential", [i] { return fmt::format("chunk {}", i + 1); });
      total += count_chunk(plan.limit, plan.chunks, i);
    }
    return total;
  }));
  runs.push_back(measure("CPU", "threads", [&] {
    spindle::ThreadPoolExecutor pool({.max_workers = cores, .thread_name_prefix = "thread"});
    std::vector<spindle::Future<std::uint64_t>> futures;
    for (int i = 0; i < plan.chunks; ++i)
      futures.push_back(pool.submit(count_chunk, plan.limit, plan.chunks, i));
    return sum_of(futures);
  }));
  runs.push_back(measure("CPU", "processes", [&] {
    spindle::ProcessPoolExecutor pool({.max_workers = cores});
    std::vector<spindle::Future<std::uint64_t>> futures;
    for (int i = 0; i < plan.chunks; ++i)
      futures.push_back(pool.submit(count_chunk, plan.limit, plan.chunks, i));
    return sum_of(futures);
  }));
  runs.push_back(measure("CPU", "asyncio",
                         [&] { return asyncio::run(count_all_async(plan.limit, plan.chunks)); }));
  return runs;
}

double speedup_of(const std::vector<Run>& runs, const std::string& workload,
                  const std::string& way) {
  for (const auto& run : runs)
    if (run.workload == workload && run.way == way) return run.speedup;
  return 0;
}

// The one line that says what the numbers mean.
std::string meaning(const std::vector<Run>& runs, std::size_t cores) {
  return fmt::format(
      "Waiting: threads ({:.1f}x) and asyncio ({:.1f}x) overlap the waits, and processes "
      "({:.1f}x) do too at a higher start-up cost; computing: threads ({:.1f}x) and processes "
      "({:.1f}x) use the {} cores (in C++ threads compute in parallel: there is no GIL), while "
      "asyncio's tasks ({:.1f}x) take turns on one thread.",
      speedup_of(runs, "I/O", "threads"), speedup_of(runs, "I/O", "asyncio"),
      speedup_of(runs, "I/O", "processes"), speedup_of(runs, "CPU", "threads"),
      speedup_of(runs, "CPU", "processes"), cores, speedup_of(runs, "CPU", "asyncio"));
}

void write_file(const std::string& file, const std::string& contents) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << contents;
  out.close();
  if (!out) throw std::runtime_error(fmt::format("{}: cannot write the file", file));
}

int run_compare(const CompareOptions& options, const GlobalOptions& global) {
  Console console(global, "compare");
  const std::size_t cores = std::max<std::size_t>(1, spindle::multiprocessing::cpu_count());
  const Plan plan = options.quick ? Plan{10, 100, 2'000'000, 8} : Plan{20, 250, 8'000'000, 16};
  std::vector<Run> runs = run_io(plan, cores);
  for (auto& run : run_cpu(plan, cores))
    runs.push_back(std::move(run));
  bool failed = false;
  for (auto& run : runs) {
    const Run& sequential = *std::find_if(runs.begin(), runs.end(), [&](const Run& other) {
      return other.workload == run.workload && other.way == "sequential";
    });
    run.speedup = sequential.wall / std::max(run.wall, 1e-9);
    if (run.checksum != sequential.checksum) {
      failed = true;
      console.item_error(fmt::format("{} on {}", run.workload, run.way),
                         fmt::format("computed {} where sequential computed {}", run.checksum,
                                     sequential.checksum));
    }
  }
  if (static_cast<int>(runs[0].checksum) != plan.requests) {
    failed = true;
    console.item_error(
        "I/O", fmt::format("{} of {} requests answered 200", runs[0].checksum, plan.requests));
  }
  const std::string summary = meaning(runs, cores);
  if (console.json()) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& run : runs)
      rows.push_back({{"workload", run.workload},
                      {"way", run.way},
                      {"wall_seconds", run.wall},
                      {"cpu_seconds", run.cpu},
                      {"speedup", run.speedup},
                      {"result", run.checksum}});
    console.out(nlohmann::json{
        {"io", {{"requests", plan.requests}, {"delay_ms", plan.delay_ms}}},
        {"cpu", {{"primes_below", plan.limit}, {"chunks", plan.chunks}}},
        {"cores", cores},
        {"runs", rows},
        {"summary",
         summary}}.dump(2));
  } else {
    console.out(
        fmt::format("I/O: {} requests of {} ms to /delay on an in-process server; "
                    "CPU: primes below {} in {} chunks; {} cores",
                    plan.requests, plan.delay_ms, plan.limit, plan.chunks, cores));
    console.out(fmt::format("{:<9} {:<11} {:>9} {:>9} {:>8}", "workload", "way", "wall s", "CPU s",
                            "speedup"));
    for (const auto& run : runs)
      console.out(fmt::format("{:<9} {:<11} {:>9.3f} {:>9.3f} {:>7.2f}x", run.workload, run.way,
                              run.wall, run.cpu, run.speedup));
    console.out(summary);
  }
  std::vector<trace::Section> sections;
  for (const auto& run : runs)
    sections.push_back(run.section);
  if (!options.svg.empty())
    write_file(options.svg, trace::svg_timeline(sections, {.width = 1200, .title = summary}));
  if (!options.trace_file.empty())
    write_file(options.trace_file, trace::chrome_trace_json(sections));
  return failed ? kExitItemFailed : kExitOk;
}

}  // namespace

void register_compare(CLI::App& app, Context& context) {
  auto options = std::make_shared<CompareOptions>();
  CLI::App* compare = app.add_subcommand(
      "compare",
      "Measure the tutorials' lesson here: an I/O-bound workload (requests to /delay on an\n"
      "in-process test server) and a CPU-bound one (counting primes), each sequential, on\n"
      "threads, on processes and on asyncio; prints wall time, CPU time and speedup.");
  compare->add_flag("--quick", options->quick, "Smaller workloads (under 20 s)");
  compare->add_option("--svg", options->svg, "Write the timeline (one lane per worker) as SVG");
  compare->add_option("--trace", options->trace_file,
                      "Write Chrome Trace Event JSON (Perfetto, chrome://tracing)");
  compare->callback(
      [options, &context] { context.exit_code = run_compare(*options, context.options); });
}

}  // namespace spindle_cli
