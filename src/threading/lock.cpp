// Lock's contended paths and the futex primitive under it. See docs/design/threading.md.
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>

#include "spindle/threading.hpp"

namespace spindle::threading {
namespace detail {

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                const spindle::detail::Clock::time_point* deadline) {
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, the steady clock's own,
  // so a wait that wakes spuriously needs no recomputation of the time left.
  timespec absolute{};
  if (deadline != nullptr) {
    const auto since_epoch = deadline->time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    absolute.tv_sec = static_cast<time_t>(seconds.count());
    absolute.tv_nsec = static_cast<long>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds).count());
  }
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word),
            FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected,
            deadline != nullptr ? &absolute : nullptr, nullptr, FUTEX_BITSET_MATCH_ANY);
}

void futex_wake(std::atomic<std::uint32_t>& word, int count) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE | FUTEX_PRIVATE_FLAG,
            count, nullptr, nullptr, 0);
}

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}
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
