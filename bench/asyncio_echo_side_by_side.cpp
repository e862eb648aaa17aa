// TCP echo on 127.0.0.1 with 64-byte messages: round trips per second through
//   - spindle::asyncio streams (start_server / open_connection, write + drain + readexactly),
//   - Asio's C++20 coroutines on one io_context run by one thread (asio::awaitable,
//     co_spawn, async_read / async_write),
//   - Python 3.11's asyncio streams and the same code on uvloop
//     (bench/python/asyncio_echo.py, /usr/bin/python3 with Debian's python3-uvloop).
// Each runtime serves and drives itself: its server and its client are two processes (this
// program re-executed with --role, or the Python script), so the figure is what one
// single-threaded runtime does at each end of the connection. The client keeps C connections
// busy, each sending a message and waiting for its echo, for S seconds after a short warm-up,
// and reports the round trips it completed.
//
// Configurations: 1 connection, 50 connections, and 1 connection with both processes pinned
// to CPU 0 (sched_setaffinity, as `taskset -c 0`): unpinned, one connection measures where the
// scheduler puts the two processes as much as the runtime. Each configuration runs every
// runtime R times, in a rotated order; the table shows medians and spindle's ratio to each.
//
//   build/release/bench/asyncio_echo_side_by_side [--seconds S] [--rounds R]
//       [--peers spindle,asio,asyncio,uvloop] [--python PATH] [--script PATH]
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <asio.hpp>

#include "spindle/asyncio.hpp"

#include "side_by_side.hpp"

#ifndef SPINDLE_BENCH_PYTHON
#define SPINDLE_BENCH_PYTHON "/usr/bin/python3"
#endif
#ifndef SPINDLE_BENCH_PYTHON_SCRIPT
#define SPINDLE_BENCH_PYTHON_SCRIPT "bench/python/asyncio_echo.py"
#endif

namespace {

using spindle_bench::load_average;
using spindle_bench::median;

constexpr std::size_t kMessage = 64;
constexpr double kWarmup = 0.3;  // seconds before counting starts
using Clock = std::chrono::steady_clock;

// ---- spindle ----

namespace asyncio = spindle::asyncio;

asyncio::Task<> spindle_echo(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  for (;;) {
    std::string data = co_await reader.read(64 * 1024);
    if (data.empty()) break;
    writer.write(data);
    co_await writer.drain();
  }
  writer.close();
}

asyncio::Task<> spindle_server() {
  asyncio::Server server = co_await asyncio::start_server(spindle_echo, "127.0.0.1", 0);
  std::printf("PORT %d\n", server.port());
  std::fflush(stdout);
  co_await server.serve_forever();
}

asyncio::Task<long> spindle_connection(int port, Clock::time_point start, Clock::time_point end) {
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);
  const std::string message(kMessage, 'm');
  long count = 0;
  for (;;) {
    writer.write(message);
    co_await writer.drain();
    co_await reader.readexactly(kMessage);
    const auto now = Clock::now();
    if (now >= end) break;
    if (now >= start) ++count;
  }
  writer.close();
  co_return count;
}

asyncio::Task<long> spindle_client(int port, int connections, double seconds) {
  const auto start = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(kWarmup));
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<asyncio::Task<long>> clients;
  for (int i = 0; i < connections; ++i)
    clients.push_back(spindle_connection(port, start, end));
  long total = 0;
  for (long count : co_await asyncio::gather(std::move(clients)))
    total += count;
  co_return total;
}

// ---- Asio ----

asio::awaitable<void> asio_echo(asio::ip::tcp::socket socket) {
  char data[64 * 1024];
  try {
    for (;;) {
      std::size_t n = co_await socket.async_read_some(asio::buffer(data), asio::use_awaitable);
      co_await asio::async_write(socket, asio::buffer(data, n), asio::use_awaitable);
    }
  } catch (const std::exception&) {
    // the client closed
  }
}

asio::awaitable<void> asio_listen(asio::ip::tcp::acceptor& acceptor) {
  for (;;) {
    asio::ip::tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
    socket.set_option(asio::ip::tcp::no_delay(true));
    asio::co_spawn(acceptor.get_executor(), asio_echo(std::move(socket)), asio::detached);
  }
}

void asio_server() {
  asio::io_context context(1);
  asio::ip::tcp::acceptor acceptor(context, {asio::ip::make_address("127.0.0.1"), 0});
  std::printf("PORT %d\n", acceptor.local_endpoint().port());
  std::fflush(stdout);
  asio::co_spawn(context, asio_listen(acceptor), asio::detached);
  context.run();
}

asio::awaitable<void> asio_connection(int port, Clock::time_point start, Clock::time_point end,
                                      long& total) {
  auto executor = co_await asio::this_coro::executor;
  asio::ip::tcp::socket socket(executor);
  co_await socket.async_connect(
      {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)},
      asio::use_awaitable);
  socket.set_option(asio::ip::tcp::no_delay(true));
  char message[kMessage];
  std::memset(message, 'm', kMessage);
  char reply[kMessage];
  for (;;) {
    co_await asio::async_write(socket, asio::buffer(message), asio::use_awaitable);
    co_await asio::async_read(socket, asio::buffer(reply), asio::use_awaitable);
    const auto now = Clock::now();
    if (now >= end) break;
    if (now >= start) ++total;
  }
}

