// What every subcommand of the `spindle` command shares: the global options, the console it
// writes through, and the exit codes.
//
// Adding a subcommand: write apps/spindle/<name>.cpp defining register_<name>(), declare it
// below, list it in main.cpp's table and in apps/CMakeLists.txt.
#pragma once

#include <CLI/CLI.hpp>

#include "console.hpp"

namespace spindle_cli {

// Exit codes: every item done; some item failed; the command line was wrong.
inline constexpr int kExitOk = 0;
inline constexpr int kExitItemFailed = 1;
inline constexpr int kExitUsage = 2;
// Interrupted by SIGINT or SIGTERM (128 + signal, as shells report it).
inline constexpr int kExitInterrupted = 130;

// State shared by the command and its subcommands, alive for the whole run.
struct Context {
  // Parsed before any subcommand's callback runs (callbacks run once parsing is complete).
  GlobalOptions options;
  // Set by the subcommand that ran.
  int exit_code = kExitOk;
};

// Adds the subcommand to `app`; its callback runs the job and sets context.exit_code. A
// callback throws CLI::ValidationError for bad usage (exit code 2).
using Registration = void (*)(CLI::App& app, Context& context);

void register_grep(CLI::App& app, Context& context);
void register_replace(CLI::App& app, Context& context);
void register_compare(CLI::App& app, Context& context);
void register_factor(CLI::App& app, Context& context);
void register_fetch(CLI::App& app, Context& context);
void register_serve(CLI::App& app, Context& context);

}  // namespace spindle_cli
