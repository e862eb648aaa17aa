// The `spindle` command: Python's concurrency tutorials' jobs, done concurrently.
//
// Exit codes: 0 every item done, 1 some item failed, 2 bad usage.
#include <cstdio>
#include <exception>
#include <iterator>
#include <memory>

#include <fmt/format.h>

#include "command.hpp"

namespace {

// Every subcommand; adding one is a line here (and its file in apps/CMakeLists.txt).
constexpr spindle_cli::Registration kSubcommands[] = {
    spindle_cli::register_compare, spindle_cli::register_factor,  spindle_cli::register_fetch,
    spindle_cli::register_grep,    spindle_cli::register_replace, spindle_cli::register_serve,
};

}  // namespace

int main(int argc, char** argv) {
  spindle_cli::Context context;
  CLI::App app(
      "spindle: Python's concurrency tutorials' jobs, done concurrently in C++.\n"
      "Exit codes: 0 all done, 1 some item failed, 2 bad usage.",
      "spindle");
  app.set_version_flag("--version", "spindle " SPINDLE_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global options are accepted after the subcommand too
  app.add_flag("--json", context.options.json, "Write the results as one JSON document");
  app.add_flag_callback(
      "--progress", [&] { context.options.progress = true; },
      "Draw progress bars on stderr even when it is not a terminal");
  app.add_flag_callback(
      "--no-progress", [&] { context.options.progress = false; }, "Never draw progress bars");
  for (auto registration : kSubcommands)
    registration(app, context);
  // CLI11 would call an unknown subcommand a missing one; name it instead.
  const auto is_subcommand = [&app](const char* name) {
    for (const CLI::App* sub : app.get_subcommands({}))
      if (sub->check_name(name)) return true;
    return false;
  };
  if (argc > 1 && argv[1][0] != '-' && !is_subcommand(argv[1])) {
    fmt::print(stderr, "spindle: error: unknown subcommand '{}' (spindle --help lists them)\n",
               argv[1]);
    return spindle_cli::kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error);
    return code == 0 ? spindle_cli::kExitOk : spindle_cli::kExitUsage;
  } catch (const std::exception& error) {
    std::fflush(stdout);
    fmt::print(stderr, "spindle: error: {}\n", error.what());
    return spindle_cli::kExitItemFailed;
  }
  return context.exit_code;
}
