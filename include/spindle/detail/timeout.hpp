// Conversion of user timeouts (any std::chrono::duration) to one internal form.
#pragma once

#include <chrono>
#include <stdexcept>

namespace spindle::detail {

using Clock = std::chrono::steady_clock;

// The longest wait spindle honours (about 292 years would overflow nanoseconds; one year is
// plenty and keeps deadline arithmetic far from overflow). Python's threading.TIMEOUT_MAX.
inline constexpr std::chrono::nanoseconds kTimeoutMax = std::chrono::hours(24 * 365);

// Checks and converts a timeout. Negative: std::invalid_argument naming `what`, as the
// Python API contract says. Larger than kTimeoutMax: clamped. Fractional durations
// (std::chrono::duration<double>) round up to the next nanosecond.
template <class Rep, class Period>
std::chrono::nanoseconds to_timeout(std::chrono::duration<Rep, Period> timeout,
                                    const char* what = "timeout") {
  if (timeout < std::chrono::duration<Rep, Period>::zero()) {
    throw std::invalid_argument(std::string("'") + what + "' must be a non-negative duration");
  }
  if (std::chrono::duration<double>(timeout) >= std::chrono::duration<double>(kTimeoutMax)) {
    return kTimeoutMax;
  }
  return std::chrono::ceil<std::chrono::nanoseconds>(timeout);
}

// The deadline `timeout` from now on the steady clock.
template <class Rep, class Period>
Clock::time_point deadline_after(std::chrono::duration<Rep, Period> timeout,
                                 const char* what = "timeout") {
  return Clock::now() + to_timeout(timeout, what);
}

}  // namespace spindle::detail
