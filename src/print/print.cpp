#include "spindle/print.hpp"

namespace spindle::detail {

void write_line(std::FILE* stream, std::string_view line) {
  // One fwrite: stdio holds the stream's lock for the whole call, so the line (newline
  // included) is one unit with respect to every other stdio call on this stream.
  std::fwrite(line.data(), 1, line.size(), stream);
}

}  // namespace spindle::detail
