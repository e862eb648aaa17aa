// The type-independent core of a future: its state word, its callback list and how a thread
// waits for it. Shared by concurrent.futures' Future and every executor. See
// docs/design/thread-pool.md.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "spindle/detail/block_recycler.hpp"
#include "spindle/detail/timeout.hpp"

namespace spindle::detail {

// What a thread sleeps on while it waits for futures: a futex word that signal() sets.
// Shared-owned, because a future may signal it after the waiter gave up (timeout): a
// spurious signal is harmless, every wait loops.
class Waiter {
 public:
  // Sets the signal; wakes the owner if it sleeps (only then is there a system call). Any
  // thread.
  void signal() noexcept;
  // Blocks until signalled (or the deadline passes; nullptr: none), then clears the signal.
  // Returns false on timeout. Only the owning thread.
  bool wait(const Clock::time_point* deadline) noexcept;

 private:
  enum : std::uint32_t { idle, signalled, sleeping };
  std::atomic<std::uint32_t> word_{idle};
};

// The calling thread's waiter. A pool's worker installs its own (current_waiter_slot()), the
// one it sleeps on when idle, so one signal wakes it for new work or a finished future alike.
const std::shared_ptr<Waiter>& current_waiter();
std::shared_ptr<Waiter>& current_waiter_slot();

// A thread pool worker that can run queued work while it waits, so that a task blocking on
// work queued behind it in its own pool never deadlocks. Set on the pool's own threads.
class Helper {
 public:
  virtual ~Helper() = default;
  // Runs one queued task of the pool if there is one; true if it ran one.
  virtual bool run_one_queued() = 0;
  // set_waiting(true): this worker is about to sleep in a wait, so a submit must wake it;
  // returns false (and stays awake) if work is already queued. set_waiting(false): awake
  // again; returns true.
  virtual bool set_waiting(bool waiting) = 0;
};
Helper*& current_helper();

// Blocks until ready() is true (false: the deadline passed first). The caller arranges for
// current_waiter() to be signalled whenever ready() may have become true. On a pool's own
// threads, runs queued tasks of the pool meanwhile.
bool block_until(const std::function<bool()>& ready, const Clock::time_point* deadline);

class FutureCore;

// A node of a future's callback list, invoked exactly once when the future completes (or at
// once, if it already has).
class CallbackNode {
 public:
  virtual ~CallbackNode() = default;
  // The future completed: runs the callback, then frees the node (or hands it on). Once
  // invoked, the node is no longer the future's: `next` is free for its own use.
  virtual void invoke(FutureCore& future) noexcept = 0;
  // The future is destroyed without ever completing: frees the node.
  virtual void discard() noexcept { delete this; }
  CallbackNode* next = nullptr;
};

// The life of a future, in its status word:
//
//   status      event                                    next
//   ----------  ---------------------------------------  ----------
//   pending     cancel()                                 cancelled
//   pending     set_running_or_notify_cancel()           running
//   pending     set_result / set_exception (claim)       completing
//   running     set_result / set_exception (claim)       completing
//   completing  the value is stored                      finished
//
// cancelled and finished are final; completion callbacks run right after either is reached.
class FutureCore {
 public:
  enum Status : std::uint32_t { pending, running, cancelled, completing, finished };

  FutureCore() = default;
  // A task starts with two references: the executor's and its Future's (no retain needed).
  explicit FutureCore(std::uint32_t references) noexcept : references_(references) {}
  FutureCore(const FutureCore&) = delete;
  // Futures and tasks live in recycled blocks (see block_recycler.hpp). The virtual
  // destructor makes `delete` pass the most derived object's size.
  static void* operator new(std::size_t size) { return allocate_block(size); }
  static void operator delete(void* block, std::size_t size) noexcept {
    deallocate_block(block, size);
  }
  FutureCore& operator=(const FutureCore&) = delete;

  // Reference counting (Future handles, queues and callbacks each hold one).
  void retain() noexcept { references_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    // The count is 1 only when the caller holds the last reference: nobody else can copy it
    // then, so a plain load replaces the atomic decrement (the worker that runs a task whose
    // Future was dropped at once, the thread that destroys the last handle).
    if (references_.load(std::memory_order_acquire) == 1 ||
        references_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      destroy();
    }
  }

  // A task runs here (tasks override it). The default does nothing: a plain Future.
  virtual void execute() noexcept {}
  // Called again and again on a thread spinning in wait_done: a chance for the executor to
  // let that thread fetch the result itself (a process pool's call, whose result would
  // otherwise come through the pool's collector thread). True if it completed something.
  // Must be cheap when there is nothing to do. The default does nothing.
  virtual bool help_waiter() const noexcept { return false; }

  Status status() const noexcept {
    return static_cast<Status>(status_.load(std::memory_order_acquire));
  }
  bool done() const noexcept {
    const Status now = status();
    return now == finished || now == cancelled;
  }

  bool cancel() noexcept;
  // false: it was cancelled (waiters were notified at cancel()); true: now running.
  // std::logic_error in any other state.
  bool set_running_or_notify_cancel();
  // Claims the right to complete; InvalidStateError when already done.
  void claim_completion();
  // After a successful claim_completion and the value or exception stored.
  void publish(std::exception_ptr error) noexcept;

