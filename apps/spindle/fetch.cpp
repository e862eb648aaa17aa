// spindle fetch [-j N] [-o DIR] [--retries K] URL... | -i FILE: downloads URLs concurrently
// with the blocking HTTP client on a ThreadPoolExecutor of N workers. A Semaphore of N slots
// bounds the downloads submitted and not yet finished (the tutorials' pattern), so a list of a
// million URLs never queues a million tasks. Each download goes to a temporary file in DIR
// that is renamed to its name only once complete with a 2xx status: a failed or interrupted
// download leaves no partial file. Timeouts, lost connections and 5xx responses are retried
// with exponential backoff.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "atomic_file.hpp"
#include "command.hpp"
#include "spindle/futures.hpp"
#include "spindle/http.hpp"
#include "spindle/threading.hpp"

namespace spindle_cli {

namespace {

namespace http = spindle::http;

struct FetchOptions {
  std::vector<std::string> urls;
  std::string input_file;
  std::string output_dir = ".";
  unsigned jobs = 4;
  unsigned retries = 2;
  double timeout_seconds = 30.0;
  double backoff_seconds = 0.5;
};

// The file name for a URL: the last path segment (query and fragment dropped), "index.html"
// when there is none, bytes other than [A-Za-z0-9._-] replaced with '_', never starting
// with '.'.
std::string file_name_for(const std::string& url) {
  std::string rest = url;
  if (const auto scheme = rest.find("://"); scheme != std::string::npos) rest.erase(0, scheme + 3);
  rest = rest.substr(0, rest.find_first_of("?#"));
  const auto slash = rest.find('/');
  std::string name = slash == std::string::npos ? "" : rest.substr(rest.rfind('/') + 1);
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  if (name.empty()) name = "index.html";
  if (name.front() == '.') name.insert(0, "_");
  return name;
}

// Outcome of one URL.
struct Outcome {
  bool done = false;  // false: not attempted (interrupted first)
  bool ok = false;
  long status = 0;
  std::uint64_t bytes = 0;
  unsigned attempts = 0;
  std::string file;
  std::string reason;  // why it failed
};

// Waits for SIGINT/SIGTERM on a thread of its own (both blocked in every other thread) and
// sets `interrupted`; stop() ends the thread.
class InterruptWatcher {
 public:
  InterruptWatcher() {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGINT);
    sigaddset(&signals_, SIGTERM);
    sigaddset(&signals_, SIGUSR1);  // stop()
    pthread_sigmask(SIG_BLOCK, &signals_, &previous_);
    thread_ = std::thread([this] {
      int signal = 0;
      while (sigwait(&signals_, &signal) == 0) {
        if (signal == SIGUSR1 && stopping_.load()) return;
        if (signal == SIGINT || signal == SIGTERM) {
          interrupted_.store(true);
          wake_.set();
        }
      }
    });
  }
  ~InterruptWatcher() {
    stopping_.store(true);
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  bool interrupted() const { return interrupted_.load(); }
  // Sleeps up to `delay`, waking early on an interrupt.
  void sleep_for(std::chrono::duration<double> delay) { wake_.wait(delay); }

 private:
  sigset_t signals_{};
  sigset_t previous_{};
  std::atomic<bool> interrupted_{false};
  std::atomic<bool> stopping_{false};
  spindle::threading::Event wake_;
  std::thread thread_;
};

bool worth_retrying(const http::RequestError& error) {
  return error.kind() == http::ErrorKind::timeout ||
         error.kind() == http::ErrorKind::connection_lost;
}

// "connection refused (details)" from "GET URL: connection refused (details)".
std::string reason_of(const http::RequestError& error, const std::string& url) {
  const std::string message = error.what();
  const std::string prefix = fmt::format("GET {}: ", url);
  return message.starts_with(prefix) ? message.substr(prefix.size()) : message;
}

Outcome download(const std::string& url, const std::filesystem::path& target,
                 const FetchOptions& options, InterruptWatcher& interrupts, Console& console) {
  Outcome outcome;
  outcome.done = true;
  outcome.file = target.string();
  http::Request request{.url = url};
  request.options.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(options.timeout_seconds));
  request.options.connect_timeout = request.options.timeout;
  request.options.on_progress = [&interrupts](const http::Progress&) {
    return !interrupts.interrupted();
  };
  for (unsigned attempt = 0;; ++attempt) {
    outcome.attempts = attempt + 1;
    bool retry = false;
    try {
      AtomicFile file(target);
      const auto response =
          http::fetch(request, [&file](std::string_view chunk) { file.write(chunk); });
      outcome.status = response.status;
      outcome.bytes = response.body_size;
      if (response.ok()) {
        file.set_permissions(0644);
        file.commit();
        outcome.ok = true;
        return outcome;
      }
      outcome.reason = fmt::format("HTTP {}", response.status);
      retry = response.status >= 500;
    } catch (const http::RequestError& error) {
      outcome.status = 0;
      outcome.bytes = 0;
      outcome.reason =
          error.kind() == http::ErrorKind::cancelled ? "interrupted" : reason_of(error, url);
      retry = worth_retrying(error);
    } catch (const AtomicWriteError& error) {
      outcome.reason = fmt::format("{}: {}", target.string(), error.what());
      return outcome;
    }
    if (!retry || attempt >= options.retries || interrupts.interrupted()) break;
    const double delay = options.backoff_seconds * std::pow(2.0, attempt);
    console.note(fmt::format("retrying {} in {:.2f} s ({})", url, delay, outcome.reason));
    interrupts.sleep_for(std::chrono::duration<double>(delay));
    if (interrupts.interrupted()) break;
  }
  if (outcome.attempts > 1) outcome.reason += fmt::format(" after {} attempts", outcome.attempts);
  return outcome;
}

std::vector<std::string> read_url_list(const std::string& path) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path);
    if (!file) throw CLI::ValidationError("-i", fmt::format("cannot read {}", path));
    in = &file;
  }
  std::vector<std::string> urls;
  std::string line;
  while (std::getline(*in, line)) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto last = line.find_last_not_of(" \t\r");
    urls.push_back(line.substr(first, last - first + 1));
  }
  return urls;
}

