// spindle::asyncio — Python's asyncio for C++20 coroutines, on a libuv event loop.
//
//   asyncio::Task<int> fetch(int id) { co_await asyncio::sleep(1s); co_return id; }
//   asyncio::Task<> main_task() {
//     auto [a, b] = co_await asyncio::gather(fetch(1), fetch(2));   // both in about 1 s
//   }
//   asyncio::run(main_task());
//
// Every coroutine function returns Task<T>. A Task is lazy: awaiting it runs it inline, as
// `await coro` does; create_task() schedules it to run concurrently and gives back a handle
// with cancel(), done(), result()... Cancellation is Python's: CancelledError is thrown at the
// point where the task is suspended, travels inward to what it awaits and outward to whoever
// awaits it. CancelledError is not a std::exception: `catch (const std::exception&)` does not
// swallow it. One loop per thread; everything here runs on the loop's thread unless it says
// otherwise. Behaviour follows Python 3.13's asyncio documentation; docs/python-mapping.md
// lists the differences, docs/design/asyncio.md the design.
//
// With g++ 12, name a lambda that captures by value (or a braced struct that owns memory)
// before passing it in a co_await expression: g++ 12 destroys such temporaries twice
// (docs/python-mapping.md, "Compilers").
#pragma once

#include <chrono>
#include <concepts>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "spindle/detail/asyncio_core.hpp"

namespace spindle::asyncio {

using futures::ALL_COMPLETED;
using futures::FIRST_COMPLETED;
using futures::FIRST_EXCEPTION;
using futures::ReturnWhen;
using futures::WaitOptions;

namespace internal {
struct TaskAccess;
template <class T>
class TaskAwaitable;
// A lazy Task<void> made by sleep() holds only its delay: no coroutine frame is allocated
// unless it has to be scheduled (create_task wraps it in a coroutine then). This keeps a
// sleeping task to one frame.
template <class T>
struct LazySleep {
  bool has() const noexcept { return false; }
};
template <>
struct LazySleep<void> {
  std::int64_t nanoseconds = -1;
  bool has() const noexcept { return nanoseconds >= 0; }
};
}  // namespace internal

// The return type of every coroutine function (a coroutine, and once scheduled, an
// asyncio.Task). Move-only.
//  - Lazy (as returned by the coroutine function): nothing runs until it is awaited, which
//    runs it inline in the awaiting task, or passed to create_task. Awaitable once.
//  - Scheduled (returned by create_task): runs concurrently on the loop. The handle may be
//    awaited any number of times, as an lvalue, and stays valid after the task is done.
//    Dropping it detaches the task: it runs on, and an exception nobody retrieved is
//    reported through the loop's exception handler.
// The members below need a scheduled task (std::logic_error otherwise). Loop thread only.
template <class T = void>
class [[nodiscard]] Task {
 public:
  using promise_type = internal::Promise<T>;
  using value_type = T;

  Task() noexcept = default;
  Task(Task&& other) noexcept
      : frame_(std::exchange(other.frame_, {})),
        core_(std::exchange(other.core_, nullptr)),
        sleep_(std::exchange(other.sleep_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      frame_ = std::exchange(other.frame_, {});
      core_ = std::exchange(other.core_, nullptr);
      sleep_ = std::exchange(other.sleep_, {});
    }
    return *this;
  }
  // A lazy task's coroutine is destroyed unrun; a scheduled task is detached.
  ~Task() { reset(); }

  // Holds a coroutine (lazy or scheduled), not moved-from or consumed by an await.
  bool valid() const noexcept { return frame_ || core_ != nullptr || sleep_.has(); }
  bool scheduled() const noexcept { return core_ != nullptr; }

  // Requests cancellation: CancelledError is thrown into the coroutine at its suspension
  // point. False if the task is already done. Does not block.
  bool cancel(const std::string& message = {}) { return core("cancel")->cancel(message); }
  bool cancelled() const { return core("cancelled")->cancelled(); }
  bool done() const { return core("done")->done(); }
  // The value; rethrows the coroutine's exception; CancelledError if cancelled;
  // InvalidStateError if not done. A move-only value can be taken once.
  T result() { return core("result")->result(false); }
  // The coroutine's exception or nullptr; CancelledError if cancelled; InvalidStateError if
  // not done.
  std::exception_ptr exception() { return core("exception")->exception(); }
  // Calls callback(task) on the loop thread (via call_soon) once the task is done.
  void add_done_callback(std::function<void(Task&)> callback) {
    auto* state = core("add_done_callback");
    state->add_ref();
    Task handle(state);
    state->add_callback([handle = std::move(handle), callback = std::move(callback)]() mutable {
      callback(handle);
    });
  }
  std::string get_name() const { return core("get_name")->name(); }
  void set_name(std::string name) { core("set_name")->set_name(std::move(name)); }
  // The number of cancellation requests not yet withdrawn by uncancel().
  int cancelling() const { return core("cancelling")->cancelling(); }
  int uncancel() { return core("uncancel")->uncancel(); }

  auto operator co_await() & { return internal::TaskAwaitable<T>(*this, false); }
  auto operator co_await() && { return internal::TaskAwaitable<T>(*this, true); }

 private:
  explicit Task(std::coroutine_handle<promise_type> frame) noexcept : frame_(frame) {}
  explicit Task(internal::TaskCore<T>* adopted) noexcept : core_(adopted) {}
  explicit Task(internal::LazySleep<T> sleep) noexcept : sleep_(sleep) {}
  internal::TaskCore<T>* core(const char* member) const {
    if (core_ == nullptr)
      throw std::logic_error(std::string("Task::") + member +
                             " needs a scheduled task: pass the coroutine to create_task first");
    return core_;
  }
  void reset() noexcept {
    if (frame_) frame_.destroy();
    frame_ = {};
    if (core_ != nullptr) core_->release();
    core_ = nullptr;
    sleep_ = {};
  }

