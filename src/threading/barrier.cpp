// Barrier, following CPython's algorithm: a round fills, then drains; reset and abort move
// it to resetting or broken. State transitions (all under lock_):
//
//   state      event                                        next
//   ---------  -------------------------------------------  ---------
//   filling    the last party arrives, the action succeeds   draining
//   filling    a wait times out, the action throws, abort()  broken
//   filling    reset() with threads waiting                  resetting
//   draining   the last released thread leaves               filling
//   resetting  the last waiting thread leaves                filling
//   broken     reset() with threads waiting                  resetting
//   broken     reset() with nobody waiting                   filling
#include "spindle/threading.hpp"

namespace spindle::threading {

Barrier::Barrier(std::size_t parties, BarrierOptions options)
    : parties_(parties), options_(std::move(options)) {
  if (parties == 0) throw std::invalid_argument("parties must be >= 1");
  if (options_.timeout && *options_.timeout < std::chrono::nanoseconds::zero()) {
    throw std::invalid_argument("'timeout' must be a non-negative duration");
  }
}

std::size_t Barrier::wait() {
  if (options_.timeout) return wait_until(spindle::detail::deadline_after(*options_.timeout));
  return wait_until(std::nullopt);
}

std::size_t Barrier::wait_until(std::optional<spindle::detail::Clock::time_point> deadline) {
  std::unique_lock guard(lock_);
  enter();
  const std::size_t index = count_++;
  struct Leave {
    Barrier* barrier;
    ~Leave() { barrier->leave(); }
  } leave_on_exit{this};
  if (index + 1 == parties_) {
    release_round();
  } else {
    wait_round(deadline);
  }
  return index;
}

// Waits while a previous round drains or a reset finishes.
void Barrier::enter() {
  while (state_ == State::draining || state_ == State::resetting)
    changed_.wait();
  if (state_ == State::broken) throw BrokenBarrierError();
}

void Barrier::release_round() {
  try {
    if (options_.action) options_.action();
    state_ = State::draining;
    changed_.notify_all();
  } catch (...) {
    break_barrier();
    throw;
  }
}

void Barrier::wait_round(std::optional<spindle::detail::Clock::time_point> deadline) {
  const auto released = [&] { return state_ != State::filling; };
  bool done;
  if (deadline) {
    done = changed_.wait_for(released, std::max(*deadline - spindle::detail::Clock::now(),
                                                spindle::detail::Clock::duration::zero()));
  } else {
    done = changed_.wait_for(released);
  }
  if (!done) {
    break_barrier();
    throw BrokenBarrierError();
  }
  if (state_ == State::broken || state_ == State::resetting) throw BrokenBarrierError();
}

// Called by every thread leaving wait(), normally or by an exception.
void Barrier::leave() {
  --count_;
  if (count_ == 0 && (state_ == State::draining || state_ == State::resetting)) {
    state_ = State::filling;
    changed_.notify_all();
  }
}

void Barrier::reset() {
  std::lock_guard guard(lock_);
  if (count_ > 0) {
    if (state_ == State::filling || state_ == State::broken) state_ = State::resetting;
  } else {
    state_ = State::filling;
  }
  changed_.notify_all();
}

void Barrier::abort() {
  std::lock_guard guard(lock_);
  break_barrier();
}

void Barrier::break_barrier() {
  state_ = State::broken;
  changed_.notify_all();
}

std::size_t Barrier::n_waiting() const {
  std::lock_guard guard(lock_);
  return state_ == State::filling ? count_ : 0;
}

bool Barrier::broken() const {
  std::lock_guard guard(lock_);
  return state_ == State::broken;
}

}  // namespace spindle::threading
