// spindle factor [-j N] NUMBER...: the prime factors of each number, computed on a
// ProcessPoolExecutor of N worker processes (the tutorials' big-prime example), printed in
// input order as "NUMBER: P1 P2 ..." (GNU factor's format). An argument that is not a whole
// number from 2 to 2^64-1 is reported on its own line and the others are still factored.
#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "primes.hpp"
#include "spindle/multiprocessing.hpp"

namespace spindle_cli {

namespace {

struct FactorOptions {
  std::vector<std::string> numbers;
  std::optional<unsigned> jobs;
};

// The number an argument spells, or why it is not one to factor.
std::variant<std::uint64_t, std::string> parse_item(const std::string& text) {
  const std::string range = " (factor takes whole numbers from 2 to 18446744073709551615)";
  if (text.empty()) return "empty" + range;
  if (text.front() == '-') return "negative" + range;
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error == std::errc::result_out_of_range) return "out of range" + range;
  if (error != std::errc() || end != text.data() + text.size()) return "not a number" + range;
  if (value < 2) return "out of range" + range;
  return value;
}

int run_factor(const FactorOptions& options, const GlobalOptions& global) {
  Console console(global, "factor");
  const auto started = std::chrono::steady_clock::now();
  struct Item {
    std::string text;
    std::string problem;
    std::optional<spindle::Future<std::vector<std::uint64_t>>> factors;
  };
  std::vector<Item> items;
  for (const auto& text : options.numbers) {
    auto parsed = parse_item(text);
    if (auto* problem = std::get_if<std::string>(&parsed))
      items.push_back({text, std::move(*problem), std::nullopt});
    else
      items.push_back({text, "", std::nullopt});
  }
  std::optional<spindle::ProcessPoolExecutor> pool;
  std::size_t workers = 0;
  for (auto& item : items) {
    if (!item.problem.empty()) continue;
    if (!pool) {
      pool.emplace(spindle::multiprocessing::ProcessPoolOptions{
          .max_workers = options.jobs ? std::optional<std::size_t>(*options.jobs) : std::nullopt});
      workers = options.jobs ? *options.jobs : spindle::multiprocessing::cpu_count();
    }
    item.factors = pool->submit(prime_factors, std::get<std::uint64_t>(parse_item(item.text)));
  }
  bool failed = false;
  nlohmann::json results = nlohmann::json::array();
  for (auto& item : items) {
    if (item.problem.empty()) {
      try {
        const std::vector<std::uint64_t> factors = item.factors->result();
        results.push_back({{"number", item.text}, {"factors", factors}});
        if (!console.json()) console.out(fmt::format("{}: {}", item.text, fmt::join(factors, " ")));
        continue;
      } catch (const std::exception& error) {
        item.problem = error.what();  // a worker process died: BrokenProcessPool
      }
    }
    failed = true;
    console.item_error(item.text, item.problem);
    results.push_back({{"number", item.text}, {"error", item.problem}});
  }
  pool.reset();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (console.json())
    console.out(
        nlohmann::json{{"results", results}, {"processes", workers}, {"seconds", seconds}}.dump(2));
  else if (workers > 0)
    console.note(fmt::format("factored on {} worker process(es) in {:.3f} s", workers, seconds));
  return failed ? kExitItemFailed : kExitOk;
}

}  // namespace

void register_factor(CLI::App& app, Context& context) {
  auto options = std::make_shared<FactorOptions>();
  CLI::App* factor = app.add_subcommand(
      "factor",
      "Print the prime factors of each NUMBER (2 to 2^64-1), computed on a pool of worker\n"
      "processes, in input order: \"NUMBER: P1 P2 ...\". An argument that is not such a\n"
      "number is reported on stderr and the others are still factored (exit code 1).");
  factor->add_option("-j,--jobs", options->jobs, "Worker processes (default: one per core)")
      ->check(CLI::Range(1u, 256u));
  factor->add_option("NUMBER", options->numbers, "Numbers to factor")->required();
  factor->callback(
      [options, &context] { context.exit_code = run_factor(*options, context.options); });
}

}  // namespace spindle_cli
