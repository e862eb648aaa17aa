// spindle::threading — Python's `threading` module for C++.
//
// Behaviour follows Python 3.13's documentation for the same names; where C++ forces another
// shape, docs/python-mapping.md says how and why. Every lock type here is also a standard
// Lockable (lock / unlock / try_lock), so std::scoped_lock and std::unique_lock are the
// `with lock:` of C++.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "spindle/detail/timeout.hpp"
#include "spindle/detail/unique_function.hpp"
#include "spindle/errors.hpp"

namespace spindle::threading {

class Thread;

namespace detail {
struct ThreadState;
struct AdoptTag {};
struct TargetTag {};

// Futex wait/wake on a 32-bit word of this process (Linux). wait returns when the word is not
// `expected`, on a wake-up, spuriously, or at `deadline` (nullptr: no deadline).
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                const spindle::detail::Clock::time_point* deadline);
void futex_wake(std::atomic<std::uint32_t>& word, int count);

// Cheap identity of the calling thread (pthread_self), without touching spindle's registry.
std::uint64_t current_ident() noexcept;
}  // namespace detail

// The largest timeout spindle honours; longer ones are clamped to it (threading.TIMEOUT_MAX).
inline constexpr std::chrono::nanoseconds TIMEOUT_MAX = spindle::detail::kTimeoutMax;

// ---------------------------------------------------------------------------------------
// Thread
// ---------------------------------------------------------------------------------------

// Keyword arguments of Thread's constructor. An empty name becomes "Thread-N"; an empty
// daemon flag inherits the creating thread's flag, as Python does.
// Every member has a default so a designated initializer may name any subset of them.
struct ThreadOptions {
  std::string name{};
  std::optional<bool> daemon{};
};

// A thread of control, as Python's threading.Thread.
//
// Target form: Thread t(fn, args...); the target and arguments are decay-copied, as
// std::thread does (use std::ref to share). Subclass form: derive, override run(), call
// start(). A subclass whose run() uses its own members must be joined before it is
// destroyed: ~Thread runs after the derived part is gone.
//
// An exception escaping run() is passed to the hook set with set_excepthook (by default it
// prints "Exception in thread NAME:" and the exception's type and what() to stderr); the
// process goes on. At program exit the process waits for every started non-daemon thread.
//
// Thread-safe: every method may be called from any thread.
class Thread {
 public:
  // Subclass form: run() is overridden.
  Thread();
  explicit Thread(ThreadOptions options);

  // Target form: run() calls target(args...).
  template <class F, class... A>
  requires std::invocable<std::decay_t<F>, std::decay_t<A>...>
  explicit Thread(F&& target, A&&... args)
      : Thread(ThreadOptions{}, detail::TargetTag{},
               spindle::detail::bind_call(std::forward<F>(target), std::forward<A>(args)...)) {}

  template <class F, class... A>
  requires std::invocable<std::decay_t<F>, std::decay_t<A>...> Thread(ThreadOptions options,
                                                                      F&& target, A&&... args)
      : Thread(std::move(options), detail::TargetTag{},
               spindle::detail::bind_call(std::forward<F>(target), std::forward<A>(args)...)) {}

  Thread(const Thread&) = delete;
  Thread& operator=(const Thread&) = delete;

  // Blocks: a started non-daemon thread that still runs is joined. A daemon thread that still
  // runs is detached and goes on (its Thread object is replaced for current_thread()).
  virtual ~Thread();

  // Starts the thread; returns once it runs. std::logic_error if called twice.
  void start();

  // Blocks until the thread ends. std::logic_error before start() or from the thread itself.
  void join();
  // Blocks until the thread ends or `timeout` passes; true when the thread has ended.
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return join_until(spindle::detail::deadline_after(timeout));
  }

  // True from just before run() starts until just after it ends. Non-blocking.
  bool is_alive() const;

  std::string name() const;
  void set_name(std::string name);
  bool daemon() const;
  // std::logic_error once the thread is started.
  void set_daemon(bool daemon);

  // pthread identity and kernel thread id; empty until the thread has started.
  std::optional<std::uint64_t> ident() const;
  std::optional<long> native_id() const;

 protected:
  // The thread's activity. The default calls the target given to the constructor.
  virtual void run();

 private:
  friend struct detail::ThreadState;
  friend Thread& current_thread();
  friend Thread& main_thread();

  Thread(ThreadOptions options, detail::TargetTag, spindle::detail::UniqueFunction target);
  Thread(detail::AdoptTag, std::shared_ptr<detail::ThreadState> state);
  bool join_until(spindle::detail::Clock::time_point deadline);

  std::shared_ptr<detail::ThreadState> state_;
  bool adopted_ = false;  // stands for a thread it did not start (main, dummy, orphaned daemon)
};