  std::coroutine_handle<promise_type> frame_;
  internal::TaskCore<T>* core_ = nullptr;
  [[no_unique_address]] internal::LazySleep<T> sleep_;

  friend class internal::Promise<T>;
  friend class EventLoop;
  friend struct internal::TaskAccess;
  friend class internal::TaskAwaitable<T>;
};

// A future bound to a loop (asyncio.Future): set by hand, awaited by tasks. A copyable handle
// to one shared state. Loop thread only.
template <class T = void>
class Future {
 public:
  using value_type = T;
  // A pending future on the running loop (std::logic_error if none), as Python's Future().
  Future() : Future(&get_running_loop()) {}
  explicit Future(EventLoop& loop) : Future(&loop) {}
  Future(const Future& other) noexcept : state_(other.state_) { state_->add_ref(); }
  Future& operator=(Future other) noexcept {
    std::swap(state_, other.state_);
    return *this;
  }
  ~Future() {
    if (state_ != nullptr) state_->release();
  }
  friend bool operator==(const Future& a, const Future& b) noexcept { return a.state_ == b.state_; }

  // Completes the future; InvalidStateError if it is done.
  template <class... U>
  void set_result(U&&... value) {
    state_->set_result(std::forward<U>(value)...);
  }
  void set_exception(std::exception_ptr error) { state_->set_exception(std::move(error)); }
  // pending -> cancelled (false if already done); awaiting tasks get CancelledError.
  bool cancel(const std::string& message = {}) { return state_->cancel(message); }
  bool cancelled() const noexcept { return state_->cancelled(); }
  bool done() const noexcept { return state_->done(); }
  T result() { return state_->result(false); }
  std::exception_ptr exception() { return state_->exception(); }
  // Calls callback(future) on the loop thread (via call_soon) once the future is done.
  void add_done_callback(std::function<void(Future&)> callback) {
    state_->add_callback(
        [self = *this, callback = std::move(callback)]() mutable { callback(self); });
  }
  EventLoop& get_loop() const { return *state_->loop(); }

  auto operator co_await() const& {
    return internal::FutureAwaiter<internal::FutureState<T>, T>(state_, false);
  }

 private:
  explicit Future(EventLoop* loop) : state_(new internal::FutureState<T>(loop)) {}
  internal::FutureState<T>* state_;
  friend struct internal::TaskAccess;
  friend class EventLoop;
};

// A type-erased handle to a scheduled task (what current_task and all_tasks return).
// Copyable; empty when default-constructed. Loop thread only.
class AnyTask {
 public:
  AnyTask() noexcept = default;
  AnyTask(const AnyTask& other) noexcept : core_(other.core_) {
    if (core_ != nullptr) core_->add_ref();
  }
  AnyTask& operator=(AnyTask other) noexcept {
    std::swap(core_, other.core_);
    return *this;
  }
  ~AnyTask() {
    if (core_ != nullptr) core_->release();
  }
  template <class T>
  explicit AnyTask(const Task<T>& task);

  explicit operator bool() const noexcept { return core_ != nullptr; }
  friend bool operator==(const AnyTask& a, const AnyTask& b) noexcept { return a.core_ == b.core_; }

  std::string get_name() const { return get()->name(); }
  void set_name(std::string name) { get()->set_name(std::move(name)); }
  bool cancel(const std::string& message = {}) { return get()->cancel(message); }
  bool cancelled() const { return get()->cancelled(); }
  bool done() const { return get()->done(); }
  int cancelling() const { return get()->cancelling(); }
  int uncancel() { return get()->uncancel(); }

 private:
  explicit AnyTask(internal::TaskCoreBase* core) noexcept : core_(core) {
    if (core_ != nullptr) core_->add_ref();
  }
  internal::TaskCoreBase* get() const {
    if (core_ == nullptr) throw std::logic_error("AnyTask: empty handle");
    return core_;
  }
  internal::TaskCoreBase* core_ = nullptr;
  friend AnyTask current_task();
  friend std::vector<AnyTask> all_tasks();
};

// The task running now on this thread's loop; empty if none (Python: None).
AnyTask current_task();
// The tasks of the running loop not done yet. std::logic_error if no loop runs.
std::vector<AnyTask> all_tasks();

// Several child errors raised together (Python's ExceptionGroup), by TaskGroup.
class ExceptionGroup : public spindle::Error {
 public:
  ExceptionGroup(std::string message, std::vector<std::exception_ptr> exceptions);
  const std::string& message() const noexcept { return message_; }
  // Every child's exception, in the order they failed.
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }

 private:
  std::string message_;
  std::vector<std::exception_ptr> exceptions_;
};

// The tag that makes gather collect every outcome instead of raising the first failure.
struct return_exceptions_t {
  explicit return_exceptions_t() = default;
};
inline constexpr return_exceptions_t return_exceptions{};

// One result of gather(return_exceptions, ...): a value or an exception (a cancelled child
// holds CancelledError).
template <class T>
class Outcome {
 public:
  explicit Outcome(T value) : value_(std::move(value)) {}
  explicit Outcome(std::exception_ptr error) : error_(std::move(error)) {}
  bool has_value() const noexcept { return value_.has_value(); }
  // The value; rethrows the exception if there is none.
  T& value() {
    if (!value_) std::rethrow_exception(error_);
    return *value_;
  }
  std::exception_ptr exception() const noexcept { return error_; }

