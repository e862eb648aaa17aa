// Lock's contended paths and the futex primitive under it. See docs/design/threading.md.
#include <cerrno>
#include <climits>

#include "../core/futex.hpp"
#include "spindle/threading.hpp"

namespace spindle::threading {
namespace detail {

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                const spindle::detail::Clock::time_point* deadline) {
  spindle::detail::futex_wait(word, expected, deadline, false);
}

void futex_wake(std::atomic<std::uint32_t>& word, int count) {
  spindle::detail::futex_wake(word, count, false);
}

namespace {
using spindle::detail::cpu_relax;
// A cross-core wake-up costs tens of microseconds on a VM; a critical section usually far
// less. Spinning this many pauses (a few microseconds) before sleeping wins both ways.
constexpr int kSpins = 100;
}  // namespace

}  // namespace detail

bool Lock::acquire_contended(const spindle::detail::Clock::time_point* deadline) {
  if (deadline != nullptr && spindle::detail::Clock::now() >= *deadline) return try_lock();
  for (int spin = 0; spin < detail::kSpins; ++spin) {
    std::uint32_t state = state_.load(std::memory_order_relaxed);
    if (state == kUnlocked &&
        state_.compare_exchange_weak(state, kLocked, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      return true;
    }
    detail::cpu_relax();
  }
  // Sleep. Marking the word "locked with waiters" makes the releaser wake one sleeper; a
  // thread that wins it that way keeps the mark, which costs at most one spare wake-up.
  std::uint32_t state = state_.exchange(kLockedWithWaiters, std::memory_order_acquire);
  while (state != kUnlocked) {
    if (deadline != nullptr && spindle::detail::Clock::now() >= *deadline) return false;
    detail::futex_wait(state_, kLockedWithWaiters, deadline);
    state = state_.exchange(kLockedWithWaiters, std::memory_order_acquire);
  }
  return true;
}

void Lock::release_slow(std::uint32_t previous) {
  if (previous == kUnlocked) throw std::logic_error("release unlocked lock");
  detail::futex_wake(state_, 1);
}

void RLock::release() {
  if (!owned_by_caller()) throw std::logic_error("cannot release un-acquired lock");
  if (--count_ == 0) {
    owner_.store(0, std::memory_order_relaxed);
    lock_.release();
  }
}

std::size_t RLock::release_all() {
  const std::size_t count = count_;
  count_ = 0;
  owner_.store(0, std::memory_order_relaxed);
  lock_.release();
  return count;
}

}  // namespace spindle::threading