// The Thread object of the calling thread. For a thread spindle did not start (a
// std::thread, say) this is a daemon "Dummy-N" object that lives as long as the thread.
// Non-blocking; any thread.
Thread& current_thread();
// The Thread object of the thread that ran main(). Any thread.
Thread& main_thread();
// The number of Thread objects alive: started and not yet ended, the main thread and dummy
// threads included. Any thread.
std::size_t active_count();
// Every Thread alive, as active_count() counts them. The pointers stay valid while each
// thread is alive. Any thread.
std::vector<Thread*> enumerate();
// The calling thread's identity (pthread_self), and its kernel thread id. Any thread.
std::uint64_t get_ident();
long get_native_id();

// What the exception hook receives for an exception that escaped Thread::run().
struct ExceptHookArgs {
  std::exception_ptr exc_value;
  Thread* thread;
};
using ExceptHook = std::function<void(const ExceptHookArgs&)>;
// Replaces the hook called (in the failing thread) for an exception escaping run(); nullptr
// restores the default, which prints like Python. An exception thrown by the hook itself is
// reported on stderr. Any thread.
void set_excepthook(ExceptHook hook);
// The default hook (Python's threading.__excepthook__): prints
// "Exception in thread NAME:" then "TYPE: what()" to stderr.
void default_excepthook(const ExceptHookArgs& args);

// ---------------------------------------------------------------------------------------
// Lock and RLock
// ---------------------------------------------------------------------------------------

// A primitive lock: locked or unlocked, owned by no thread. Any thread may release it, as in
// Python (std::mutex forbids that). Uncontended acquire+release is two atomic operations;
// contended waiters spin briefly, then sleep on a futex. Not re-entrant: a thread that
// acquires it twice without releasing deadlocks, as in Python. Thread-safe.
class Lock {
 public:
  Lock() = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  // Blocks until the lock is acquired.
  void acquire() {
    std::uint32_t expected = kUnlocked;
    if (!state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
      acquire_contended(nullptr);
    }
  }
  // Blocks up to `timeout` (zero: never blocks); true when acquired.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    const std::chrono::nanoseconds checked = spindle::detail::to_timeout(timeout);
    if (try_lock()) return true;
    if (checked == checked.zero()) return false;
    const auto deadline = spindle::detail::Clock::now() + checked;
    return acquire_contended(&deadline);
  }
  // Releases the lock; any thread may. std::logic_error if it is not locked.
  void release() {
    const std::uint32_t previous = state_.exchange(kUnlocked, std::memory_order_release);
    if (previous != kLocked) release_slow(previous);
  }
  // True while locked. Non-blocking.
  bool locked() const { return state_.load(std::memory_order_relaxed) != kUnlocked; }

  // Lockable and TimedLockable.
  void lock() { acquire(); }
  void unlock() { release(); }
  bool try_lock() {
    std::uint32_t expected = kUnlocked;
    return state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return acquire(timeout);
  }
  template <class Clock, class Duration>
  bool try_lock_until(std::chrono::time_point<Clock, Duration> deadline) {
    return acquire(std::max(deadline - Clock::now(), Clock::duration::zero()));
  }

 private:
  static constexpr std::uint32_t kUnlocked = 0;
  static constexpr std::uint32_t kLocked = 1;
  static constexpr std::uint32_t kLockedWithWaiters = 2;

  bool acquire_contended(const spindle::detail::Clock::time_point* deadline);
  void release_slow(std::uint32_t previous);
  friend class Condition;

  std::atomic<std::uint32_t> state_{kUnlocked};
};

