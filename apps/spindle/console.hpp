// The command's output: results on stdout (text or one JSON document), errors and progress on
// stderr. Safe to use from any thread; lines are never interleaved.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace spindle_cli {

// The options every subcommand honours.
struct GlobalOptions {
  // --json: stdout is one JSON document; per-item errors still also go to stderr.
  bool json = false;
  // --progress / --no-progress; empty: a bar only when stderr is a terminal.
  std::optional<bool> progress{};
};

class Console {
 public:
  // `command` prefixes error lines ("spindle grep: ..."). Reads NO_COLOR and whether stdout
  // and stderr are terminals.
  Console(const GlobalOptions& options, std::string command);

  bool json() const noexcept { return json_; }
  bool progress_enabled() const noexcept { return progress_enabled_; }

  // One line on stdout (a newline is added).
  void out(std::string_view line);
  // "spindle CMD: ITEM: MESSAGE" on stderr, "error" coloured when allowed.
  void item_error(std::string_view item, std::string_view message);
  // "spindle CMD: MESSAGE" on stderr.
  void error(std::string_view message);
  // A status line on stderr (not results: e.g. the summary of a download run).
  void note(std::string_view line);

  // The progress bar (stderr only; does nothing when progress is disabled). start() sets the
  // total (bytes when `bytes`, else items); advance() may be called from any thread and
  // redraws at most ten times a second; finish() erases the bar.
  void start_progress(std::string label, std::uint64_t total, bool bytes);
  void advance_progress(std::uint64_t amount);
  void finish_progress();

  // "12.3 MB" (decimal units, as download tools print).
  static std::string human_bytes(double bytes);

 private:
  void write_stderr_locked(std::string_view text);
  void draw_progress_locked(bool force);
  std::string colour(std::string_view text, std::string_view code) const;

  std::mutex mutex_;
  std::string command_;
  bool json_ = false;
  bool progress_enabled_ = false;
  bool colour_ = false;
  bool bar_visible_ = false;
  std::string progress_label_;
  std::uint64_t progress_total_ = 0;
  std::uint64_t progress_done_ = 0;
  bool progress_bytes_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace spindle_cli
