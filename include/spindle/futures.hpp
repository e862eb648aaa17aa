// spindle::futures — Python's `concurrent.futures` for C++: Future, Executor,
// ThreadPoolExecutor, as_completed, wait.
//
// Behaviour follows Python 3.13's documentation; docs/python-mapping.md lists the
// differences. The pool's design is in docs/design/thread-pool.md.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "spindle/detail/completion_set.hpp"
#include "spindle/detail/future_core.hpp"
#include "spindle/detail/timeout.hpp"
#include "spindle/errors.hpp"

namespace spindle::futures {

using spindle::TimeoutError;

// The future was cancelled (concurrent.futures.CancelledError).
class CancelledError : public spindle::Error {
 public:
  CancelledError() : spindle::Error("the future was cancelled") {}
  using spindle::Error::Error;
};

// An operation not allowed in the future's current state, such as set_result() twice.
class InvalidStateError : public spindle::Error {
 public:
  using spindle::Error::Error;
};

// The executor can no longer run work.
class BrokenExecutor : public spindle::Error {
 public:
  using spindle::Error::Error;
};

// A ThreadPoolExecutor whose worker failed to initialise.
class BrokenThreadPool : public BrokenExecutor {
 public:
  using BrokenExecutor::BrokenExecutor;
};

namespace internal {
using spindle::detail::Clock;

// Storage for a future's value; nothing for void.
template <class T>
class ValueStorage {
 public:
  ValueStorage() noexcept {}
  ~ValueStorage() {
    if (has_value_) value_.~T();
  }
  template <class... A>
  void emplace(A&&... args) {
    ::new (static_cast<void*>(&value_)) T(std::forward<A>(args)...);
    has_value_ = true;
  }
  T& get() noexcept { return value_; }

 private:
  union {
    T value_;
  };
  bool has_value_ = false;
};
template <>
class ValueStorage<void> {};

template <class T>
class FutureState : public spindle::detail::FutureCore {
 public:
  FutureState() = default;
  explicit FutureState(std::uint32_t references) noexcept : FutureCore(references) {}
  ValueStorage<T> storage;
  std::atomic<bool> storage_taken{false};  // a move-only result was moved out
};

// A task: the callable, stored inline, and the future it completes — one allocation.
template <class R, class F>
class TaskState final : public FutureState<R> {
 public:
  // Two references: the executor's and the returned Future's.
  explicit TaskState(F&& function) : FutureState<R>(2), function_(std::move(function)) {}
  void execute() noexcept override {
    if (this->unobserved()) {
      // Its Future was dropped (a fire-and-forget submit): run the call without the state
      // changes nobody can see. A failure still completes the future, so that its exception
      // is reported as never retrieved.
      try {
        static_cast<void>(std::invoke(*function_));
        function_.reset();
        return;
      } catch (...) {
        function_.reset();
        this->claim_completion();
        this->publish(std::current_exception());
        return;
      }
    }
    bool start = false;
    try {
      start = this->set_running_or_notify_cancel();
    } catch (const std::logic_error&) {
      return;  // completed or claimed through the Future already: it is not ours to run
    }
    if (!start) return;  // cancelled
    try {
      if constexpr (std::is_void_v<R>) {
        std::invoke(*function_);
        function_.reset();  // release what the callable holds before completing
        this->claim_completion();
      } else {
        R value = std::invoke(*function_);
        function_.reset();
        this->claim_completion();
        this->storage.emplace(std::move(value));
      }
      this->publish(nullptr);
    } catch (...) {
      function_.reset();
      try {
        this->claim_completion();
        this->publish(std::current_exception());
      } catch (...) {  // already completed elsewhere (set_result by the user): keep that
      }
    }
  }