// A re-entrant lock: the owning thread may acquire it again; it is released when every
// acquire has had its release. Releasing it from a thread that does not own it is
// std::logic_error. Thread-safe.
class RLock {
 public:
  RLock() = default;
  RLock(const RLock&) = delete;
  RLock& operator=(const RLock&) = delete;

  // Blocks until acquired (at once when the caller already owns it).
  void acquire() {
    if (owned_by_caller()) {
      ++count_;
      return;
    }
    lock_.acquire();
    take_ownership(1);
  }
  // Blocks up to `timeout`; true when acquired.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    spindle::detail::to_timeout(timeout);  // a negative timeout throws, owner or not
    if (owned_by_caller()) {
      ++count_;
      return true;
    }
    if (!lock_.acquire(timeout)) return false;
    take_ownership(1);
    return true;
  }
  // std::logic_error when the caller does not own the lock.
  void release();
  // True while some thread owns it. Non-blocking.
  bool locked() const { return lock_.locked(); }

  void lock() { acquire(); }
  void unlock() { release(); }
  bool try_lock() { return acquire(std::chrono::nanoseconds::zero()); }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return acquire(timeout);
  }

 private:
  friend class Condition;
  bool owned_by_caller() const {
    return owner_.load(std::memory_order_relaxed) == detail::current_ident();
  }
  void take_ownership(std::size_t count) {
    owner_.store(detail::current_ident(), std::memory_order_relaxed);
    count_ = count;
  }
  // Releases every level at once and returns how many there were (Condition.wait).
  std::size_t release_all();

  Lock lock_;
  std::atomic<std::uint64_t> owner_{0};
  std::size_t count_ = 0;  // written only by the owner
};

// ---------------------------------------------------------------------------------------
// Condition
// ---------------------------------------------------------------------------------------

// A condition variable bound to a Lock or RLock (by default one it owns, an RLock, as
// Python). wait() and notify() require the caller to hold the lock (std::logic_error
// otherwise). wait() releases the lock — every level of an RLock — while it sleeps and
// re-acquires it before returning. Thread-safe.
class Condition {
 public:
  Condition();
  explicit Condition(Lock& lock);
  explicit Condition(RLock& lock);
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;
  ~Condition();

  // The underlying lock. acquire blocks; acquire(timeout) -> true when acquired.
  void acquire();
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return std::visit([&](auto* lock) { return lock->acquire(timeout); }, lock_);
  }
  void release();
  void lock() { acquire(); }
  void unlock() { release(); }
  bool try_lock() { return acquire(std::chrono::nanoseconds::zero()); }

  // Blocks until notified. Spurious wake-ups do not happen, as in Python.
  void wait() { wait_until(nullptr); }
  // Blocks until notified or `timeout` passes; false on timeout.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = spindle::detail::deadline_after(timeout);
    return wait_until(&deadline);
  }
  // Blocks until predicate() is true; returns it.
  template <class Predicate>
  bool wait_for(Predicate predicate) {
    while (!predicate())
      wait();
    return true;
  }
  // Blocks until predicate() is true or `timeout` passes; returns the last predicate().
  template <class Predicate, class Rep, class Period>
  bool wait_for(Predicate predicate, std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = spindle::detail::deadline_after(timeout);
    bool result = static_cast<bool>(predicate());
    while (!result) {
      if (spindle::detail::Clock::now() >= deadline) break;
      wait_until(&deadline);
      result = static_cast<bool>(predicate());
    }
    return result;
  }
  // Wakes up to `n` waiting threads (they run once they re-acquire the lock). Non-blocking.
  void notify(std::size_t n = 1);
  void notify_all();

 private:
  struct Waiter;
  bool wait_until(const spindle::detail::Clock::time_point* deadline);
  void check_owned(const char* operation);

  std::unique_ptr<RLock> own_lock_;
  std::variant<Lock*, RLock*> lock_;
  Waiter* first_waiter_ = nullptr;  // guarded by the lock
  Waiter* last_waiter_ = nullptr;
};

// ---------------------------------------------------------------------------------------
// Semaphore, BoundedSemaphore
// ---------------------------------------------------------------------------------------

