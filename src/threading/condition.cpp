// Condition: each waiter sleeps on its own locked Lock, which notify() releases, as in
// CPython. The waiter list is guarded by the condition's own lock, which wait() and notify()
// require the caller to hold.
#include "spindle/threading.hpp"

namespace spindle::threading {

struct Condition::Waiter {
  Lock signal;  // held while waiting; notify() releases it
  Waiter* previous = nullptr;
  Waiter* next = nullptr;
  bool notified = false;
};

Condition::Condition() : own_lock_(std::make_unique<RLock>()), lock_(own_lock_.get()) {}
Condition::Condition(Lock& lock) : lock_(&lock) {}
Condition::Condition(RLock& lock) : lock_(&lock) {}
Condition::~Condition() = default;

void Condition::acquire() {
  std::visit([](auto* lock) { lock->acquire(); }, lock_);
}

void Condition::release() {
  std::visit([](auto* lock) { lock->release(); }, lock_);
}

void Condition::check_owned(const char* operation) {
  const bool owned = std::visit(
      [](auto* lock) {
        if constexpr (std::is_same_v<decltype(lock), RLock*>) {
          return lock->owned_by_caller();
        } else {
          // A Lock has no owner; like CPython, call it owned when it cannot be taken now.
          if (!lock->try_lock()) return true;
          lock->release();
          return false;
        }
      },
      lock_);
  if (!owned) throw std::logic_error(std::string("cannot ") + operation + " on un-acquired lock");
}

bool Condition::wait_until(const spindle::detail::Clock::time_point* deadline) {
  check_owned("wait");
  Waiter waiter;
  waiter.signal.acquire();
  waiter.previous = last_waiter_;
  (last_waiter_ != nullptr ? last_waiter_->next : first_waiter_) = &waiter;
  last_waiter_ = &waiter;

  // Release the lock completely (every level of an RLock) and restore it afterwards.
  std::size_t levels = 0;
  if (auto** rlock = std::get_if<RLock*>(&lock_)) {
    levels = (*rlock)->release_all();
  } else {
    std::get<Lock*>(lock_)->release();
  }
  if (deadline == nullptr) {
    waiter.signal.acquire();
  } else {
    waiter.signal.acquire_contended(deadline);
  }
  if (auto** rlock = std::get_if<RLock*>(&lock_)) {
    (*rlock)->lock_.acquire();
    (*rlock)->take_ownership(levels);
  } else {
    std::get<Lock*>(lock_)->acquire();
  }

  // With the lock held again, `notified` is settled: a notifier either took this waiter off
  // the list (and released its signal) or did not; a timed-out waiter removes itself.
  if (!waiter.notified) {
    (waiter.previous != nullptr ? waiter.previous->next : first_waiter_) = waiter.next;
    (waiter.next != nullptr ? waiter.next->previous : last_waiter_) = waiter.previous;
  }
  return waiter.notified;
}

void Condition::notify(std::size_t n) {
  check_owned("notify");
  while (n > 0 && first_waiter_ != nullptr) {
    Waiter* waiter = first_waiter_;
    first_waiter_ = waiter->next;
    (first_waiter_ != nullptr ? first_waiter_->previous : last_waiter_) = nullptr;
    waiter->notified = true;
    waiter->signal.release();  // the waiter may return (and vanish) once we drop our lock
    --n;
  }
}

void Condition::notify_all() {
  notify(static_cast<std::size_t>(-1));
}

}  // namespace spindle::threading
