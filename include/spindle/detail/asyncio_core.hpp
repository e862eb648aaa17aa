// The machinery under spindle::asyncio: the event loop, the shared state of futures and
// tasks, the coroutine promise, and the protocol by which a task suspends, wakes and is
// cancelled. Public names live in <spindle/asyncio.hpp>; docs/design/asyncio.md explains the
// design (task state machine, how cancellation travels, who owns a coroutine frame).
#pragma once

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "spindle/detail/asyncio_alloc.hpp"
#include "spindle/detail/unique_function.hpp"
#include "spindle/errors.hpp"
#include "spindle/futures.hpp"

namespace spindle::asyncio {

class EventLoop;
template <class T>
class Task;
template <class T>
class Future;
class AnyTask;

// The task or future was cancelled (asyncio.CancelledError). Deliberately NOT derived from
// std::exception (Python made it a BaseException for the same reason): a
// `catch (const std::exception&)` must not swallow cancellation. Catch it by its own type,
// clean up, and rethrow (`throw;`) unless the cancellation is really meant to be suppressed.
class CancelledError {
 public:
  CancelledError() = default;
  explicit CancelledError(std::string message) : message_(std::move(message)) {}
  // The message given to cancel(), or empty.
  const char* what() const noexcept { return message_.c_str(); }

 private:
  std::string message_;
};

// An operation not allowed in the current state, such as set_result() on a done future or
// result() of a pending one (asyncio.InvalidStateError).
using futures::InvalidStateError;
using spindle::TimeoutError;

// What the loop's exception handler receives (Python's context dict).
struct ExceptionContext {
  std::string message;           // "Task exception was never retrieved", ...
  std::exception_ptr exception;  // may be null
  std::string subject;           // the task, future or callback concerned, described
};

namespace internal {

class TaskCoreBase;
using Clock = std::chrono::steady_clock;
inline constexpr std::uint32_t not_in_heap = static_cast<std::uint32_t>(-1);

// An entry of the loop's timer heap. The node lives in whoever waits (a sleeping coroutine's
// frame, a TimerHandle's state) and is removed from the heap before it dies.
struct TimerNode {
  // 32-bit sequence and index keep a sleeping task small (4 billion timers at once is
  // beyond any loop; a sequence wrapping only reorders two timers due at the same instant).
  Clock::time_point when{};
  std::uint32_t sequence = 0;  // ties at the same `when` fire in scheduling order
  std::uint32_t heap_index = not_in_heap;
  void (*fire)(TimerNode*) = nullptr;  // runs on the loop thread when `when` is reached
  bool scheduled() const noexcept { return heap_index != not_in_heap; }
};

// One callback waiting in the loop's ready queue: call(argument, true) when its turn comes,
// call(argument, false) to discard it if the loop closes first. Two words, because a burst of
// a hundred thousand wake-ups sits in this queue at once.
struct ReadyEntry {
  void (*call)(void* argument, bool run);
  void* argument;
};

// A listener told synchronously, on the loop thread, when a future or task completes.
// Intrusive: it lives in the awaiter that waits, so waiting allocates nothing.
struct CompletionNode {
  CompletionNode* previous = nullptr;
  CompletionNode* next = nullptr;
  void (*on_complete)(CompletionNode*) = nullptr;
  void* owner = nullptr;  // the awaiter the node belongs to
  bool linked = false;
};

// What a suspended task waits on. cancel_wait() asks it to give up and wake the task so that
// the awaiter throws CancelledError; it returns false if it cannot (already done).
class Waiter {
 public:
  virtual bool cancel_wait(const std::string& message) = 0;

 protected:
  ~Waiter() = default;
};

// The shared state of an asyncio::Future and of a scheduled task. Loop-thread only, so the
// reference count is a plain integer.
//
// State machine (Python's _PENDING / _CANCELLED / _FINISHED):
//   pending --set_result/set_exception, or the task's coroutine returns/throws--> finished
//   pending --Future.cancel, or the task's coroutine lets CancelledError out-->  cancelled
//   finished, cancelled: final.
class FutureBase {
 public:
  enum class State : std::uint8_t { pending, cancelled, finished };

  explicit FutureBase(EventLoop* loop);
  FutureBase(const FutureBase&) = delete;
  // Futures and task states come from the small-block allocator (detail/asyncio_alloc.hpp).
  static void* operator new(std::size_t size) { return allocate_small(size); }
  static void operator delete(void* block, std::size_t size) noexcept {
    deallocate_small(block, size);
  }
  FutureBase& operator=(const FutureBase&) = delete;

