#include "spindle/threading.hpp"

namespace spindle::threading {

void Event::set() {
  bool wake = false;
  {
    std::lock_guard guard(mutex_);
    flag_.store(true, std::memory_order_release);
    if (waiters_ > 0) {
      ++generation_;
      wake = true;
    }
  }
  if (wake) changed_.notify_all();
}

void Event::clear() {
  std::lock_guard guard(mutex_);
  flag_.store(false, std::memory_order_release);
}

bool Event::wait_until(const spindle::detail::Clock::time_point* deadline) {
  std::unique_lock lock(mutex_);
  // A waiter woken by set() returns true even when clear() came before it ran, as in Python:
  // the generation tells it a set() happened while it slept.
  const std::uint64_t generation = generation_;
  const auto signalled = [&] {
    return flag_.load(std::memory_order_relaxed) || generation_ != generation;
  };
  ++waiters_;
  bool result;
  if (deadline == nullptr) {
    changed_.wait(lock, signalled);
    result = true;
  } else {
    result = changed_.wait_until(lock, *deadline, signalled);
  }
  --waiters_;
  return result;
}

}  // namespace spindle::threading
