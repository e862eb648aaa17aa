// Counting whole-word occurrences of a fixed word in a buffer, fast (SSE2 where available).
//
// "A word" follows `grep -w -o -F` in the C locale: an occurrence counts when the byte before
// it (if any) and the byte after it (if any) are not word bytes, word bytes being ASCII
// letters, digits and '_'. Occurrences do not overlap: after one is counted the search goes on
// after its end. With ignore_case, ASCII letters match either case (other bytes exactly).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace spindle_cli {

class WordPattern {
 public:
  // `word` must not be empty.
  WordPattern(std::string_view word, bool ignore_case);
  std::size_t size() const noexcept { return word_.size(); }

  struct Result {
    std::uint64_t count = 0;
    bool has_nul = false;  // a NUL byte among [begin, end): the file is binary
  };

  // Counts the occurrences that start in [begin, end) of `data` (of `size` bytes). The bytes
  // around that range are context for the word-boundary tests, and the buffer's edges count
  // as boundaries: so `data` must start at the file's start or at begin - 1, and end at the
  // file's end or at least size() bytes after `end`. Non-blocking, thread-safe.
  Result count(const char* data, std::size_t size, std::size_t begin, std::size_t end) const;

 private:
  bool matches_at(const char* at) const noexcept;

  std::string word_;  // lower-cased when ignore_case
  bool ignore_case_ = false;
  unsigned char first_ = 0;       // word_'s first byte
  unsigned char last_ = 0;        // word_'s last byte
  unsigned char first_fold_ = 0;  // 0x20 when first_ is a letter and ignore_case, else 0
  unsigned char last_fold_ = 0;
  std::size_t middle_at_ = 0;  // a third byte checked before a full comparison
  unsigned char middle_ = 0;
  unsigned char middle_fold_ = 0;
};

// True for ASCII letters, digits and '_'.
inline bool is_word_byte(unsigned char byte) noexcept {
  return (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z') ||
         (byte >= '0' && byte <= '9') || byte == '_';
}

}  // namespace spindle_cli