  // Atomic only so that a handle a bridge could not send back to a closed loop may be
  // dropped on another thread; everything else about a future is loop-thread only.
  void add_ref() noexcept { references_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (references_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy_unreferenced();
  }

  State state() const noexcept { return state_; }
  bool done() const noexcept { return state_ != State::pending; }
  bool cancelled() const noexcept { return state_ == State::cancelled; }
  EventLoop* loop() const noexcept { return loop_; }

  // Future.cancel: pending -> cancelled, listeners told. A task overrides it with Task.cancel.
  virtual bool cancel(const std::string& message);

  // set_exception: InvalidStateError unless pending.
  void set_exception(std::exception_ptr error);
  // The exception, marking it retrieved; CancelledError if cancelled, InvalidStateError if
  // pending.
  std::exception_ptr exception();
  // Throws what result() throws before the value is read (pending, cancelled, exception).
  void check_result_ready();
  // A cancelled future's CancelledError, with the cancel message.
  CancelledError make_cancelled_error() const;
  // Stops "exception was never retrieved" from being reported (gather, shield: Python
  // retrieves the exceptions of the children it stops caring about).
  void mark_retrieved() noexcept {
    log_unretrieved_ = false;
    silenced_ = true;
  }
  std::uint32_t reference_count() const noexcept {
    return references_.load(std::memory_order_relaxed);
  }

  void subscribe(CompletionNode* node) noexcept;
  void unsubscribe(CompletionNode* node) noexcept;
  // A user callback, scheduled with call_soon when the future completes (at once if done).
  void add_callback(spindle::detail::UniqueFunction callback);

  virtual std::string describe() const;

  // Loop bookkeeping: every live future is on its loop's list so that close() can find it.
  FutureBase* list_previous = nullptr;
  FutureBase* list_next = nullptr;
  void forget_loop() noexcept { loop_ = nullptr; }
  virtual TaskCoreBase* as_task() noexcept { return nullptr; }
  // The exception the future finished with (not marking it retrieved), or null.
  std::exception_ptr stored_exception() const noexcept {
    return extras_ ? extras_->exception : std::exception_ptr();
  }

 protected:
  virtual ~FutureBase();
  // pending -> final state: tells the listeners, schedules the callbacks.
  void complete(State final_state);
  void report(const char* message) const;

  // Rarely used parts, allocated on first use to keep a sleeping task small.
  struct Extras {
    std::exception_ptr exception;  // here, not in the future: failures are the rare case
    std::string cancel_message;
    std::string name;
    std::vector<spindle::detail::UniqueFunction> callbacks;
  };
  Extras& extras();
  const std::string& cancel_message_or_empty() const noexcept;

  EventLoop* loop_;
  std::unique_ptr<Extras> extras_;
  CompletionNode* listeners_ = nullptr;
  std::atomic<std::uint32_t> references_{1};
  State state_ = State::pending;
  bool log_unretrieved_ = false;
  bool silenced_ = false;  // mark_retrieved() was called: never report

 private:
  void destroy_unreferenced() noexcept;
};

// Whether a result can be handed out by copy. std::is_copy_constructible says yes for a
// vector of move-only elements (its copy constructor is not constrained); look inside.
template <class T>
struct copyable_result : std::is_copy_constructible<T> {};
template <class T, class A>
struct copyable_result<std::vector<T, A>> : copyable_result<T> {};
template <class... T>
struct copyable_result<std::tuple<T...>> : std::conjunction<copyable_result<T>...> {};

// Where a future's or task's value lives once it is finished.
template <class T>
class ResultHolder {
 public:
  template <class U>
  void store(U&& value) {
    value_.emplace(std::forward<U>(value));
  }
  // A copy when T is copyable and `move` is false; otherwise the value itself, once.
  T take(bool move) {
    if (!value_) throw InvalidStateError("the move-only result was already taken");
    if constexpr (copyable_result<T>::value) {
      if (!move) return *value_;
    }
    T out = std::move(*value_);
    if constexpr (!copyable_result<T>::value) value_.reset();
    return out;
  }