// A counter that acquire() decrements, blocking while it is zero, and release() increments.
// A negative initial value is std::invalid_argument. Thread-safe.
class Semaphore {
 public:
  explicit Semaphore(std::ptrdiff_t value = 1);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  virtual ~Semaphore() = default;

  // Blocks while the counter is zero, then decrements it.
  void acquire();
  // Blocks up to `timeout` (zero: never blocks); true when the counter was decremented.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_until(spindle::detail::deadline_after(timeout));
  }
  // Adds `n` (n < 1: std::invalid_argument) and wakes up to `n` waiters. Non-blocking.
  virtual void release(std::ptrdiff_t n = 1);

  void lock() { acquire(); }
  void unlock() { release(); }
  bool try_lock() { return acquire(std::chrono::nanoseconds::zero()); }

  // The current counter (for tests and diagnostics; Python's private _value).
  std::ptrdiff_t value() const;

 protected:
  void add(std::ptrdiff_t n, std::optional<std::ptrdiff_t> bound);

 private:
  bool acquire_until(spindle::detail::Clock::time_point deadline);

  mutable std::mutex mutex_;
  std::condition_variable available_;
  std::ptrdiff_t value_;
  std::size_t waiters_ = 0;
};

// A Semaphore whose release() above the initial value is std::invalid_argument, which
// catches releasing more often than acquiring. Thread-safe.
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(std::ptrdiff_t value = 1);
  void release(std::ptrdiff_t n = 1) override;

 private:
  std::ptrdiff_t initial_value_;
};

// ---------------------------------------------------------------------------------------
// Event
// ---------------------------------------------------------------------------------------

// A flag threads wait on: set() wakes every waiter; clear() resets it. Thread-safe.
// An Event may be destroyed as soon as a waiter has seen it set, even while the thread that
// set it is still returning from set().
class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // Non-blocking.
  bool is_set() const { return (word_.load(std::memory_order_acquire) & kSet) != 0; }
  // Sets the flag and wakes every waiter. Non-blocking.
  void set();
  // Resets the flag. Non-blocking.
  void clear() { word_.fetch_and(~kSet, std::memory_order_release); }
  // Blocks until the flag is set.
  void wait() {
    if (!is_set()) wait_until(nullptr);
  }
  // Blocks until the flag is set or `timeout` passes; returns true when it was set (also when
  // clear() came before this waiter ran, as in Python).
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = spindle::detail::deadline_after(timeout);
    if (is_set()) return true;
    return wait_until(&deadline);
  }

 private:
  // One futex word: bit 0 the flag, bit 1 "someone sleeps", the rest a generation that every
  // set() advances, so a waiter woken by set() knows it even if clear() followed.
  static constexpr std::uint32_t kSet = 1;
  static constexpr std::uint32_t kWaiters = 2;
  static constexpr std::uint32_t kGeneration = 4;
  bool wait_until(const spindle::detail::Clock::time_point* deadline);

  std::atomic<std::uint32_t> word_{0};
};

// ---------------------------------------------------------------------------------------
// Timer
// ---------------------------------------------------------------------------------------

// A Thread that calls function(args...) once `interval` has passed, unless cancel() was
// called first. To repeat, subclass and override run() (see examples/threading), using
// interval(), finished() and call_function(). Thread-safe.
class Timer : public Thread {
 public:
  template <class Rep, class Period, class F, class... A>
  requires std::invocable<std::decay_t<F>, std::decay_t<A>...> Timer(
      std::chrono::duration<Rep, Period> interval, F&& function, A&&... args)
      : interval_(spindle::detail::to_timeout(interval, "interval")),
        function_(spindle::detail::bind_repeatable_call(std::forward<F>(function),
                                                        std::forward<A>(args)...)) {}
  // Blocks: cancels the timer and joins its thread if it was started.
  ~Timer() override;

  // Stops the timer if it is still waiting. Non-blocking; any thread.
  void cancel() { finished_.set(); }

  std::chrono::nanoseconds interval() const { return interval_; }
  // Set by cancel(), and by run() once the function has been called.
  Event& finished() { return finished_; }

 protected:
  void run() override;
  // Calls the function with its arguments (each call gets copies of the arguments).
  void call_function() { function_(); }

 private:
  std::chrono::nanoseconds interval_;
  spindle::detail::UniqueFunction function_;
  Event finished_;
};

