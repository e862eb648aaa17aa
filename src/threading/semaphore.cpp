#include "spindle/threading.hpp"

namespace spindle::threading {

Semaphore::Semaphore(std::ptrdiff_t value) : value_(value) {
  if (value < 0) throw std::invalid_argument("semaphore initial value must be >= 0");
}

void Semaphore::acquire() {
  std::unique_lock lock(mutex_);
  if (value_ == 0) {
    ++waiters_;
    available_.wait(lock, [&] { return value_ > 0; });
    --waiters_;
  }
  --value_;
}

bool Semaphore::acquire_until(spindle::detail::Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  if (value_ == 0) {
    ++waiters_;
    const bool available = available_.wait_until(lock, deadline, [&] { return value_ > 0; });
    --waiters_;
    if (!available) return false;
  }
  --value_;
  return true;
}

void Semaphore::release(std::ptrdiff_t n) {
  add(n, std::nullopt);
}

void Semaphore::add(std::ptrdiff_t n, std::optional<std::ptrdiff_t> bound) {
  if (n < 1) throw std::invalid_argument("n must be one or more");
  std::lock_guard guard(mutex_);
  if (bound && value_ + n > *bound) {
    throw std::invalid_argument("Semaphore released too many times");
  }
  value_ += n;
  // Notified under the lock: an acquirer may destroy the semaphore as soon as it returns.
  const std::size_t to_wake = std::min(waiters_, static_cast<std::size_t>(n));
  if (to_wake == 1) {
    available_.notify_one();
  } else if (to_wake > 1) {
    available_.notify_all();
  }
}

std::ptrdiff_t Semaphore::value() const {
  std::lock_guard guard(mutex_);
  return value_;
}

BoundedSemaphore::BoundedSemaphore(std::ptrdiff_t value)
    : Semaphore(value), initial_value_(value) {}

void BoundedSemaphore::release(std::ptrdiff_t n) {
  add(n, initial_value_);
}

}  // namespace spindle::threading