 private:
  std::optional<F> function_;
};
}  // namespace internal

template <class T>
class Future;

namespace internal {
template <class T>
Future<T> adopt_future(FutureState<T>* state);
template <class T>
FutureState<T>* state_of(const Future<T>& future);
}  // namespace internal

// A handle to the eventual result of a call (concurrent.futures.Future). Copies share one
// result; == compares identity. Every method is thread-safe.
//
// result() returns a copy of the value, or, for a move-only T, moves it out: the first
// result() takes it and a later one throws InvalidStateError.
template <class T>
class Future {
 public:
  // A fresh pending future, as Python's Future(): complete it with set_result/set_exception.
  Future() : state_(new internal::FutureState<T>()) {}

  // Blocks until done; returns the value, rethrows the call's exception (its own type), or
  // throws CancelledError. A worker of a spindle pool runs queued tasks while it waits.
  T result() const {
    state_->wait_done(nullptr);
    return take_result();
  }
  // As result(), but TimeoutError once `timeout` has passed with the future not done.
  template <class Rep, class Period>
  T result(std::chrono::duration<Rep, Period> timeout) const {
    const auto deadline = spindle::detail::deadline_after(timeout);
    if (!state_->wait_done(&deadline)) throw TimeoutError();
    return take_result();
  }
  // Blocks until done; the call's exception, or nullptr if it succeeded. CancelledError if
  // cancelled.
  std::exception_ptr exception() const {
    state_->wait_done(nullptr);
    return take_exception();
  }
  template <class Rep, class Period>
  std::exception_ptr exception(std::chrono::duration<Rep, Period> timeout) const {
    const auto deadline = spindle::detail::deadline_after(timeout);
    if (!state_->wait_done(&deadline)) throw TimeoutError();
    return take_exception();
  }

  // Cancels the call if it has not started; true if the future is (now) cancelled.
  // Non-blocking; runs the done callbacks in this thread if it cancels.
  bool cancel() { return state_->cancel(); }
  bool cancelled() const { return state_->status() == spindle::detail::FutureCore::cancelled; }
  bool running() const { return state_->status() == spindle::detail::FutureCore::running; }
  bool done() const { return state_->done(); }

  // Calls callback(future) once the future is done: at once, in this thread, if it already
  // is; otherwise in the thread that completes or cancels it. An exception from the callback
  // is reported on stderr and does not stop the other callbacks.
  void add_done_callback(std::function<void(const Future&)> callback) {
    // The node holds no reference to this future (that would be a cycle for a future that
    // never completes); it makes a handle from the core when it is invoked.
    struct Node final : spindle::detail::CallbackNode {
      explicit Node(std::function<void(const Future&)> function) : function(std::move(function)) {}
      void invoke(spindle::detail::FutureCore& core) noexcept override {
        core.retain();
        const Future future(AdoptTag{}, static_cast<internal::FutureState<T>*>(&core));
        try {
          function(future);
        } catch (...) {
          spindle::detail::report_callback_exception(std::current_exception());
        }
        delete this;
      }
      std::function<void(const Future&)> function;
    };
    if (!callback) throw std::invalid_argument("add_done_callback needs a callable");
    state_->add_callback(new Node(std::move(callback)));
  }

  // For executors and tests, as in Python. set_running_or_notify_cancel: false if the
  // future was cancelled, true if it is now running; std::logic_error if already running or
  // done.
  bool set_running_or_notify_cancel() { return state_->set_running_or_notify_cancel(); }
  // InvalidStateError if the future is already done.
  template <class U = T>
  requires(!std::is_void_v<U>) void set_result(U value) {
    state_->claim_completion();
    state_->storage.emplace(std::move(value));
    state_->publish(nullptr);
  }
  template <class U = T>
  requires std::is_void_v<U>
  void set_result() {
    state_->claim_completion();
    state_->publish(nullptr);
  }
  void set_exception(std::exception_ptr error) {
    if (!error) throw std::invalid_argument("set_exception needs an exception");
    state_->claim_completion();
    state_->publish(std::move(error));
  }

  friend bool operator==(const Future& a, const Future& b) {
    return a.state_.get() == b.state_.get();
  }

