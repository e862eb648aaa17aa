#include <climits>

#include "spindle/threading.hpp"

namespace spindle::threading {

void Event::set() {
  std::uint32_t word = word_.load(std::memory_order_relaxed);
  std::uint32_t next;
  do {
    if ((word & kSet) != 0) return;
    next = ((word & ~kWaiters) + kGeneration) | kSet;
  } while (!word_.compare_exchange_weak(word, next, std::memory_order_release,
                                        std::memory_order_relaxed));
  // The exchange above is the last access to this object: a waiter may destroy it now. A
  // futex wake on memory that is gone is harmless (at worst a spurious wake-up elsewhere).
  if ((word & kWaiters) != 0) detail::futex_wake(word_, INT_MAX);
}

bool Event::wait_until(const spindle::detail::Clock::time_point* deadline) {
  std::uint32_t word = word_.load(std::memory_order_acquire);
  const std::uint32_t generation = word & ~(kSet | kWaiters);
  for (;;) {
    if ((word & kSet) != 0 || (word & ~(kSet | kWaiters)) != generation) return true;
    if (deadline != nullptr && spindle::detail::Clock::now() >= *deadline) return false;
    if ((word & kWaiters) == 0) {
      if (!word_.compare_exchange_weak(word, word | kWaiters, std::memory_order_acquire)) {
        continue;  // `word` was reloaded: check it again
      }
      word |= kWaiters;
    }
    detail::futex_wait(word_, word, deadline);
    word = word_.load(std::memory_order_acquire);
  }
}

}  // namespace spindle::threading