 private:
  std::optional<T> value_;
  std::exception_ptr error_;
};

// What asyncio.wait returns: the tasks done and the ones still pending, in input order.
template <class H>
struct DoneAndPending {
  std::vector<H> done, pending;
};

class TaskGroup;

template <class H>
struct internal::copyable_result<DoneAndPending<H>> : internal::copyable_result<H> {};

// ---------------------------------------------------------------------------------------
namespace internal {

// The value a child contributes to gather: void becomes std::monostate.
template <class T>
using value_or_monostate_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
class InlineAwaiter {
 public:
  explicit InlineAwaiter(std::coroutine_handle<Promise<T>> frame) noexcept : frame_(frame) {}
  InlineAwaiter(const InlineAwaiter&) = delete;
  InlineAwaiter& operator=(const InlineAwaiter&) = delete;
  ~InlineAwaiter() {
    if (frame_) frame_.destroy();
  }
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
    frame_.promise().continuation = awaiting;
    return frame_;
  }
  T await_resume() {
    auto& promise = frame_.promise();
    if (promise.exception) std::rethrow_exception(promise.exception);
    if constexpr (!std::is_void_v<T>) return std::move(*promise.result);
  }

 private:
  std::coroutine_handle<Promise<T>> frame_;
};

// co_await on a Task: inline for a lazy task, a completion wait for a scheduled one.
template <class T>
class TaskAwaitable {
 public:
  TaskAwaitable(Task<T>& task, bool rvalue) {
    if (task.core_ != nullptr) {
      awaiter_.template emplace<scheduled>(task.core_, rvalue);
    } else if (task.frame_) {
      awaiter_.template emplace<inline_frame>(std::exchange(task.frame_, {}));
    } else {
      if constexpr (std::is_void_v<T>) {
        if (task.sleep_.has()) {
          const auto delay = std::chrono::nanoseconds(std::exchange(task.sleep_, {}).nanoseconds);
          awaiter_.template emplace<sleeping>(delay);
          return;
        }
      }
      throw std::logic_error("co_await on an empty Task (moved from, or already awaited)");
    }
  }
  bool await_ready() const noexcept {
    return awaiter_.index() == scheduled && std::get<scheduled>(awaiter_).await_ready();
  }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) {
    switch (awaiter_.index()) {
      case inline_frame:
        return std::get<inline_frame>(awaiter_).await_suspend(awaiting);
      case scheduled:
        std::get<scheduled>(awaiter_).await_suspend(awaiting);
        break;
      default:
        std::get<sleeping>(awaiter_).await_suspend(awaiting);
        break;
    }
    return std::noop_coroutine();
  }
  T await_resume() {
    if (awaiter_.index() == inline_frame) return std::get<inline_frame>(awaiter_).await_resume();
    if constexpr (std::is_void_v<T>) {
      if (awaiter_.index() == sleeping) return std::get<sleeping>(awaiter_).await_resume();
    }
    return std::get<scheduled>(awaiter_).await_resume();
  }

 private:
  // One of the three ways a Task is awaited; a variant so the awaiting frame holds the largest
  // of them, not all.
  enum : std::size_t { inline_frame = 1, scheduled = 2, sleeping = 3 };
  std::variant<std::monostate, InlineAwaiter<T>, FutureAwaiter<TaskCore<T>, T>, SleepAwaiter>
      awaiter_;
};

template <class T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}

template <class A>
struct is_task : std::false_type {};
template <class T>
struct is_task<Task<T>> : std::true_type {};
template <class A>
struct is_future : std::false_type {};
template <class T>
struct is_future<Future<T>> : std::true_type {};
template <class A>
concept TaskOrFuture =
    is_task<std::remove_cvref_t<A>>::value || is_future<std::remove_cvref_t<A>>::value;

// Access to the shared state behind handles, for the functions of this header.
struct TaskAccess {
  template <class T>
  static FutureBase* core(const Task<T>& task) noexcept {
    return task.core_;
  }
  template <class T>
  static FutureBase* core(const Future<T>& future) noexcept {
    return future.state_;
  }
  template <class T>
  static Task<T> share(const Task<T>& task) noexcept {
    task.core_->add_ref();
    return Task<T>(task.core_);
  }
  template <class T>
  static bool lazy(const Task<T>& task) noexcept {
    return task.core_ == nullptr;
  }
  template <class T>
  static Task<T> adopt(TaskCore<T>* core) noexcept {
    return Task<T>(core);
  }
  static Task<void> lazy_sleep(std::int64_t nanoseconds) noexcept {
    return Task<void>(LazySleep<void>{nanoseconds});
  }
};

// The scheduled handle for an awaitable argument (Python's ensure_future): a lazy Task is
// scheduled on the running loop (an lvalue one in place), a scheduled Task or a Future shared.
template <class T>
Task<T> ensure_scheduled(Task<T>&& task);
template <class T>
Task<T> ensure_scheduled(Task<T>& task);
template <class T>
Future<T> ensure_scheduled(const Future<T>& future) {
  return future;
}

template <class H>
using scheduled_t = decltype(ensure_scheduled(std::declval<H>()));

template <class H>
value_or_monostate_t<typename H::value_type> gather_value(H& handle) {
  if constexpr (std::is_void_v<typename H::value_type>) {
    handle.result();
    return {};
  } else {
    return handle.result();
  }
}