 private:
  template <class U>
  friend Future<U> internal::adopt_future(internal::FutureState<U>*);
  template <class U>
  friend internal::FutureState<U>* internal::state_of(const Future<U>&);
  struct AdoptTag {};
  Future(AdoptTag, internal::FutureState<T>* state) : state_(state) {}

  T take_result() const {
    if (state_->status() == spindle::detail::FutureCore::cancelled) throw CancelledError();
    if (auto error = state_->error()) std::rethrow_exception(error);
    if constexpr (std::is_void_v<T>) {
      return;
    } else if constexpr (std::is_copy_constructible_v<T>) {
      return state_->storage.get();
    } else {
      if (state_->storage_taken.exchange(true)) {
        throw InvalidStateError("the move-only result was already taken");
      }
      return std::move(state_->storage.get());
    }
  }
  std::exception_ptr take_exception() const {
    if (state_->status() == spindle::detail::FutureCore::cancelled) throw CancelledError();
    return state_->error();
  }
  spindle::detail::CoreRef<internal::FutureState<T>> state_;
};

namespace internal {
template <class T>
Future<T> adopt_future(FutureState<T>* state) {
  return Future<T>(typename Future<T>::AdoptTag{}, state);
}
template <class T>
FutureState<T>* state_of(const Future<T>& future) {
  return future.state_.get();
}
}  // namespace internal

// ---------------------------------------------------------------------------------------
// as_completed and wait
// ---------------------------------------------------------------------------------------

enum class ReturnWhen { FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED };
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::FIRST_COMPLETED;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::FIRST_EXCEPTION;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::ALL_COMPLETED;

// Keyword arguments of wait(). Every member has a default.
struct WaitOptions {
  std::optional<std::chrono::nanoseconds> timeout{};
  ReturnWhen return_when = ALL_COMPLETED;
};

template <class F>
struct DoneAndNotDone {
  std::vector<F> done;
  std::vector<F> not_done;
};

namespace internal {

template <class R>
using FutureOf = std::remove_cvref_t<std::ranges::range_value_t<R>>;

template <class F>
bool has_duplicates(const std::vector<F>& futures) {
  return spindle::detail::has_duplicate_states(futures.size(),
                                               [&](std::size_t i) { return state_of(futures[i]); });
}

// `all` without duplicates, in input order. Duplicates are rare: a look at the state
// addresses alone (has_duplicates) finds whether there are any; only then does a hash set
// drop them.
template <class F>
std::vector<F> without_duplicates(std::vector<F> all) {
  if (!has_duplicates(all)) return all;
  std::vector<F> unique;
  std::unordered_set<const void*> seen;
  seen.reserve(all.size());
  for (auto& future : all) {
    if (seen.insert(state_of(future)).second) unique.push_back(std::move(future));
  }
  return unique;
}

template <class R>
std::vector<FutureOf<R>> unique_futures(R&& futures) {
  std::vector<FutureOf<R>> all;
  if constexpr (std::ranges::sized_range<R>) all.reserve(std::ranges::size(futures));
  for (auto&& future : futures)
    all.push_back(future);
  return without_duplicates(std::move(all));
}

// The range as_completed returns. Input range; begin() and ++ block for the next future.
template <class F>
class AsCompleted {
 public:
  template <class R>
  AsCompleted(R&& futures, std::optional<Clock::time_point> deadline) : deadline_(deadline) {
    if constexpr (std::ranges::sized_range<R>) {
      // One pass over the futures, whose states are likely out of this core's cache: copy
      // each and file it as done or watched. Duplicates, rare, are found afterwards from
      // the addresses alone; then the pass starts again without them.
      futures_.reserve(std::ranges::size(futures));
      completions_ = spindle::detail::make_completion_set(std::ranges::size(futures));
      for (auto&& future : futures) {
        futures_.push_back(future);
        file(futures_.size() - 1);
      }
      if (!has_duplicates(futures_)) return;
      ready_.clear();
    } else {
      for (auto&& future : futures)
        futures_.push_back(future);
    }
    futures_ = without_duplicates(std::move(futures_));
    // A set closed with futures still watched is freed when they complete.
    completions_ = spindle::detail::make_completion_set(futures_.size());
    for (std::size_t i = 0; i < futures_.size(); ++i)
      file(i);
  }