 private:
  std::optional<T> value_;
};
template <>
class ResultHolder<void> {
 public:
  void take(bool) {}
};

template <class T>
class FutureState final : public FutureBase, public ResultHolder<T> {
 public:
  using FutureBase::FutureBase;
  template <class... U>
  void set_result(U&&... value) {
    if (state_ != State::pending) throw InvalidStateError("set_result: the future is already done");
    if constexpr (!std::is_void_v<T>) this->store(std::forward<U>(value)...);
    complete(State::finished);
  }
  T result(bool move) {
    check_result_ready();
    return this->take(move);
  }
};

// ---- coroutines ----

class PromiseBase {
 public:
  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> frame) noexcept {
      std::coroutine_handle<> next = frame.promise().continuation;
      return next ? next : std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  // Frames come from the small-block allocator (detail/asyncio_alloc.hpp).
  static void* operator new(std::size_t size) { return allocate_small(size); }
  static void operator delete(void* frame, std::size_t size) noexcept {
    deallocate_small(frame, size);
  }
  std::suspend_always initial_suspend() noexcept { return {}; }
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { exception = std::current_exception(); }

  std::coroutine_handle<> continuation;  // the awaiting frame (inline await); null for a root
  std::exception_ptr exception;
};

template <class T>
class Promise : public PromiseBase {
 public:
  Task<T> get_return_object() noexcept;
  template <class U = T>
  void return_value(U&& value) {
    result.emplace(std::forward<U>(value));
  }
  std::optional<T> result;
};
template <>
class Promise<void> : public PromiseBase {
 public:
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
};

// The shared state of a scheduled task: a future whose result comes from a coroutine.
//
// Who owns what: the TaskCore owns the coroutine frame (root) while the task is pending and
// destroys it as soon as the coroutine finishes (the result is moved into the core first).
// The core itself is reference counted: one reference per Task/AnyTask handle and awaiter,
// and one held by the loop while the task is pending ("running"). A handle dropped while
// the task is pending detaches it; the last reference reports an unretrieved exception.
class TaskCoreBase : public FutureBase {
 public:
  TaskCoreBase(EventLoop* loop, std::coroutine_handle<> root, std::string name);
  TaskCoreBase* as_task() noexcept override { return this; }

  // Task.cancel(msg): a request, delivered as CancelledError at the suspension point.
  bool cancel(const std::string& message) override;
  int uncancel() noexcept;
  int cancelling() const noexcept { return cancels_requested_; }
  std::string name() const;
  void set_name(std::string name) { extras().name = std::move(name); }
  std::string describe() const override;

  // The suspension protocol, used by every awaiter (see TaskSuspension).
  void suspend_on(Waiter* waiter, std::coroutine_handle<> resume_point);
  void yield(std::coroutine_handle<> resume_point);
  // Called by the waiter the task is suspended on: schedules the next step. Ignored if the
  // task waits on something else.
  void wake(Waiter* from);
  // If a cancellation is due at this resumption, clears it and returns true.
  bool take_pending_cancel() noexcept {
    if (!must_cancel_) return false;
    must_cancel_ = false;
    return true;
  }
  const std::string& cancel_message() const noexcept { return cancel_message_or_empty(); }

  void schedule_first_step();
  // Loop close with the task still pending: destroy its frame (after reporting).
  void abandon() noexcept;
  bool has_frame() const noexcept { return static_cast<bool>(root_); }
  // Runs the task until its next suspension (the ready queue's entry for a task).
  void step_from_queue();

 protected:
  // Moves the coroutine's result (or exception) from the finished frame into the core.
  virtual void take_frame_result() = 0;

  std::coroutine_handle<> root_;
  std::coroutine_handle<> resume_point_;

 private:
  void finish();

  void cancel_before_start();

  Waiter* waiter_ = nullptr;
  std::uint32_t number_;  // the N of the default name "Task-N" (wraps after 4 billion)
  int cancels_requested_ = 0;
  bool must_cancel_ = false;
  bool started_ = false;
};

template <class T>
class TaskCore final : public TaskCoreBase, public ResultHolder<T> {
 public:
  using TaskCoreBase::TaskCoreBase;
  T result(bool move) {
    check_result_ready();
    return this->take(move);
  }