int run_fetch(const FetchOptions& given, const GlobalOptions& global) {
  FetchOptions options = given;
  if (!options.input_file.empty()) {
    auto listed = read_url_list(options.input_file);
    options.urls.insert(options.urls.end(), listed.begin(), listed.end());
  }
  if (options.urls.empty()) throw CLI::ValidationError("URL", "no URL given (URL... or -i FILE)");
  Console console(global, "fetch");
  std::error_code error;
  std::filesystem::create_directories(options.output_dir, error);
  if (error || !std::filesystem::is_directory(options.output_dir)) {
    console.error(fmt::format("{}: cannot use as the output folder: {}", options.output_dir,
                              error ? error.message() : "not a directory"));
    return kExitItemFailed;
  }
  // Names are settled up front, in input order, so two URLs never write the same file.
  std::vector<std::filesystem::path> targets;
  std::map<std::string, int> uses;
  for (const auto& url : options.urls) {
    std::string name = file_name_for(url);
    if (const int used = uses[name]++; used > 0) name += fmt::format(".{}", used);
    targets.push_back(std::filesystem::path(options.output_dir) / name);
  }

  std::vector<Outcome> outcomes(options.urls.size());
  const auto started = std::chrono::steady_clock::now();
  console.start_progress("fetch", options.urls.size(), false);
  bool interrupted = false;
  {
    InterruptWatcher interrupts;
    spindle::threading::Semaphore slots(static_cast<std::ptrdiff_t>(options.jobs));
    spindle::ThreadPoolExecutor pool({.max_workers = options.jobs, .thread_name_prefix = "fetch"});
    for (std::size_t i = 0; i < options.urls.size(); ++i) {
      slots.acquire();
      if (interrupts.interrupted()) {
        slots.release();
        break;
      }
      auto future = pool.submit([&, i] {
        Outcome outcome = download(options.urls[i], targets[i], options, interrupts, console);
        const auto& url = options.urls[i];
        if (outcome.ok) {
          if (!console.json())
            console.out(fmt::format("{} {} {} -> {}", outcome.status,
                                    Console::human_bytes(static_cast<double>(outcome.bytes)), url,
                                    outcome.file));
        } else {
          console.item_error(url, outcome.reason);
        }
        console.advance_progress(1);
        outcomes[i] = std::move(outcome);
      });
      future.add_done_callback([&slots](const auto&) { slots.release(); });
    }
    pool.shutdown(true);
    interrupted = interrupts.interrupted();
  }
  console.finish_progress();

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::uint64_t bytes = 0;
  std::size_t succeeded = 0;
  std::size_t failed = 0;
  nlohmann::json results = nlohmann::json::array();
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    const Outcome& outcome = outcomes[i];
    nlohmann::json entry = {{"url", options.urls[i]}};
    if (!outcome.done) {
      entry["error"] = "not attempted (interrupted)";
    } else if (outcome.ok) {
      ++succeeded;
      bytes += outcome.bytes;
      entry.update({{"status", outcome.status},
                    {"bytes", outcome.bytes},
                    {"file", outcome.file},
                    {"attempts", outcome.attempts}});
    } else {
      ++failed;
      entry.update({{"error", outcome.reason}, {"attempts", outcome.attempts}});
      if (outcome.status != 0) entry["status"] = outcome.status;
    }
    results.push_back(std::move(entry));
  }
  const double throughput = seconds > 0 ? static_cast<double>(bytes) / seconds : 0.0;
  if (console.json()) {
    console.out(nlohmann::json{{"results", results},
                               {"succeeded", succeeded},
                               {"failed", failed},
                               {"bytes", bytes},
                               {"seconds", seconds},
                               {"bytes_per_second", throughput},
                               {"interrupted", interrupted}}
                    .dump(2));
  } else {
    console.out(fmt::format("fetched {} of {} URL(s), {} in {:.2f} s ({}/s)", succeeded,
                            options.urls.size(), Console::human_bytes(static_cast<double>(bytes)),
                            seconds, Console::human_bytes(throughput)));
  }
  if (interrupted) return kExitInterrupted;
  return failed > 0 ? kExitItemFailed : kExitOk;
}

}  // namespace