  class iterator {
   public:
    using value_type = F;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(AsCompleted* owner) : owner_(owner) { advance(); }
    const F& operator*() const { return owner_->futures_[index_]; }
    const F* operator->() const { return &owner_->futures_[index_]; }
    iterator& operator++() {
      advance();
      return *this;
    }
    void operator++(int) { advance(); }
    friend bool operator==(const iterator& it, std::default_sentinel_t) {
      return it.owner_ == nullptr;
    }

   private:
    void advance() {
      if (owner_->yielded_ == owner_->futures_.size()) {
        owner_ = nullptr;
        return;
      }
      index_ = owner_->next_index();
    }
    AsCompleted* owner_ = nullptr;
    std::size_t index_ = 0;
  };

  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const { return {}; }

 private:
  // Already-done futures come first, in input order; the others as they complete. A future
  // that completes after the check reaches the set through its node.
  void file(std::size_t index) {
    if (futures_[index].done()) {
      ready_.push_back(index);
    } else {
      completions_->watch(*state_of(futures_[index]), index);
    }
  }

  std::size_t next_index() {
    if (position_ == ready_.size()) {
      ready_.clear();
      position_ = 0;
      completions_->take(ready_);
      if (ready_.empty()) {
        const Clock::time_point* deadline = deadline_ ? &*deadline_ : nullptr;
        if (!spindle::detail::block_until([this] { return completions_->any(); }, deadline)) {
          throw TimeoutError(std::to_string(futures_.size() - yielded_) + " (of " +
                             std::to_string(futures_.size()) + ") futures unfinished");
        }
        completions_->take(ready_);
      }
    }
    ++yielded_;
    return ready_[position_++];
  }