// ---------------------------------------------------------------------------------------
// Barrier
// ---------------------------------------------------------------------------------------

// Raised in the threads waiting on a Barrier that is broken or reset.
class BrokenBarrierError : public spindle::Error {
 public:
  BrokenBarrierError() : spindle::Error("the barrier is broken") {}
  using spindle::Error::Error;
};

// Keyword arguments of Barrier: `action` runs in one of the threads (the last to arrive)
// when all have arrived, before any is released; `timeout` is wait()'s default.
struct BarrierOptions {
  std::function<void()> action{};
  std::optional<std::chrono::nanoseconds> timeout{};
};

// A fixed number of threads wait for one another, then all go on together; it can be used
// again at once. Thread-safe.
class Barrier {
 public:
  // parties == 0: std::invalid_argument.
  explicit Barrier(std::size_t parties, BarrierOptions options = {});
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  // Blocks until `parties` threads have called wait(); returns this thread's arrival index,
  // 0 to parties - 1. BrokenBarrierError if the barrier is or becomes broken or reset while
  // waiting, if the default timeout passes (which breaks it), or if the action throws (the
  // thread that ran the action gets the action's own exception).
  std::size_t wait();
  template <class Rep, class Period>
  std::size_t wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until(spindle::detail::deadline_after(timeout));
  }
  // Back to the initial, empty state; threads waiting get BrokenBarrierError. Non-blocking
  // unless threads are still leaving a previous round.
  void reset();
  // Puts the barrier into the broken state; waiters get BrokenBarrierError. Non-blocking.
  void abort();

  std::size_t parties() const { return parties_; }
  std::size_t n_waiting() const;
  bool broken() const;

 private:
  enum class State { filling, draining, resetting, broken };
  std::size_t wait_until(std::optional<spindle::detail::Clock::time_point> deadline);
  void enter();
  void release_round();
  void wait_round(std::optional<spindle::detail::Clock::time_point> deadline);
  void leave();
  void break_barrier();

  const std::size_t parties_;
  BarrierOptions options_;
  // An RLock, as in Python, so the action (run with it held) may call n_waiting() or broken().
  mutable RLock lock_;
  mutable Condition changed_{lock_};
  State state_ = State::filling;
  std::size_t count_ = 0;
};

// ---------------------------------------------------------------------------------------
// local<T>
// ---------------------------------------------------------------------------------------

namespace detail {
// The type-erased core of local<T>: one value per thread, keyed by the local's unique id.
class LocalStorage {
 public:
  LocalStorage();
  ~LocalStorage();
  LocalStorage(const LocalStorage&) = delete;
  LocalStorage& operator=(const LocalStorage&) = delete;

  // The calling thread's value, or nullptr when it has none yet.
  void* find() const;
  // Stores the calling thread's value; `destroy` destroys it when the thread ends or this
  // storage is destroyed, whichever is first.
  void* insert(void* value, void (*destroy)(void*));

  struct Control;

 private:
  std::shared_ptr<Control> control_;
};
}  // namespace detail

// Thread-local data, as Python's threading.local: each thread sees its own T. A thread's
// first get() creates its value with the factory (default: T{}); the value is destroyed when
// that thread ends, or when the local is destroyed. get() is thread-safe and non-blocking
// once the value exists.
template <class T>
class local {
 public:
  local() : factory_([] { return new T(); }) {}
  // `factory` makes each thread's first value: local<int> counter([] { return 42; });
  template <class Factory>
  requires std::is_convertible_v<std::invoke_result_t<Factory&>, T>
  explicit local(Factory factory)
      : factory_([factory = std::move(factory)]() mutable { return new T(factory()); }) {}
  local(const local&) = delete;
  local& operator=(const local&) = delete;

  T& get() {
    if (void* value = storage_.find()) return *static_cast<T*>(value);
    T* value = factory_();
    return *static_cast<T*>(
        storage_.insert(value, [](void* stored) { delete static_cast<T*>(stored); }));
  }
  T& operator*() { return get(); }
  T* operator->() { return &get(); }

 private:
  std::function<T*()> factory_;
  detail::LocalStorage storage_;
};

}  // namespace spindle::threading