 private:
  void take_frame_result() override {
    auto& promise = std::coroutine_handle<Promise<T>>::from_address(root_.address()).promise();
    if (promise.exception) {
      extras().exception = promise.exception;
      return;
    }
    if constexpr (!std::is_void_v<T>) {
      try {
        this->store(std::move(*promise.result));
      } catch (...) {
        extras().exception = std::current_exception();
      }
    }
  }
};

// The task running on this thread's loop right now, or null.
TaskCoreBase* current_task_core() noexcept;

// The base of awaiters that suspend the current task: records which task it is, and on
// resumption delivers a cancellation that arrived while the waiter could not be cancelled.
class TaskSuspension {
 protected:
  void suspend(Waiter* waiter, std::coroutine_handle<> frame) {
    task_ = current_task_core();
    if (task_ == nullptr) throw std::logic_error("asyncio: co_await outside a running task");
    task_->suspend_on(waiter, frame);
  }
  void deliver_pending_cancel() {
    if (task_ != nullptr && task_->take_pending_cancel())
      throw CancelledError(task_->cancel_message());
  }
  void wake(Waiter* from) { task_->wake(from); }
  TaskCoreBase* task_ = nullptr;
};

// The suspension of asyncio::sleep: a timer node in the awaiting frame; sleep(0) yields.
class SleepAwaiter final : TimerNode, Waiter, TaskSuspension {
 public:
  explicit SleepAwaiter(std::chrono::nanoseconds delay) noexcept : delay_(delay) {}
  SleepAwaiter(const SleepAwaiter&) = delete;
  SleepAwaiter& operator=(const SleepAwaiter&) = delete;
  ~SleepAwaiter();
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> frame);
  void await_resume();

 private:
  static void expire(TimerNode* node);
  bool cancel_wait(const std::string& message) override;
  std::chrono::nanoseconds delay_;
  bool cancelled_ = false;
};

// Awaiting a future or a scheduled task: listens for its completion. Cancelling the awaiting
// task cancels what it awaits (Python's fut_waiter.cancel()). The node is a base rather than
// a member so that move_ fits in its tail padding: this awaiter sizes the frame of every task
// that awaits, and 8 bytes less puts a sleeping task's frame in a smaller size class.
template <class Core, class T>
class FutureAwaiter final : Waiter, TaskSuspension, CompletionNode {
 public:
  FutureAwaiter(Core* core, bool move) : move_(move), core_(core) {
    core_->add_ref();
    owner = this;
    on_complete = [](CompletionNode* node) {
      auto* self = static_cast<FutureAwaiter*>(node->owner);
      self->wake(self);
    };
  }
  FutureAwaiter(const FutureAwaiter&) = delete;
  FutureAwaiter& operator=(const FutureAwaiter&) = delete;
  ~FutureAwaiter() {
    if (linked) core_->unsubscribe(node());
    core_->release();
  }

  bool await_ready() const noexcept { return core_->done(); }
  void await_suspend(std::coroutine_handle<> frame) {
    if (static_cast<FutureBase*>(core_) == current_task_core())
      throw std::logic_error("asyncio: a task cannot await itself");
    core_->subscribe(node());
    suspend(this, frame);
  }
  T await_resume() {
    if (linked) core_->unsubscribe(node());
    deliver_pending_cancel();
    // Move the value out only when awaited as an rvalue and no other handle (beyond the one
    // awaited and this awaiter's) can ask for it again.
    return core_->result(move_ && core_->reference_count() <= 2);
  }

 private:
  bool cancel_wait(const std::string& message) override { return core_->cancel(message); }
  CompletionNode* node() noexcept { return this; }

