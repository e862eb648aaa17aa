#include "spindle/print.hpp"

#include <stdio.h>

namespace spindle::detail {

void write_line(std::FILE* stream, std::string_view text) {
  // flockfile makes the text and its newline one unit with respect to every other stdio
  // call on this stream, including plain fputs/printf from code that does not use spindle.
  flockfile(stream);
  fwrite_unlocked(text.data(), 1, text.size(), stream);
  putc_unlocked('\n', stream);
  funlockfile(stream);
}

}  // namespace spindle::detail
