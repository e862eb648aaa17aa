// spindle::print: Python's print() for threads. Each call writes its whole line at once.
#pragma once

#include <cstdio>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace spindle {
namespace detail {
// Writes `line` (which ends with its newline) to `stream` in one stdio call, so lines from
// different threads never interleave.
void write_line(std::FILE* stream, std::string_view line);
}  // namespace detail

// Formats `format` with `args` (fmt syntax) and writes it with a newline to stdout as one
// whole line. Thread-safe; blocks only for the write itself. Output is buffered as stdio
// buffers it (line-buffered on a terminal), exactly as Python's print.
template <class... A>
void print(fmt::format_string<A...> format, A&&... args) {
  fmt::memory_buffer buffer;
  fmt::format_to(std::back_inserter(buffer), format, std::forward<A>(args)...);
  buffer.push_back('\n');
  detail::write_line(stdout, std::string_view(buffer.data(), buffer.size()));
}

// The same, to `stream` (stderr, say): print(file=stream).
template <class... A>
void print(std::FILE* stream, fmt::format_string<A...> format, A&&... args) {
  fmt::memory_buffer buffer;
  fmt::format_to(std::back_inserter(buffer), format, std::forward<A>(args)...);
  buffer.push_back('\n');
  detail::write_line(stream, std::string_view(buffer.data(), buffer.size()));
}

}  // namespace spindle