  bool move_;
  Core* core_;
};

// The state behind a Handle / TimerHandle. Shared between the loop's queue and the user's
// handles; counted atomically because call_soon_threadsafe creates it on another thread.
struct HandleState : TimerNode {
  std::atomic<int> references{1};
  std::atomic<bool> cancelled{false};
  spindle::detail::UniqueFunction function;
  EventLoop* loop = nullptr;
  void add_ref() noexcept { references.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (references.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

// The thread-safe way into a loop (call_soon_threadsafe's queue), shared with the bridges so
// that it outlives the loop: once the loop is closed it refuses work instead of touching a
// dead loop.
struct ThreadsafeGate {
  std::mutex mutex;
  std::vector<HandleState*> queue;  // guarded by mutex
  bool closed = false;              // guarded by mutex
  void* async = nullptr;            // the loop's uv_async_t, signalled under the mutex
};
// Queues `function` to run on the gate's loop. Thread-safe. False (and `function` destroyed
// here) if the loop is closed.
bool post_threadsafe(ThreadsafeGate& gate, spindle::detail::UniqueFunction function);

}  // namespace internal

// A callback scheduled by call_soon / call_soon_threadsafe (asyncio.Handle). Copyable.
class Handle {
 public:
  Handle() = default;
  Handle(const Handle& other) noexcept : state_(other.state_) {
    if (state_) state_->add_ref();
  }
  Handle& operator=(Handle other) noexcept {
    std::swap(state_, other.state_);
    return *this;
  }
  ~Handle() {
    if (state_) state_->release();
  }
  // Stops the callback from running if it has not run yet. Loop thread (as Python).
  void cancel();
  bool cancelled() const noexcept { return state_ && state_->cancelled.load(); }

 protected:
  explicit Handle(internal::HandleState* adopted) noexcept : state_(adopted) {}
  internal::HandleState* state_ = nullptr;
  friend class EventLoop;
};

// A callback scheduled by call_later / call_at (asyncio.TimerHandle).
class TimerHandle : public Handle {
 public:
  TimerHandle() = default;
  // When the callback is due, on the loop's clock.
  std::chrono::steady_clock::time_point when() const noexcept { return state_->when; }

 private:
  using Handle::Handle;
  friend class EventLoop;
};

// Keyword arguments of create_task.
struct TaskOptions {
  std::string name;  // empty: "Task-N"
};

// An asyncio event loop on libuv (asyncio.AbstractEventLoop). One loop per thread: every
// member must be called on the thread running the loop, except call_soon_threadsafe (and
// run_coroutine_threadsafe), which are safe from any thread. Callbacks run on that thread.
class EventLoop {
 public:
  using clock = std::chrono::steady_clock;

  EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  // Closes the loop (see close()).
  ~EventLoop();

  // Runs callback(args...) at the next iteration, after the callbacks already scheduled.
  template <class F, class... A>
  Handle call_soon(F&& callback, A&&... args) {
    check_open();
    auto* state = new internal::HandleState;
    state->function =
        spindle::detail::bind_call(std::forward<F>(callback), std::forward<A>(args)...);
    state->add_ref();  // the queue's reference
    push_ready({&call_handle, state});
    return Handle(state);
  }
  // call_soon from any thread: wakes the loop. Throws std::logic_error once the loop is closed.
  template <class F, class... A>
  Handle call_soon_threadsafe(F&& callback, A&&... args) {
    auto* state = new internal::HandleState;
    state->function =
        spindle::detail::bind_call(std::forward<F>(callback), std::forward<A>(args)...);
    state->add_ref();
    push_threadsafe(state);
    return Handle(state);
  }
  // Runs callback(args...) once `delay` has passed (not before). Loop thread.
  template <class Rep, class Period, class F, class... A>
  TimerHandle call_later(std::chrono::duration<Rep, Period> delay, F&& callback, A&&... args) {
    return call_at(time() + std::chrono::ceil<clock::duration>(delay), std::forward<F>(callback),
                   std::forward<A>(args)...);
  }
  // Runs callback(args...) once time() reaches `when`. Loop thread.
  template <class F, class... A>
  TimerHandle call_at(clock::time_point when, F&& callback, A&&... args) {
    check_open();
    auto* state = new internal::HandleState;
    state->function =
        spindle::detail::bind_call(std::forward<F>(callback), std::forward<A>(args)...);
    state->loop = this;
    state->when = when;
    state->fire = &fire_timer_handle;
    state->add_ref();  // the heap's reference
    add_timer(state);
    return TimerHandle(state);
  }
  // The loop's clock (monotonic), as loop.time().
  clock::time_point time() const noexcept { return clock::now(); }

  // Runs the loop until `task` is done and returns its result (or rethrows). A lazy task is
  // scheduled on this loop first. Blocks the calling thread. std::logic_error if the loop is
  // closed, already running, or another loop runs on this thread, or if stop() ends the
  // loop before the task is done.
  template <class T>
  T run_until_complete(Task<T> task);
  template <class T>
  T run_until_complete(Future<T> future);
  // Runs until stop() is called. Blocks the calling thread.
  void run_forever();
  // Makes run_forever / run_until_complete return after the current iteration, without
  // waiting for I/O first (also when called from a libuv callback). Loop thread only.
  void stop() noexcept;
  bool is_running() const noexcept { return running_; }
  bool is_closed() const noexcept { return closed_; }
  // Closes the loop: discards pending callbacks, reports and destroys every task still
  // pending ("Task was destroyed but it is pending!"), frees the libuv loop. Idempotent;
  // std::logic_error if running.
  void close();

  // A new pending future bound to this loop (loop.create_future()).
  template <class T = void>
  Future<T> create_future();
  // Schedules `task` (a lazy Task) to run on this loop; returns the scheduled handle.
  template <class T>
  Task<T> create_task(Task<T> task, TaskOptions options = {});

  using ExceptionHandler = std::function<void(EventLoop&, const ExceptionContext&)>;
  // Replaces the handler of errors nobody caught (empty: the default handler).
  void set_exception_handler(ExceptionHandler handler) { exception_handler_ = std::move(handler); }
  void call_exception_handler(const ExceptionContext& context);
  // Prints the context to stderr, as Python's default handler logs it.
  static void default_exception_handler(const ExceptionContext& context);

  // Runs function(args...) on `executor` and gives an asyncio Future of its result
  // (loop.run_in_executor). Defined in detail/asyncio_bridge.hpp.
  template <class F, class... A>
  auto run_in_executor(futures::Executor& executor, F&& function, A&&... args);
  // The same on the loop's default executor (Python's None).
  template <class F, class... A>
  auto run_in_executor(std::nullptr_t, F&& function, A&&... args);
  // The executor run_in_executor(nullptr, ...) and to_thread use: a ThreadPoolExecutor made
  // on first use, unless set_default_executor gave another.
  futures::Executor& default_executor();
  void set_default_executor(std::shared_ptr<futures::Executor> executor);
  // Shuts the default executor down, waiting for its calls while the loop keeps running
  // (what asyncio.run does at its end). Blocks.
  void shutdown_default_executor();

  // Runs callback on the loop (via call_soon) each time signal `signum` arrives
  // (loop.add_signal_handler; libuv's uv_signal). Replaces an earlier handler.
  // std::invalid_argument for an invalid or uncatchable signal.
  void add_signal_handler(int signum, std::function<void()> callback);
  // False if no handler was set for `signum`.
  bool remove_signal_handler(int signum);

  // ---- internal interface (used by tasks, awaiters and libuv-based modules) ----
  void push_ready(internal::ReadyEntry entry) { ready_.push_back(entry); }
  void add_timer(internal::TimerNode* node);
  void remove_timer(internal::TimerNode* node) noexcept;
  void register_future(internal::FutureBase* future) noexcept;
  void unregister_future(internal::FutureBase* future) noexcept;
  internal::TaskCoreBase* current_task() const noexcept { return current_task_; }
  void set_current_task(internal::TaskCoreBase* task) noexcept { current_task_ = task; }
  std::vector<internal::TaskCoreBase*> pending_tasks() const;
  void* uv_loop_pointer() const noexcept;
  // asyncio.run's ending: cancels every pending task and runs until they are all done.
  void cancel_all_tasks();
  std::uint64_t next_task_number() noexcept { return ++task_counter_; }
  const std::shared_ptr<internal::ThreadsafeGate>& threadsafe_gate() const noexcept {
    return gate_;
  }

 private:
  struct Uv;
  void check_open() const;
  void push_threadsafe(internal::HandleState* state);
  void run_once();
  // Polls for I/O without sleeping for a short while; true when that found work.
  bool poll_briefly();
  // uv_run(mode) on this loop, marked as such for stop().
  void run_uv(int mode);
  void enter_running();
  void leave_running() noexcept;
  void drain_threadsafe();
  void sift_up(std::size_t index) noexcept;
  void sift_down(std::size_t index) noexcept;
  static void call_handle(void* state, bool run);
  static void fire_timer_handle(internal::TimerNode* node);
  friend class Handle;

  std::unique_ptr<Uv> uv_;
  std::vector<internal::ReadyEntry> ready_;
  std::vector<internal::ReadyEntry> running_batch_;
  std::vector<internal::TimerNode*> timers_;
  std::uint32_t timer_sequence_ = 0;
  std::uint64_t task_counter_ = 0;
  internal::FutureBase* futures_ = nullptr;  // every live future and task of this loop
  internal::TaskCoreBase* current_task_ = nullptr;
  ExceptionHandler exception_handler_;
  std::shared_ptr<internal::ThreadsafeGate> gate_;
  std::shared_ptr<futures::Executor> default_executor_;
  std::thread::id thread_;
  bool stopping_ = false;
  bool running_ = false;
  bool in_uv_run_ = false;  // inside run_once's uv_run: stop() must end it too
  bool was_busy_ = false;   // the last iteration ran callbacks (run_once polls before sleeping)
  bool closed_ = false;
};

namespace internal {
// The loop running on this thread, or null.
EventLoop* running_loop() noexcept;
}  // namespace internal

// The loop running on this thread; std::logic_error if none (asyncio.get_running_loop).
EventLoop& get_running_loop();

}  // namespace spindle::asyncio