template <class H>
Outcome<value_or_monostate_t<typename H::value_type>> gather_outcome(H& handle) {
  using V = value_or_monostate_t<typename H::value_type>;
  FutureBase* core = TaskAccess::core(handle);
  if (core->cancelled()) return Outcome<V>(std::make_exception_ptr(core->make_cancelled_error()));
  if (std::exception_ptr error = core->exception()) return Outcome<V>(error);
  return Outcome<V>(gather_value(handle));
}

// Waits for gather's children (Python's _GatheringFuture): wakes at the first failure, unless
// return_exceptions, or when all are done. Cancelling the waiting task cancels the children.
class GatherAwaiter final : Waiter, TaskSuspension {
 public:
  GatherAwaiter(std::vector<FutureBase*> children, bool return_exceptions);
  GatherAwaiter(const GatherAwaiter&) = delete;
  GatherAwaiter& operator=(const GatherAwaiter&) = delete;
  ~GatherAwaiter();
  bool await_ready();
  void await_suspend(std::coroutine_handle<> frame);
  void await_resume();

 private:
  bool cancel_wait(const std::string& message) override;
  static void on_child_done(CompletionNode* node);
  bool failed(FutureBase* child) const noexcept;

  std::vector<FutureBase*> children_;
  std::unique_ptr<CompletionNode[]> nodes_;  // nodes_[i] listens to children_[i]
  std::size_t remaining_ = 0;
  FutureBase* failure_ = nullptr;
  bool return_exceptions_;
  bool cancel_requested_ = false;
  bool woken_ = false;
};

template <class... H>
Task<std::tuple<value_or_monostate_t<typename H::value_type>...>> gather_tuple(
    std::tuple<H...> children) {
  co_await GatherAwaiter(
      std::apply(
          [](auto&... child) { return std::vector<FutureBase*>{TaskAccess::core(child)...}; },
          children),
      false);
  co_return std::apply([](auto&... child) { return std::tuple{gather_value(child)...}; }, children);
}

template <class... H>
Task<std::tuple<Outcome<value_or_monostate_t<typename H::value_type>>...>> gather_tuple_outcomes(
    std::tuple<H...> children) {
  co_await GatherAwaiter(
      std::apply(
          [](auto&... child) { return std::vector<FutureBase*>{TaskAccess::core(child)...}; },
          children),
      true);
  co_return std::apply([](auto&... child) { return std::tuple{gather_outcome(child)...}; },
                       children);
}

template <class H>
std::vector<FutureBase*> cores_of(const std::vector<H>& handles) {
  std::vector<FutureBase*> cores;
  cores.reserve(handles.size());
  for (const H& handle : handles)
    cores.push_back(TaskAccess::core(handle));
  return cores;
}

template <class H>
Task<std::vector<value_or_monostate_t<typename H::value_type>>> gather_vector(
    std::vector<H> children) {
  co_await GatherAwaiter(cores_of(children), false);
  std::vector<value_or_monostate_t<typename H::value_type>> results;
  results.reserve(children.size());
  for (H& child : children)
    results.push_back(gather_value(child));
  co_return results;
}

template <class H>
Task<std::vector<Outcome<value_or_monostate_t<typename H::value_type>>>> gather_vector_outcomes(
    std::vector<H> children) {
  co_await GatherAwaiter(cores_of(children), true);
  std::vector<Outcome<value_or_monostate_t<typename H::value_type>>> results;
  results.reserve(children.size());
  for (H& child : children)
    results.push_back(gather_outcome(child));
  co_return results;
}

template <class R>
auto schedule_all(R&& range) {
  using Element = std::ranges::range_reference_t<R>;
  using H = scheduled_t<Element>;
  std::vector<H> handles;
  if constexpr (std::ranges::sized_range<R>) handles.reserve(std::ranges::size(range));
  for (auto&& element : range) {
    if constexpr (std::is_lvalue_reference_v<R>)
      handles.push_back(ensure_scheduled(element));
    else
      handles.push_back(ensure_scheduled(std::move(element)));
  }
  return handles;
}

bool is_cancelled_error(const std::exception_ptr& error) noexcept;

// Python's asyncio.timeout() around one await: at the deadline the task is cancelled; the
// cancellation, when it comes back out, becomes TimeoutError.
class TimeoutScope : TimerNode {
 public:
  explicit TimeoutScope(Clock::duration delay);
  TimeoutScope(const TimeoutScope&) = delete;
  TimeoutScope& operator=(const TimeoutScope&) = delete;
  ~TimeoutScope();
  // Leaves the scope: TimeoutError if the deadline's cancellation is what `error` is;
  // otherwise rethrows `error` if any.
  void exit(std::exception_ptr error);

 private:
  static void expire(TimerNode* node);
  TaskCoreBase* task_;
  EventLoop* loop_;
  int cancelling_at_entry_;
  bool expired_ = false;
};

template <class H>
Task<typename H::value_type> wait_for_deadline(H awaitable, Clock::duration delay) {
  using T = typename H::value_type;
  TimeoutScope scope(delay);
  std::exception_ptr error;
  if constexpr (std::is_void_v<T>) {
    try {
      co_await std::move(awaitable);
    } catch (...) {
      error = std::current_exception();
    }
    scope.exit(error);
  } else {
    std::optional<T> value;
    try {
      value.emplace(co_await std::move(awaitable));
    } catch (...) {
      error = std::current_exception();
    }
    scope.exit(error);
    co_return std::move(*value);
  }
}