void register_fetch(CLI::App& app, Context& context) {
  auto options = std::make_shared<FetchOptions>();
  CLI::App* fetch = app.add_subcommand(
      "fetch",
      "Download URLs concurrently into DIR, each written atomically (a failed download leaves\n"
      "no file). Prints \"STATUS SIZE URL -> FILE\" per download and a summary; failures go to\n"
      "stderr with their reason. Timeouts and 5xx responses are retried with backoff.");
  fetch->add_option("URL", options->urls, "URLs to download");
  fetch->add_option("-i,--input", options->input_file,
                    "Read URLs from FILE, one a line ('-': stdin; # comments)");
  fetch->add_option("-j,--jobs", options->jobs, "Downloads at once")
      ->capture_default_str()
      ->check(CLI::Range(1u, 256u));
  fetch->add_option("-o,--output", options->output_dir, "Folder for the files")
      ->capture_default_str();
  fetch->add_option("--retries", options->retries, "Retries after a timeout or a 5xx")
      ->capture_default_str()
      ->check(CLI::Range(0u, 20u));
  fetch->add_option("--timeout", options->timeout_seconds, "Seconds per attempt")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  fetch
      ->add_option("--backoff", options->backoff_seconds,
                   "Seconds before the first retry (doubling each time)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  fetch->callback(
      [options, &context] { context.exit_code = run_fetch(*options, context.options); });
}

}  // namespace spindle_cli