  std::vector<F> futures_;
  std::optional<Clock::time_point> deadline_;
  // Declared after futures_, so closed before the futures go.
  spindle::detail::CompletionSetHandle completions_;
  std::vector<std::size_t> ready_;  // completed, not yet yielded: ready_[position_...]
  std::size_t position_ = 0;
  std::size_t yielded_ = 0;
};

}  // namespace internal

// Yields each future (duplicates once) as it completes: those already done first. The step
// that would wait past `timeout` (counted from this call) throws TimeoutError. Blocks in
// begin() and ++; a worker of a spindle pool runs queued tasks while it waits.
template <class R>
auto as_completed(R&& futures) {
  return internal::AsCompleted<internal::FutureOf<R>>(futures, std::nullopt);
}
template <class R, class Rep, class Period>
auto as_completed(R&& futures, std::chrono::duration<Rep, Period> timeout) {
  const auto deadline = spindle::detail::deadline_after(timeout);
  return internal::AsCompleted<internal::FutureOf<R>>(futures, deadline);
}

// Blocks until return_when is satisfied or the timeout passes; returns the futures that are
// done and those that are not, each in input order without duplicates.
template <class R>
auto wait(R&& futures, WaitOptions options = {}) {
  using F = internal::FutureOf<R>;
  std::optional<internal::Clock::time_point> deadline;
  if (options.timeout) deadline = spindle::detail::deadline_after(*options.timeout);
  std::vector<F> unique = internal::unique_futures(futures);

  const auto failed = [](const F& future) {
    return !future.cancelled() && internal::state_of(future)->error() != nullptr;
  };
  // Counts a done future; true once return_when is satisfied.
  std::size_t done = 0;
  const auto count_done = [&](const F& future) {
    ++done;
    return options.return_when == FIRST_COMPLETED ||
           (options.return_when == FIRST_EXCEPTION && failed(future)) || done == unique.size();
  };
  bool satisfied = unique.empty();
  std::vector<std::size_t> pending;
  for (std::size_t i = 0; i < unique.size() && !satisfied; ++i) {
    if (unique[i].done()) {
      satisfied = count_done(unique[i]);
    } else {
      pending.push_back(i);
    }
  }

  const bool expired = deadline && internal::Clock::now() >= *deadline;
  if (!expired && !satisfied) {
    // The futures not done yet report their completion to one set; this thread counts them.
    spindle::detail::CompletionSetHandle completions =
        spindle::detail::make_completion_set(unique.size());
    for (std::size_t i : pending)
      completions->watch(*internal::state_of(unique[i]), i);
    std::vector<std::size_t> completed;
    const auto take_completed = [&] {
      completed.clear();
      completions->take(completed);
      for (std::size_t i : completed) {
        if (count_done(unique[i])) return true;
      }
      return false;
    };
    spindle::detail::block_until(take_completed, deadline ? &*deadline : nullptr);
  }
  DoneAndNotDone<F> result;
  for (F& future : unique)
    (future.done() ? result.done : result.not_done).push_back(future);
  return result;
}

// ---------------------------------------------------------------------------------------
// Executor
// ---------------------------------------------------------------------------------------

// Keyword arguments of Executor::map. chunksize: empty means 1 for threads; 0 is
// std::invalid_argument.
struct MapOptions {
  std::optional<std::chrono::nanoseconds> timeout{};
  std::optional<std::size_t> chunksize{};
};

namespace internal {
// What map yields for a call returning void.
template <class R>
using MapValue = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

// The lazy range map() returns: results in input order. Destroying it cancels the calls that
// have not started.
template <class R>
class MapResults {
 public:
  MapResults(std::vector<Future<R>> futures, std::optional<Clock::time_point> deadline)
      : futures_(std::move(futures)), deadline_(deadline) {}
  MapResults(MapResults&&) noexcept = default;
  MapResults& operator=(MapResults&&) noexcept = default;
  // Last to first, as Python: cancelling front to back would let a worker start call i + 1
  // while call i is being cancelled.
  ~MapResults() {
    for (std::size_t i = futures_.size(); i > consumed_; --i) {
      futures_[i - 1].cancel();
    }
  }

  class iterator {
   public:
    using value_type = MapValue<R>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(MapResults* owner) : owner_(owner) {
      if (owner_->consumed_ == owner_->futures_.size()) owner_ = nullptr;
    }
    // Blocks for this element's result; rethrows its exception; TimeoutError past the
    // deadline counted from the map() call.
    value_type operator*() const { return owner_->get(owner_->consumed_); }
    iterator& operator++() {
      if (++owner_->consumed_ == owner_->futures_.size()) owner_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) {
      return it.owner_ == nullptr;
    }

   private:
    MapResults* owner_ = nullptr;
  };

  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const { return {}; }
  std::size_t size() const { return futures_.size(); }

 private:
  // As Python's _result_or_cancel: a call whose result could not be had in time (or at all)
  // is cancelled, so it does not run later for nobody.
  MapValue<R> get(std::size_t index) {
    const Future<R>& future = futures_[index];
    try {
      if constexpr (std::is_void_v<R>) {
        wait_for(future);
        return {};
      } else {
        return wait_for(future);
      }
    } catch (...) {
      Future<R>(future).cancel();
      throw;
    }
  }
  R wait_for(const Future<R>& future) {
    if (deadline_)
      return future.result(std::max(*deadline_ - Clock::now(), Clock::duration::zero()));
    return future.result();
  }