// Waits until the future or task is done, without raising its outcome. With `shield`, a
// cancellation of the waiting task only stops the wait (asyncio.shield).
class DoneAwaiter final : Waiter, TaskSuspension {
 public:
  explicit DoneAwaiter(FutureBase* core, bool shield = false);
  DoneAwaiter(const DoneAwaiter&) = delete;
  DoneAwaiter& operator=(const DoneAwaiter&) = delete;
  ~DoneAwaiter();
  bool await_ready() const noexcept { return core_->done(); }
  void await_suspend(std::coroutine_handle<> frame);
  void await_resume();

 private:
  bool cancel_wait(const std::string& message) override;
  FutureBase* core_;
  CompletionNode node_;
  bool cancelled_ = false;
  bool shield_;
};

template <class H>
Task<typename H::value_type> wait_for_now(H handle) {
  if (!TaskAccess::core(handle)->done()) {
    TaskAccess::core(handle)->cancel("");
    co_await DoneAwaiter(TaskAccess::core(handle));
  }
  try {
    co_return handle.result();
  } catch (const CancelledError&) {
    throw TimeoutError("wait_for: timed out");
  }
}

template <class H>
Task<typename H::value_type> shield_child(H handle) {
  co_await DoneAwaiter(TaskAccess::core(handle), true);
  co_return handle.result();
}

// asyncio.wait's waiting: until return_when is met or the deadline passes.
class WaitAwaiter final : Waiter, TaskSuspension {
 public:
  WaitAwaiter(std::vector<FutureBase*> children, WaitOptions options);
  WaitAwaiter(const WaitAwaiter&) = delete;
  WaitAwaiter& operator=(const WaitAwaiter&) = delete;
  ~WaitAwaiter();
  bool await_ready();
  void await_suspend(std::coroutine_handle<> frame);
  void await_resume();

 private:
  struct ChildNode {
    CompletionNode node;
    WaitAwaiter* owner;
    FutureBase* child;
  };
  struct Deadline : TimerNode {
    WaitAwaiter* owner;
  };
  bool cancel_wait(const std::string& message) override;
  bool satisfied() const noexcept;
  static void on_child_done(CompletionNode* node);
  static void on_deadline(TimerNode* node);

  std::vector<FutureBase*> children_;
  std::unique_ptr<ChildNode[]> nodes_;
  Deadline deadline_;
  EventLoop* loop_ = nullptr;
  WaitOptions options_;
  bool cancelled_ = false;
  bool woken_ = false;
};

template <class H>
Task<DoneAndPending<H>> wait_children(std::vector<H> children, WaitOptions options) {
  co_await WaitAwaiter(cores_of(children), options);
  DoneAndPending<H> result;
  for (H& child : children)
    (TaskAccess::core(child)->done() ? result.done : result.pending).push_back(std::move(child));
  co_return result;
}

// The shared state of one as_completed() call.
template <class H>
class CompletionOrder {
 public:
  using T = typename H::value_type;
  CompletionOrder(std::vector<H> handles, std::optional<Clock::duration> timeout)
      : handles_(std::move(handles)), nodes_(new ChildNode[handles_.size()]) {
    for (std::size_t i = 0; i < handles_.size(); ++i) {
      FutureBase* core = TaskAccess::core(handles_[i]);
      if (core->done()) {
        finished_.push_back(i);
        continue;
      }
      nodes_[i].owner = this;
      nodes_[i].index = i;
      nodes_[i].node.owner = &nodes_[i];
      nodes_[i].node.on_complete = &on_child_done;
      core->subscribe(&nodes_[i].node);
    }
    if (timeout) {
      loop_ = &get_running_loop();
      deadline_.owner = this;
      deadline_.when = Clock::now() + *timeout;
      deadline_.fire = &on_deadline;
      loop_->add_timer(&deadline_);
    }
  }
  CompletionOrder(const CompletionOrder&) = delete;
  CompletionOrder& operator=(const CompletionOrder&) = delete;
  ~CompletionOrder() {
    for (std::size_t i = 0; i < handles_.size(); ++i)
      if (nodes_[i].node.linked) TaskAccess::core(handles_[i])->unsubscribe(&nodes_[i].node);
    if (deadline_.scheduled()) loop_->remove_timer(&deadline_);
  }
  std::size_t size() const noexcept { return handles_.size(); }

  class NextAwaiter final : Waiter, TaskSuspension {
   public:
    explicit NextAwaiter(CompletionOrder* order) : order_(order) {}
    NextAwaiter(const NextAwaiter&) = delete;
    NextAwaiter& operator=(const NextAwaiter&) = delete;
    ~NextAwaiter() { leave_queue(); }
    bool await_ready() const noexcept { return !order_->finished_.empty() || order_->timed_out_; }
    void await_suspend(std::coroutine_handle<> frame) {
      order_->waiting_.push_back(this);
      suspend(this, frame);
    }
    T await_resume() {
      leave_queue();
      deliver_pending_cancel();
      if (cancelled_) throw CancelledError(task_->cancel_message());
      std::size_t index;
      if (assigned_) {
        index = *assigned_;
      } else if (!order_->finished_.empty()) {
        index = order_->finished_.front();
        order_->finished_.pop_front();
      } else {
        throw TimeoutError("as_completed: timed out");
      }
      return order_->handles_[index].result();
    }

   private:
    friend class CompletionOrder;
    void leave_queue() noexcept {
      auto& waiting = order_->waiting_;
      for (auto it = waiting.begin(); it != waiting.end(); ++it)
        if (*it == this) {
          waiting.erase(it);
          break;
        }
    }
    bool cancel_wait(const std::string&) override {
      leave_queue();
      if (assigned_) {  // hand the result on to the next waiter, or back to the queue
        order_->deliver(*assigned_);
        assigned_.reset();
      }
      cancelled_ = true;
      wake(this);
      return true;
    }
    CompletionOrder* order_;
    std::optional<std::size_t> assigned_;
    bool cancelled_ = false;
  };

