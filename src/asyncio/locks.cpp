// asyncio's Lock, Event, Condition, Semaphore, BoundedSemaphore and Barrier, following
// CPython's asyncio/locks.py step by step (the FIFO of waiters, handing a wake-up on when a
// woken waiter is cancelled).
#include "spindle/asyncio.hpp"

namespace spindle::asyncio {
namespace internal {

// ---- WaitSlot / WaitList ----

WaitSlot::~WaitSlot() {
  if (linked_) list_->remove(this);
}

void WaitSlot::await_suspend(std::coroutine_handle<> frame) {
  list_->push_back(this);
  suspend(this, frame);
}

void WaitSlot::await_resume() {
  if (linked_) list_->remove(this);
  deliver_pending_cancel();
  if (cancelled_) throw CancelledError(task_->cancel_message());
}

bool WaitSlot::cancel_wait(const std::string&) {
  if (woken_) return false;
  cancelled_ = true;
  if (linked_) list_->remove(this);
  wake(this);
  return true;
}

WaitList::~WaitList() {
  while (head_ != nullptr)
    remove(head_);
}

void WaitList::push_back(WaitSlot* slot) noexcept {
  slot->previous_ = tail_;
  slot->next_ = nullptr;
  if (tail_ != nullptr)
    tail_->next_ = slot;
  else
    head_ = slot;
  tail_ = slot;
  slot->linked_ = true;
}

void WaitList::remove(WaitSlot* slot) noexcept {
  if (!slot->linked_) return;
  if (slot->previous_ != nullptr)
    slot->previous_->next_ = slot->next_;
  else
    head_ = slot->next_;
  if (slot->next_ != nullptr)
    slot->next_->previous_ = slot->previous_;
  else
    tail_ = slot->previous_;
  slot->previous_ = slot->next_ = nullptr;
  slot->linked_ = false;
}

std::size_t WaitList::wake(std::size_t limit, bool pop) {
  std::size_t woken = 0;
  WaitSlot* slot = head_;
  while (slot != nullptr && woken < limit) {
    WaitSlot* next = slot->next_;
    if (!slot->woken_ && !slot->cancelled_) {
      slot->woken_ = true;
      if (pop) remove(slot);
      slot->wake(slot);
      ++woken;
    }
    slot = next;
  }
  return woken;
}

bool WaitList::wake_first(bool pop) {
  return wake(1, pop) == 1;
}

std::size_t WaitList::waiting() const noexcept {
  std::size_t count = 0;
  for (WaitSlot* slot = head_; slot != nullptr; slot = slot->next_)
    if (!slot->woken_ && !slot->cancelled_) ++count;
  return count;
}

}  // namespace internal

// ---- Lock ----

Task<> Lock::acquire() {
  // Free and nobody queued (a woken waiter still queued has the turn: no barging).
  if (!locked_ && waiters_.empty()) {
    locked_ = true;
    co_return;
  }
  internal::WaitSlot slot(waiters_);
  std::exception_ptr error;
  try {
    co_await slot;
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    // Chosen by release() but cancelled before running: pass the turn on.
    if (!locked_) waiters_.wake_first(false);
    std::rethrow_exception(error);
  }
  locked_ = true;
}

Task<internal::Held<Lock>> Lock::scoped() {
  co_await acquire();
  co_return internal::Held<Lock>(this);
}

void Lock::release() {
  if (!locked_) throw std::logic_error("Lock::release: the lock is not acquired");
  locked_ = false;
  waiters_.wake_first(false);
}

// ---- Event ----

Task<> Event::wait() {
  if (value_) co_return;
  internal::WaitSlot slot(waiters_);
  co_await slot;
}

void Event::set() {
  if (value_) return;
  value_ = true;
  waiters_.wake(static_cast<std::size_t>(-1), false);
}

// ---- Condition ----

Task<internal::Held<Condition>> Condition::scoped() {
  co_await acquire();
  co_return internal::Held<Condition>(this);
}

Task<> Condition::wait() {
  if (!locked()) throw std::logic_error("Condition::wait: the lock is not acquired");
  release();
  std::exception_ptr error;
  bool notified = false;
  {
    internal::WaitSlot slot(waiters_);
    try {
      co_await slot;
    } catch (...) {
      error = std::current_exception();
    }
    notified = slot.woken();
  }
  // The lock is re-acquired even when the wait was cancelled.
  while (true) {
    try {
      co_await lock_->acquire();
      break;
    } catch (const CancelledError&) {
      error = std::current_exception();
    }
  }
  if (error) {
    // Notified, then cancelled: another waiter gets the notification.
    if (notified) waiters_.wake_first(false);
    std::rethrow_exception(error);
  }
}

void Condition::notify(std::size_t n) {
  if (!locked()) throw std::logic_error("Condition::notify: the lock is not acquired");
  waiters_.wake(n, false);
}

void Condition::notify_all() {
  notify(static_cast<std::size_t>(-1));
}

// ---- Semaphore ----

Semaphore::Semaphore(long value) : value_(value) {
  if (value < 0) throw std::invalid_argument("Semaphore: the initial value must be >= 0");
}

bool Semaphore::locked() const noexcept {
  return value_ == 0 || waiters_.waiting() > 0;
}

bool Semaphore::wake_up_next() {
  if (!waiters_.wake_first(false)) return false;
  --value_;
  return true;
}

Task<> Semaphore::acquire() {
  if (!locked()) {
    --value_;
    co_return;
  }
  std::exception_ptr error;
  {
    internal::WaitSlot slot(waiters_);
    try {
      co_await slot;
    } catch (...) {
      error = std::current_exception();
    }
    // Woken by release() (which counted us in) but cancelled: give the unit back.
    if (error && slot.woken()) ++value_;
  }
  // Waiters that arrived meanwhile may proceed while units are free.
  while (value_ > 0)
    if (!wake_up_next()) break;
  if (error) std::rethrow_exception(error);
}

Task<internal::Held<Semaphore>> Semaphore::scoped() {
  co_await acquire();
  co_return internal::Held<Semaphore>(this);
}

void Semaphore::release() {
  ++value_;
  wake_up_next();
}

void BoundedSemaphore::release() {
  if (value_ >= bound_)
    throw std::invalid_argument("BoundedSemaphore::release: released too many times");
  Semaphore::release();
}

// ---- Barrier ----

Barrier::Barrier(std::size_t parties) : parties_(parties) {
  if (parties < 1) throw std::invalid_argument("Barrier: parties must be >= 1");
}

Task<> Barrier::block() {
  co_await condition_.wait_for(
      [this] { return state_ != State::draining && state_ != State::resetting; });
  if (state_ == State::broken) throw BrokenBarrierError("Barrier aborted");
}

Task<std::size_t> Barrier::wait() {
  auto held = co_await condition_.scoped();
  co_await block();
  const std::size_t index = count_++;
  std::exception_ptr error;
  try {
    if (index + 1 == parties_) {
      state_ = State::draining;
      condition_.notify_all();
    } else {
      co_await condition_.wait_for([this] { return state_ != State::filling; });
      if (state_ == State::broken || state_ == State::resetting)
        throw BrokenBarrierError("Abort or reset of barrier");
    }
  } catch (...) {
    error = std::current_exception();
  }
  // Leaving: the last one out lets the next round fill.
  --count_;
  if (count_ == 0) {
    if (state_ == State::resetting || state_ == State::draining) state_ = State::filling;
    condition_.notify_all();
  }
  if (error) std::rethrow_exception(error);
  co_return index;
}

Task<> Barrier::reset() {
  auto held = co_await condition_.scoped();
  if (count_ > 0)
    state_ = State::resetting;
  else
    state_ = State::filling;
  condition_.notify_all();
}

Task<> Barrier::abort() {
  auto held = co_await condition_.scoped();
  state_ = State::broken;
  condition_.notify_all();
}

}  // namespace spindle::asyncio