  // Blocks until done (or the deadline passes); false on timeout. A pool worker runs queued
  // tasks of its pool meanwhile.
  bool wait_done(const Clock::time_point* deadline) const;

  // Adds `node`; invokes it at once (in this thread) if the future is already done.
  void add_callback(CallbackNode* node) noexcept;

  std::exception_ptr error() const noexcept {
    retrieved_.store(true, std::memory_order_relaxed);
    return error_;
  }
  void mark_retrieved() const noexcept { retrieved_.store(true, std::memory_order_relaxed); }

  // A hint from the executor that the result is far off (its calls of this kind run for a
  // millisecond or more): a waiter then sleeps at once instead of spinning first, which on a
  // busy machine would only take the CPU from the work it waits for. Any thread.
  void expect_long_wait() noexcept { long_wait_.store(true, std::memory_order_relaxed); }
  bool long_wait_expected() const noexcept { return long_wait_.load(std::memory_order_relaxed); }

  // True when the caller holds the only reference, no callback is registered and the future
  // is still pending: nobody can see this future's state change any more (no handle is left
  // to copy, cancel or wait with), so a task may run without recording it.
  bool unobserved() const noexcept {
    return references_.load(std::memory_order_acquire) == 1 &&
           callbacks_.load(std::memory_order_acquire) == nullptr &&
           status_.load(std::memory_order_relaxed) == pending;
  }

 protected:
  // Reports an exception nobody retrieved (as asyncio does), then frees callback nodes that
  // never ran (the future never completed).
  virtual ~FutureCore();
  void destroy() noexcept { delete this; }

 private:
  void run_callbacks() noexcept;

  std::atomic<std::uint32_t> references_{1};
  std::atomic<std::uint32_t> status_{pending};
  std::atomic<CallbackNode*> callbacks_{nullptr};
  std::exception_ptr error_;
  mutable std::atomic<bool> retrieved_{false};
  std::atomic<bool> long_wait_{false};  // in retrieved_'s padding: no larger
};

// An owning pointer to a FutureCore (intrusive count).
template <class Core>
class CoreRef {
 public:
  CoreRef() = default;
  explicit CoreRef(Core* core) noexcept : core_(core) {}  // adopts one reference
  CoreRef(const CoreRef& other) noexcept : core_(other.core_) {
    if (core_ != nullptr) core_->retain();
  }
  CoreRef(CoreRef&& other) noexcept : core_(std::exchange(other.core_, nullptr)) {}
  CoreRef& operator=(CoreRef other) noexcept {
    std::swap(core_, other.core_);
    return *this;
  }
  ~CoreRef() {
    if (core_ != nullptr) core_->release();
  }
  Core* get() const noexcept { return core_; }
  Core* operator->() const noexcept { return core_; }
  Core* detach() noexcept { return std::exchange(core_, nullptr); }

 private:
  Core* core_ = nullptr;
};

// True when two of state_at(0) ... state_at(count - 1), addresses of future states, are the
// same. Fast for the usual case of many distinct futures allocated close together: distinct
// states lie at least sizeof(FutureCore) >= kGranule bytes apart, so each owns a bit of its
// own in a bitmap of the address range in kGranule steps. Futures allocated together span a
// range a few times their count; a bitmap of up to 64 bits per future finds duplicates in
// one pass, cache-friendly. Addresses scattered wider apart are sorted instead.
template <class StateAt>
bool has_duplicate_states(std::size_t count, StateAt state_at) {
  if (count < 2) return false;
  const auto address = [&](std::size_t i) {
    return reinterpret_cast<std::uintptr_t>(static_cast<const void*>(state_at(i)));
  };
  std::uintptr_t low = address(0);
  std::uintptr_t high = low;
  for (std::size_t i = 1; i < count; ++i) {
    low = std::min(low, address(i));
    high = std::max(high, address(i));
  }
  constexpr std::uintptr_t kGranule = 32;
  static_assert(sizeof(FutureCore) >= kGranule);
  const std::uintptr_t bits = (high - low) / kGranule + 1;
  if (bits / 64 <= count) {
    std::vector<std::uint64_t> seen(bits / 64 + 1);
    for (std::size_t i = 0; i < count; ++i) {
      const std::uintptr_t bit = (address(i) - low) / kGranule;
      const std::uint64_t mask = std::uint64_t{1} << (bit % 64);
      if ((seen[bit / 64] & mask) != 0) return true;
      seen[bit / 64] |= mask;
    }
    return false;
  }
  std::vector<std::uintptr_t> sorted(count);
  for (std::size_t i = 0; i < count; ++i)
    sorted[i] = address(i);
  std::sort(sorted.begin(), sorted.end());
  return std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end();
}

// True when the process may run on one CPU only (its affinity mask, read once): a thread
// that spins there only delays the thread it waits for, so waits yield at once.
bool single_cpu_process() noexcept;

// Reports an exception thrown by a done-callback, as Python logs it; the other callbacks go on.
void report_callback_exception(std::exception_ptr error) noexcept;

}  // namespace spindle::detail