 private:
  struct ChildNode {
    CompletionNode node;
    CompletionOrder* owner = nullptr;
    std::size_t index = 0;
  };
  struct Deadline : TimerNode {
    CompletionOrder* owner = nullptr;
  };
  void deliver(std::size_t index) {
    if (waiting_.empty()) {
      finished_.push_back(index);
      return;
    }
    NextAwaiter* next = waiting_.front();
    waiting_.pop_front();
    next->assigned_ = index;
    next->wake(next);
  }
  static void on_child_done(CompletionNode* node) {
    auto* child = static_cast<ChildNode*>(node->owner);
    child->owner->deliver(child->index);
  }
  static void on_deadline(TimerNode* node) {
    auto* order = static_cast<Deadline*>(node)->owner;
    order->timed_out_ = true;
    std::deque<NextAwaiter*> waiting;
    waiting.swap(order->waiting_);
    for (NextAwaiter* next : waiting)
      next->wake(next);
  }

  std::vector<H> handles_;
  std::unique_ptr<ChildNode[]> nodes_;
  std::deque<std::size_t> finished_;
  std::deque<NextAwaiter*> waiting_;
  Deadline deadline_;
  EventLoop* loop_ = nullptr;
  bool timed_out_ = false;
};

template <class H>
Task<typename H::value_type> next_completed(std::shared_ptr<CompletionOrder<H>> order) {
  co_return co_await typename CompletionOrder<H>::NextAwaiter(order.get());
}

// The range as_completed returns: size() awaitables, each giving the next result to arrive.
template <class H>
class AsCompleted {
 public:
  using T = typename H::value_type;
  explicit AsCompleted(std::shared_ptr<CompletionOrder<H>> order) : order_(std::move(order)) {}

  class iterator {
   public:
    using value_type = Task<T>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    iterator(const AsCompleted* range, std::size_t position) : range_(range), position_(position) {}
    Task<T> operator*() const { return next_completed(range_->order_); }
    iterator& operator++() {
      ++position_;
      return *this;
    }
    void operator++(int) { ++position_; }
    friend bool operator==(const iterator& a, const iterator& b) noexcept {
      return a.position_ == b.position_;
    }

   private:
    const AsCompleted* range_ = nullptr;
    std::size_t position_ = 0;
  };
  iterator begin() const { return iterator(this, 0); }
  iterator end() const { return iterator(this, order_->size()); }
  std::size_t size() const noexcept { return order_->size(); }

 private:
  std::shared_ptr<CompletionOrder<H>> order_;
};

std::chrono::nanoseconds checked_timeout(std::chrono::nanoseconds timeout, const char* function);

Task<> sleep_for(std::chrono::nanoseconds delay);

}  // namespace internal
// ---------------------------------------------------------------------------------------

// Schedules the lazy `task` on the running loop and returns its handle (asyncio.create_task).
// std::logic_error if no loop runs; std::invalid_argument if already scheduled or empty.
template <class T>
Task<T> create_task(Task<T> task, TaskOptions options = {}) {
  return get_running_loop().create_task(std::move(task), std::move(options));
}

// Runs `main` on a new loop until it is done, then cancels the tasks left, waits for them,
// closes the loop, and returns main's result (asyncio.run). Blocks. std::logic_error if a
// loop already runs on this thread.
template <class T>
T run(Task<T> main) {
  if (internal::running_loop() != nullptr)
    throw std::logic_error("asyncio::run() cannot be called from a running event loop");
  EventLoop loop;
  struct Shutdown {
    EventLoop& loop;
    ~Shutdown() {
      try {
        loop.cancel_all_tasks();
        loop.shutdown_default_executor();
      } catch (...) {
        // a loop that cannot run any more: close() below still frees everything
      }
      loop.close();
    }
  } shutdown{loop};
  return loop.run_until_complete(std::move(main));
}

// Suspends the calling task for `delay` (asyncio.sleep); sleep(0) (or less) just yields to
// the other ready callbacks once. Cancelling the task wakes it with CancelledError.
template <class Rep, class Period>
Task<> sleep(std::chrono::duration<Rep, Period> delay) {
  const auto nanoseconds = std::chrono::ceil<std::chrono::nanoseconds>(delay).count();
  return internal::TaskAccess::lazy_sleep(nanoseconds < 0 ? 0 : nanoseconds);
}

// Runs the awaitables (Task or Future) concurrently and gives their results as a tuple, in
// argument order (void -> std::monostate) (asyncio.gather). Lazy tasks are scheduled at once.
// The first exception is rethrown as soon as it happens (the others run on); cancelling the
// gathering task cancels every child.
template <internal::TaskOrFuture... A>
requires(sizeof...(A) > 0) auto gather(A&&... awaitables) {
  return internal::gather_tuple(
      std::tuple{internal::ensure_scheduled(std::forward<A>(awaitables))...});
}
// gather with return_exceptions=True: every child's Outcome, failures included.
template <internal::TaskOrFuture... A>
auto gather(return_exceptions_t, A&&... awaitables) {
  return internal::gather_tuple_outcomes(
      std::tuple{internal::ensure_scheduled(std::forward<A>(awaitables))...});
}
// gather over a range of Tasks or Futures: a vector of results in range order. A range given
// as an lvalue keeps its elements (lazy ones are replaced by their scheduled handles).
template <std::ranges::input_range R>
requires internal::TaskOrFuture<std::ranges::range_reference_t<R>>
auto gather(R&& awaitables) {
  return internal::gather_vector(internal::schedule_all(std::forward<R>(awaitables)));
}
template <std::ranges::input_range R>
requires internal::TaskOrFuture<std::ranges::range_reference_t<R>>
auto gather(return_exceptions_t, R&& awaitables) {
  return internal::gather_vector_outcomes(internal::schedule_all(std::forward<R>(awaitables)));
}