  std::vector<Future<R>> futures_;
  std::optional<Clock::time_point> deadline_;
  std::size_t consumed_ = 0;
};
}  // namespace internal

class Executor;

namespace internal {
// Executors that run calls in other processes (multiprocessing's ProcessPoolExecutor) cannot
// take a closure: Executor::submit hands them the call itself through submit_elsewhere, found
// by argument-dependent lookup. <spindle/multiprocessing.hpp> overloads it (ElsewhereTag)
// for the calls it can ship; this fallback refuses the others.
struct ElsewhereFallback {};
struct ElsewhereTag : ElsewhereFallback {};
template <class R, class F, class... A>
[[noreturn]] Future<R> submit_elsewhere(ElsewhereFallback, std::type_identity<R>, Executor&, F&&,
                                        A&&...) {
  throw std::invalid_argument(
      "this executor runs calls in other processes: submit a plain function or a lambda "
      "without captures, with serializable arguments and result");
}
}  // namespace internal

// An object that runs calls asynchronously (concurrent.futures.Executor). submit() and map()
// are thread-safe and never block. A derived executor's destructor calls shutdown(true).
class Executor {
 public:
  Executor() = default;
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  virtual ~Executor() = default;

  // Schedules function(args...) and returns its Future. The callable and arguments are
  // decay-copied (std::ref to share); move-only ones work, and so do member functions through
  // std::invoke. std::logic_error after shutdown; BrokenExecutor if the executor is broken.
  template <class F, class... A>
  requires std::invocable<std::decay_t<F>, std::decay_t<A>...>
  auto submit(F&& function, A&&... args) {
    // A call returning a reference yields a copy of the value, as std::async does.
    using R = std::remove_cvref_t<std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>>;
    if (runs_calls_elsewhere_) [[unlikely]] {
      return submit_elsewhere(internal::ElsewhereTag{}, std::type_identity<R>{}, *this,
                              std::forward<F>(function), std::forward<A>(args)...);
    }
    auto* task = make_task<R>(std::forward<F>(function), std::forward<A>(args)...);
    Future<R> future = internal::adopt_future<R>(task);  // the Future's reference
    try {
      enqueue(task);
    } catch (...) {
      task->release();
      throw;
    }
    return future;
  }

  // Calls function with an element of each iterable (stopping at the shortest), submitting
  // every call at once; returns a lazy range of the results in input order (std::monostate
  // for void). An element's exception is rethrown when it is reached; `timeout` counts from
  // this call. Destroying the range cancels the calls that have not started.
  template <class F, class... Rs>
  requires(sizeof...(Rs) > 0 && (std::ranges::input_range<Rs> && ...)) auto map(F&& function,
                                                                                Rs&&... iterables) {
    return map(MapOptions{}, std::forward<F>(function), std::forward<Rs>(iterables)...);
  }
  template <class F, class... Rs>
  requires(sizeof...(Rs) > 0 && (std::ranges::input_range<Rs> && ...)) auto map(MapOptions options,
                                                                                F&& function,
                                                                                Rs&&... iterables) {
    if (options.chunksize && *options.chunksize == 0) {
      throw std::invalid_argument("chunksize must be >= 1");
    }
    std::optional<internal::Clock::time_point> deadline;
    if (options.timeout) deadline = spindle::detail::deadline_after(*options.timeout);
    using Shared = std::decay_t<F>;
    using R =
        std::remove_cvref_t<std::invoke_result_t<Shared&, std::ranges::range_reference_t<Rs>...>>;
    auto shared = std::make_shared<Shared>(std::forward<F>(function));
    std::vector<Future<R>> futures;
    auto iterators = std::make_tuple(std::ranges::begin(iterables)...);
    const auto ends = std::make_tuple(std::ranges::end(iterables)...);
    const auto any_at_end = [&]<std::size_t... I>(std::index_sequence<I...>) {
      return ((std::get<I>(iterators) == std::get<I>(ends)) || ...);
    };
    constexpr auto indices = std::index_sequence_for<Rs...>{};
    while (!any_at_end(indices)) {
      futures.push_back(std::apply(
          [&](auto&... its) -> Future<R> {
            if constexpr (std::is_copy_constructible_v<Shared>) {
              if (runs_calls_elsewhere_) return submit(*shared, *its...);  // ships the function
            }
            return submit([shared](auto... values) -> R { return std::invoke(*shared, values...); },
                          *its...);
          },
          iterators));
      std::apply([](auto&... its) { (++its, ...); }, iterators);
    }
    return internal::MapResults<R>(std::move(futures), deadline);
  }

