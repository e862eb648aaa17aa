#include "console.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <utility>

#include <fmt/format.h>

namespace spindle_cli {

namespace {

void write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t written = ::write(fd, text.data(), text.size());
    if (written <= 0) return;  // nowhere left to report to
    text.remove_prefix(static_cast<std::size_t>(written));
  }
}

}  // namespace

Console::Console(const GlobalOptions& options, std::string command)
    : command_(std::move(command)), json_(options.json) {
  const bool stderr_terminal = ::isatty(STDERR_FILENO) == 1;
  progress_enabled_ = options.progress.value_or(stderr_terminal);
  const char* no_colour = std::getenv("NO_COLOR");
  colour_ = stderr_terminal && (no_colour == nullptr || no_colour[0] == '\0');
}

std::string Console::colour(std::string_view text, std::string_view code) const {
  if (!colour_) return std::string(text);
  return fmt::format("\x1b[{}m{}\x1b[0m", code, text);
}

void Console::out(std::string_view line) {
  std::lock_guard lock(mutex_);
  std::fflush(stdout);
  std::string text(line);
  text += '\n';
  if (bar_visible_) write_all(STDERR_FILENO, "\r\x1b[K");
  write_all(STDOUT_FILENO, text);
  if (bar_visible_) draw_progress_locked(true);
}

void Console::write_stderr_locked(std::string_view text) {
  if (bar_visible_) write_all(STDERR_FILENO, "\r\x1b[K");
  write_all(STDERR_FILENO, text);
  if (bar_visible_) draw_progress_locked(true);
}

void Console::item_error(std::string_view item, std::string_view message) {
  std::lock_guard lock(mutex_);
  write_stderr_locked(
      fmt::format("spindle {}: {}: {}: {}\n", command_, colour("error", "31"), item, message));
}

void Console::error(std::string_view message) {
  std::lock_guard lock(mutex_);
  write_stderr_locked(
      fmt::format("spindle {}: {}: {}\n", command_, colour("error", "31"), message));
}

void Console::note(std::string_view line) {
  std::lock_guard lock(mutex_);
  write_stderr_locked(fmt::format("{}\n", line));
}

void Console::start_progress(std::string label, std::uint64_t total, bool bytes) {
  if (!progress_enabled_) return;
  std::lock_guard lock(mutex_);
  progress_label_ = std::move(label);
  progress_total_ = total;
  progress_done_ = 0;
  progress_bytes_ = bytes;
  bar_visible_ = true;
  draw_progress_locked(true);
}

void Console::advance_progress(std::uint64_t amount) {
  if (!progress_enabled_) return;
  std::lock_guard lock(mutex_);
  progress_done_ += amount;
  if (bar_visible_) draw_progress_locked(false);
}

void Console::finish_progress() {
  if (!progress_enabled_) return;
  std::lock_guard lock(mutex_);
  if (bar_visible_) write_all(STDERR_FILENO, "\r\x1b[K");
  bar_visible_ = false;
}

void Console::draw_progress_locked(bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  constexpr int kWidth = 30;
  const double fraction = progress_total_ == 0 ? 1.0
                                               : static_cast<double>(progress_done_) /
                                                     static_cast<double>(progress_total_);
  const int filled = static_cast<int>(fraction > 1.0 ? kWidth : fraction * kWidth);
  const std::string amount =
      progress_bytes_ ? fmt::format("{} / {}", human_bytes(static_cast<double>(progress_done_)),
                                    human_bytes(static_cast<double>(progress_total_)))
                      : fmt::format("{} / {}", progress_done_, progress_total_);
  write_all(STDERR_FILENO,
            fmt::format("\r{} [{}{}] {:3.0f}% {}\x1b[K", progress_label_, std::string(filled, '#'),
                        std::string(kWidth - filled, '.'), fraction * 100.0, amount));
}

std::string Console::human_bytes(double bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int unit = 0;
  while (bytes >= 1000.0 && unit < 4) {
    bytes /= 1000.0;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, units[unit]);
}

}  // namespace spindle_cli