// The awaitables' results in the order they complete (asyncio.as_completed): a range of
// awaitables; awaiting the i-th gives the i-th result to arrive (or rethrows its exception).
// Lazy tasks are scheduled at once.
template <std::ranges::input_range R>
requires internal::TaskOrFuture<std::ranges::range_reference_t<R>>
auto as_completed(R&& awaitables) {
  using H = typename decltype(internal::schedule_all(std::forward<R>(awaitables)))::value_type;
  return internal::AsCompleted<H>(std::make_shared<internal::CompletionOrder<H>>(
      internal::schedule_all(std::forward<R>(awaitables)), std::nullopt));
}
// With a deadline: awaits still pending when `timeout` has passed throw TimeoutError.
template <std::ranges::input_range R, class Rep, class Period>
requires internal::TaskOrFuture<std::ranges::range_reference_t<R>>
auto as_completed(R&& awaitables, std::chrono::duration<Rep, Period> timeout) {
  using H = typename decltype(internal::schedule_all(std::forward<R>(awaitables)))::value_type;
  const auto checked = internal::checked_timeout(
      std::chrono::ceil<std::chrono::nanoseconds>(timeout), "as_completed");
  return internal::AsCompleted<H>(std::make_shared<internal::CompletionOrder<H>>(
      internal::schedule_all(std::forward<R>(awaitables)), checked));
}

// Waits for scheduled tasks or futures (asyncio.wait) until options.return_when is met or
// options.timeout passes (no TimeoutError: what is not done is in `pending`). The range keeps
// its handles; the result holds more handles to the same tasks. std::invalid_argument for an
// empty range, a lazy task (as Python forbids coroutines), or a negative timeout.
template <std::ranges::input_range R>
requires internal::TaskOrFuture<std::ranges::range_reference_t<R>>
auto wait(R& awaitables, WaitOptions options = {}) {
  using H = std::remove_cvref_t<std::ranges::range_reference_t<R>>;
  std::vector<H> handles;
  for (auto& element : awaitables) {
    if constexpr (internal::is_task<H>::value) {
      if (internal::TaskAccess::lazy(element))
        throw std::invalid_argument(
            "asyncio::wait: pass scheduled tasks (create_task), not coroutines");
      handles.push_back(internal::TaskAccess::share(element));
    } else {
      handles.push_back(element);
    }
  }
  if (handles.empty()) throw std::invalid_argument("asyncio::wait: the set of tasks is empty");
  if (options.timeout) options.timeout = internal::checked_timeout(*options.timeout, "wait");
  return internal::wait_children(std::move(handles), options);
}

// Awaits `awaitable` with a deadline (asyncio.wait_for): when `timeout` passes, the awaitable
// is cancelled, waited for, and TimeoutError thrown. A timeout of zero does not start a lazy
// task. std::invalid_argument if the timeout is negative.
template <internal::TaskOrFuture A, class Rep, class Period>
auto wait_for(A&& awaitable, std::chrono::duration<Rep, Period> timeout) {
  const auto delay =
      internal::checked_timeout(std::chrono::ceil<std::chrono::nanoseconds>(timeout), "wait_for");
  using H = std::remove_cvref_t<A>;
  if (delay == std::chrono::nanoseconds::zero())
    return internal::wait_for_now(internal::ensure_scheduled(std::forward<A>(awaitable)));
  if constexpr (internal::is_task<H>::value) {
    if (internal::TaskAccess::lazy(awaitable))
      return internal::wait_for_deadline(H(std::move(awaitable)),
                                         std::chrono::ceil<internal::Clock::duration>(delay));
  }
  return internal::wait_for_deadline(internal::ensure_scheduled(std::forward<A>(awaitable)),
                                     std::chrono::ceil<internal::Clock::duration>(delay));
}

// Protects `awaitable` from cancellation (asyncio.shield): cancelling the awaiting task throws
// CancelledError there, while the awaitable (scheduled at once if lazy) runs on.
template <internal::TaskOrFuture A>
auto shield(A&& awaitable) {
  return internal::shield_child(internal::ensure_scheduled(std::forward<A>(awaitable)));
}

// A structured group of tasks (asyncio.TaskGroup), entered by task_group(). Loop thread only.
class TaskGroup {
 public:
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;
  ~TaskGroup();

  // Schedules `task` as a child of the group. std::logic_error once the group is finished or
  // shutting down after a failure (the task is then destroyed unrun).
  template <class T>
  Task<T> create_task(Task<T> task, TaskOptions options = {}) {
    check_can_create();
    Task<T> scheduled = loop_->create_task(std::move(task), std::move(options));
    adopt(static_cast<internal::TaskCoreBase*>(internal::TaskAccess::core(scheduled)));
    return scheduled;
  }

  class ExitAwaiter;

 private:
  struct Child {
    internal::CompletionNode node;
    TaskGroup* group;
    internal::TaskCoreBase* core;
    std::list<Child>::iterator self;
  };
  TaskGroup();
  void check_can_create() const;
  void adopt(internal::TaskCoreBase* child);
  void abort();
  static void on_child_done(internal::CompletionNode* node);
  static void handle_child_done(void* child, bool run);
  void leave(std::exception_ptr body_error, std::exception_ptr propagate_cancel);
  ExitAwaiter wait_children();

