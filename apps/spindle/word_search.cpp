#include "word_search.hpp"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace spindle_cli {

namespace {

unsigned char lower(unsigned char byte) noexcept {
  return byte >= 'A' && byte <= 'Z' ? static_cast<unsigned char>(byte + 32) : byte;
}

bool is_letter(unsigned char byte) noexcept {
  return (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z');
}

}  // namespace

WordPattern::WordPattern(std::string_view word, bool ignore_case)
    : word_(word), ignore_case_(ignore_case) {
  if (ignore_case_)
    for (char& c : word_)
      c = static_cast<char>(lower(static_cast<unsigned char>(c)));
  first_ = static_cast<unsigned char>(word_.front());
  last_ = static_cast<unsigned char>(word_.back());
  first_fold_ = ignore_case_ && is_letter(first_) ? 0x20 : 0;
  last_fold_ = ignore_case_ && is_letter(last_) ? 0x20 : 0;
  middle_at_ = word_.size() / 2;
  middle_ = static_cast<unsigned char>(word_[middle_at_]);
  middle_fold_ = ignore_case_ && is_letter(middle_) ? 0x20 : 0;
}

bool WordPattern::matches_at(const char* at) const noexcept {
  if (!ignore_case_) return std::memcmp(at, word_.data(), word_.size()) == 0;
  for (std::size_t i = 0; i < word_.size(); ++i)
    if (lower(static_cast<unsigned char>(at[i])) != static_cast<unsigned char>(word_[i]))
      return false;
  return true;
}

WordPattern::Result WordPattern::count(const char* data, std::size_t size, std::size_t begin,
                                       std::size_t end) const {
  Result result;
  const std::size_t length = word_.size();
  const auto* bytes = reinterpret_cast<const unsigned char*>(data);
  std::size_t next_allowed = begin;  // occurrences do not overlap
  // A candidate at `p` (first and last bytes already match): check it and count it.
  auto consider = [&](std::size_t p) {
    if (p < next_allowed || p + length > size) return;
    if (p > 0 && is_word_byte(bytes[p - 1])) return;
    if (p + length < size && is_word_byte(bytes[p + length])) return;
    if (!matches_at(data + p)) return;
    ++result.count;
    next_allowed = p + length;
  };
  std::size_t p = begin;
#if defined(__SSE2__)
  // Compare 16 positions at once on the word's first, middle and last bytes (few positions
  // pass all three), and look for NUL bytes on the way.
  const __m128i first = _mm_set1_epi8(static_cast<char>(first_));
  const __m128i last = _mm_set1_epi8(static_cast<char>(last_));
  const __m128i first_fold = _mm_set1_epi8(static_cast<char>(first_fold_));
  const __m128i last_fold = _mm_set1_epi8(static_cast<char>(last_fold_));
  const __m128i middle = _mm_set1_epi8(static_cast<char>(middle_));
  const __m128i middle_fold = _mm_set1_epi8(static_cast<char>(middle_fold_));
  const __m128i zero = _mm_setzero_si128();
  __m128i nul_seen = zero;
  while (p + 16 <= end && p + length - 1 + 16 <= size) {
    const __m128i head = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + p));
    const __m128i tail = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + p + length - 1));
    const __m128i centre =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + p + middle_at_));
    nul_seen = _mm_or_si128(nul_seen, _mm_cmpeq_epi8(head, zero));
    const __m128i ends = _mm_and_si128(_mm_cmpeq_epi8(_mm_or_si128(head, first_fold), first),
                                       _mm_cmpeq_epi8(_mm_or_si128(tail, last_fold), last));
    const __m128i all =
        _mm_and_si128(ends, _mm_cmpeq_epi8(_mm_or_si128(centre, middle_fold), middle));
    unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(all));
    while (mask != 0) {
      consider(p + static_cast<std::size_t>(__builtin_ctz(mask)));
      mask &= mask - 1;
    }
    p += 16;
  }
  result.has_nul = _mm_movemask_epi8(nul_seen) != 0;
#endif
  for (; p < end; ++p) {
    if (bytes[p] == 0) result.has_nul = true;
    if ((bytes[p] | first_fold_) == first_ && p + length <= size &&
        (bytes[p + length - 1] | last_fold_) == last_)
      consider(p);
  }
  return result;
}

}  // namespace spindle_cli