  // Stops accepting work. wait: blocks until every pending call has run and the workers are
  // gone. cancel_futures: cancels the calls that have not started. Safe to call again.
  virtual void shutdown(bool wait = true, bool cancel_futures = false) = 0;

 private:
  // The task for function(args...): one block holding the future's state and the callable
  // with decay-copies of the arguments (none stored for a call without arguments, so a
  // lambda capturing a pointer fits a 64-byte block).
  template <class R, class F, class... A>
  static internal::FutureState<R>* make_task(F&& function, A&&... args) {
    if constexpr (sizeof...(A) == 0) {
      auto call = [function = std::forward<F>(function)]() mutable -> R {
        return std::invoke(std::move(function));
      };
      return new internal::TaskState<R, decltype(call)>(std::move(call));
    } else {
      auto call = [function = std::forward<F>(function),
                   arguments =
                       std::tuple<std::decay_t<A>...>(std::forward<A>(args)...)]() mutable -> R {
        return std::apply(
            [&](auto&... stored) -> R {
              return std::invoke(std::move(function), std::move(stored)...);
            },
            arguments);
      };
      return new internal::TaskState<R, decltype(call)>(std::move(call));
    }
  }

 protected:
  // For executors that run calls in other processes (see internal::ElsewhereTag).
  explicit Executor(bool runs_calls_elsewhere) noexcept
      : runs_calls_elsewhere_(runs_calls_elsewhere) {}

  // Takes one reference to `task` and arranges for task->execute() to run. Throws (taking
  // nothing) when it cannot: std::logic_error after shutdown, BrokenExecutor when broken.
  virtual void enqueue(spindle::detail::FutureCore* task) = 0;

 private:
  bool runs_calls_elsewhere_ = false;
};

// ---------------------------------------------------------------------------------------
// ThreadPoolExecutor
// ---------------------------------------------------------------------------------------

// Keyword arguments of ThreadPoolExecutor. Every member has a default.
struct ThreadPoolOptions {
  // Empty: min(32, cpu_count() + 4). 0: std::invalid_argument.
  std::optional<std::size_t> max_workers{};
  // Workers are named PREFIX_N; empty: "ThreadPoolExecutor-K".
  std::string thread_name_prefix{};
  // Runs first in every worker; if it throws, the pool is broken (BrokenThreadPool for
  // pending and new work).
  std::function<void()> initializer{};
};

namespace internal {
class ThreadPool;
}

// A pool of threads running submitted calls (concurrent.futures.ThreadPoolExecutor).
// Workers start lazily, up to max_workers, and sleep when idle (no CPU use). A call that
// blocks on a future of its own pool (result(), wait, as_completed) runs queued calls
// meanwhile, so recursive submit-and-wait never deadlocks. Thread-safe.
class ThreadPoolExecutor : public Executor {
 public:
  explicit ThreadPoolExecutor(ThreadPoolOptions options = {});
  // Blocks: shutdown(true).
  ~ThreadPoolExecutor() override;
  void shutdown(bool wait = true, bool cancel_futures = false) override;
  // The worker limit.
  std::size_t max_workers() const;

 protected:
  void enqueue(spindle::detail::FutureCore* task) override;

 private:
  std::shared_ptr<internal::ThreadPool> pool_;
};

}  // namespace spindle::futures

namespace spindle {
using namespace futures;  // spindle::ThreadPoolExecutor works too
}

template <class T>
struct std::hash<spindle::futures::Future<T>> {
  std::size_t operator()(const spindle::futures::Future<T>& future) const noexcept {
    return std::hash<const void*>()(spindle::futures::internal::state_of(future));
  }
};