  std::list<Child> children_;
  std::vector<std::exception_ptr> errors_;
  internal::TaskCoreBase* parent_;
  EventLoop* loop_;
  ExitAwaiter* exit_waiter_ = nullptr;
  bool exiting_ = false;
  bool aborting_ = false;
  bool parent_cancel_requested_ = false;

  template <class F>
  friend Task<> task_group(F body);
};

// Waits until the group has no child left; cancelling the waiting task stops the wait only.
class TaskGroup::ExitAwaiter final : internal::Waiter, internal::TaskSuspension {
 public:
  explicit ExitAwaiter(TaskGroup* group) : group_(group) {}
  ExitAwaiter(const ExitAwaiter&) = delete;
  ExitAwaiter& operator=(const ExitAwaiter&) = delete;
  ~ExitAwaiter() {
    if (group_->exit_waiter_ == this) group_->exit_waiter_ = nullptr;
  }
  bool await_ready() const noexcept { return group_->children_.empty(); }
  void await_suspend(std::coroutine_handle<> frame) {
    group_->exit_waiter_ = this;
    suspend(this, frame);
  }
  void await_resume() {
    group_->exit_waiter_ = nullptr;
    deliver_pending_cancel();
    if (cancelled_) throw CancelledError(task_->cancel_message());
  }

 private:
  friend class TaskGroup;
  bool cancel_wait(const std::string&) override {
    group_->exit_waiter_ = nullptr;
    cancelled_ = true;
    wake(this);
    return true;
  }
  TaskGroup* group_;
  bool cancelled_ = false;
};

// `async with asyncio.TaskGroup() as tg:` — runs body(tg) inline, then waits for every child.
// The first child to fail cancels the body and the other children; then every failure (not
// the cancellations) is thrown together as an ExceptionGroup. Cancelling the awaiting task
// cancels the children and rethrows CancelledError.
//   co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> asyncio::Task<> {
//     tg.create_task(a()); tg.create_task(b()); co_return; });
template <class F>
Task<> task_group(F body) {
  TaskGroup group;
  std::exception_ptr body_error;
  try {
    co_await body(group);
  } catch (...) {
    body_error = std::current_exception();
  }
  group.exiting_ = true;
  std::exception_ptr propagate_cancel =
      internal::is_cancelled_error(body_error) ? body_error : std::exception_ptr();
  if (body_error && !group.aborting_) group.abort();
  while (!group.children_.empty()) {
    std::exception_ptr wait_error;
    try {
      co_await group.wait_children();
    } catch (...) {
      wait_error = std::current_exception();
    }
    if (wait_error && !group.aborting_) {
      propagate_cancel = wait_error;
      group.abort();
    }
  }
  group.leave(body_error, propagate_cancel);
}

// ---- definitions needing complete types ----

template <class T>
AnyTask::AnyTask(const Task<T>& task)
    : AnyTask(static_cast<internal::TaskCoreBase*>(internal::TaskAccess::core(task))) {
  if (core_ == nullptr) throw std::logic_error("AnyTask needs a scheduled task");
}

template <class T>
Task<T> internal::ensure_scheduled(Task<T>&& task) {
  if (TaskAccess::lazy(task)) return create_task(std::move(task));
  return std::move(task);
}
template <class T>
Task<T> internal::ensure_scheduled(Task<T>& task) {
  if (TaskAccess::lazy(task)) task = create_task(std::move(task));
  return TaskAccess::share(task);
}

template <class T>
Task<T> EventLoop::create_task(Task<T> task, TaskOptions options) {
  check_open();
  if (task.core_ != nullptr)
    throw std::invalid_argument("create_task: the task is already scheduled");
  if constexpr (std::is_void_v<T>) {
    if (task.sleep_.has())
      task = internal::sleep_for(std::chrono::nanoseconds(task.sleep_.nanoseconds));
  }
  if (!task.frame_)
    throw std::invalid_argument("create_task: an empty Task (moved from, or already awaited)");
  auto* core = new internal::TaskCore<T>(this, task.frame_, std::move(options.name));
  task.frame_ = {};
  core->add_ref();  // the running reference, dropped when the coroutine ends
  core->schedule_first_step();
  return Task<T>(core);
}

template <class T>
Future<T> EventLoop::create_future() {
  check_open();
  return Future<T>(this);
}

namespace internal {
// Runs `loop` until `core` is done (run_until_complete's waiting).
void run_until_done(EventLoop& loop, FutureBase* core);
}  // namespace internal

template <class T>
T EventLoop::run_until_complete(Task<T> task) {
  check_open();
  if (task.core_ == nullptr)
    task = create_task(std::move(task));
  else if (task.core_->loop() != this)
    throw std::invalid_argument("run_until_complete: the task belongs to another loop");
  internal::run_until_done(*this, task.core_);
  return task.core_->result(task.core_->reference_count() <= 1);
}

template <class T>
T EventLoop::run_until_complete(Future<T> future) {
  check_open();
  internal::run_until_done(*this, future.state_);
  return future.result();
}

}  // namespace spindle::asyncio

#include "spindle/detail/asyncio_bridge.hpp"   // IWYU pragma: export
#include "spindle/detail/asyncio_streams.hpp"  // IWYU pragma: export
#include "spindle/detail/asyncio_sync.hpp"     // IWYU pragma: export