long asio_client(int port, int connections, double seconds) {
  asio::io_context context(1);
  const auto start = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(kWarmup));
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  long total = 0;
  for (int i = 0; i < connections; ++i)
    asio::co_spawn(context, asio_connection(port, start, end, total), asio::detached);
  context.run();
  return total;
}

// ---- the driver ----

struct Child {
  pid_t pid = -1;
  FILE* out = nullptr;
};

// Starts argv with its stdout on a pipe; pinned to CPU 0 if asked.
Child spawn(const std::vector<std::string>& argv, bool pin) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    if (pin) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(0, &set);
      ::sched_setaffinity(0, sizeof set, &set);
    }
    std::vector<char*> args;
    for (const std::string& arg : argv)
      args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::perror(args[0]);
    ::_exit(127);
  }
  ::close(fds[1]);
  return {pid, ::fdopen(fds[0], "r")};
}

std::string read_line(FILE* file) {
  char line[256];
  if (std::fgets(line, sizeof line, file) == nullptr) return {};
  return line;
}

void finish(Child& child, bool kill_it) {
  if (kill_it) ::kill(child.pid, SIGTERM);
  int status = 0;
  ::waitpid(child.pid, &status, 0);
  std::fclose(child.out);
}

struct Options {
  double seconds = 2.0;
  int rounds = 3;
  std::vector<std::string> peers = {"spindle", "asio", "asyncio", "uvloop"};
  std::string python = SPINDLE_BENCH_PYTHON;
  std::string script = SPINDLE_BENCH_PYTHON_SCRIPT;
  std::string self;
};

std::vector<std::string> command(const Options& options, const std::string& peer,
                                 const std::string& role) {
  if (peer == "spindle" || peer == "asio") return {options.self, "--role", role, "--impl", peer};
  return {options.python, options.script, "--role", role, "--loop", peer};
}

// One run: server and client of `peer`; round trips per second.
double run_once(const Options& options, const std::string& peer, int connections, bool pin) {
  Child server = spawn(command(options, peer, "server"), pin);
  std::string line = read_line(server.out);
  int port = 0;
  if (std::sscanf(line.c_str(), "PORT %d", &port) != 1) {
    finish(server, true);
    throw std::runtime_error(peer + " server did not start: " + line);
  }
  std::vector<std::string> client = command(options, peer, "client");
  client.push_back("--port");
  client.push_back(std::to_string(port));
  client.push_back("--connections");
  client.push_back(std::to_string(connections));
  client.push_back("--seconds");
  client.push_back(std::to_string(options.seconds));
  Child driver = spawn(client, pin);
  std::string result = read_line(driver.out);
  finish(driver, false);
  finish(server, true);
  long count = 0;
  if (std::sscanf(result.c_str(), "ROUNDTRIPS %ld", &count) != 1)
    throw std::runtime_error(peer + " client failed: " + result);
  return static_cast<double>(count) / options.seconds;
}

int drive(const Options& options) {
  struct Config {
    const char* name;
    int connections;
    bool pin;
  };
  const Config configs[] = {{"1 connection", 1, false},
                            {"50 connections", 50, false},
                            {"1 connection, both pinned to CPU 0", 1, true}};
  std::printf("TCP echo on 127.0.0.1, %zu-byte messages, %.1f s per run, median of %d\n", kMessage,
              options.seconds, options.rounds);
  std::printf("load average before: %s\n\n", load_average().c_str());
  for (const Config& config : configs) {
    std::map<std::string, std::vector<double>> figures;
    for (int round = 0; round < options.rounds; ++round) {
      for (std::size_t i = 0; i < options.peers.size(); ++i) {
        const std::string& peer = options.peers[(i + round) % options.peers.size()];
        figures[peer].push_back(run_once(options, peer, config.connections, config.pin));
      }
    }
    std::printf("%s\n", config.name);
    std::printf("  %-10s %14s %16s\n", "runtime", "round trips/s", "spindle / it");
    const double ours = figures.count("spindle") ? median(figures["spindle"]) : 0;
    for (const std::string& peer : options.peers) {
      const double theirs = median(figures[peer]);
      std::printf("  %-10s %14.0f", peer.c_str(), theirs);
      if (ours > 0 && peer != "spindle") std::printf(" %15.2fx", ours / theirs);
      std::printf("\n");
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  std::printf("load average after: %s\n", load_average().c_str());
  return 0;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  options.self = argv[0];
  std::string role, impl;
  int port = 0, connections = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--role")
      role = next();
    else if (arg == "--impl")
      impl = next();
    else if (arg == "--port")
      port = std::stoi(next());
    else if (arg == "--connections")
      connections = std::stoi(next());
    else if (arg == "--seconds")
      options.seconds = std::stod(next());
    else if (arg == "--rounds")
      options.rounds = std::stoi(next());
    else if (arg == "--peers")
      options.peers = split(next());
    else if (arg == "--python")
      options.python = next();
    else if (arg == "--script")
      options.script = next();
    else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  if (role.empty()) return drive(options);
  if (role == "server") {
    if (impl == "spindle") {
      try {
        asyncio::run(spindle_server());
      } catch (const asyncio::CancelledError&) {
      }
    } else {
      asio_server();
    }
    return 0;
  }
  const long total = impl == "spindle"
                         ? asyncio::run(spindle_client(port, connections, options.seconds))
                         : asio_client(port, connections, options.seconds);
  std::printf("ROUNDTRIPS %ld\n", total);
  return 0;
}
