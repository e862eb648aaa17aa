// The futex system calls under spindle's locks and events (private to the library).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>

#include "spindle/detail/timeout.hpp"

namespace spindle::detail {

// Sleeps while `word` holds `expected`: returns on a wake-up, spuriously, or at `deadline`
// (nullptr: none). process_shared: the word lives in shared memory and the waiters of every
// process that maps it share one queue (no FUTEX_PRIVATE_FLAG).
inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       const Clock::time_point* deadline, bool process_shared) {
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
            FUTEX_WAIT_BITSET | (process_shared ? 0 : FUTEX_PRIVATE_FLAG), expected,
            deadline != nullptr ? &absolute : nullptr, nullptr, FUTEX_BITSET_MATCH_ANY);
}

// Wakes up to `count` sleepers on `word`.
inline void futex_wake(std::atomic<std::uint32_t>& word, int count, bool process_shared) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word),
            FUTEX_WAKE | (process_shared ? 0 : FUTEX_PRIVATE_FLAG), count, nullptr, nullptr, 0);
}

// One pause of a spin-wait.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace spindle::detail
