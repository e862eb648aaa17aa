// The asyncio event loop on libuv: a ready queue of callbacks, one timer heap driven by a
// single uv_timer_t, and a uv_async_t for call_soon_threadsafe. See docs/design/asyncio.md.
#include <csignal>
#include <cstdio>
#include <map>
#include <system_error>

#include "spindle/detail/asyncio_uv.hpp"
#include "spindle/detail/exception_info.hpp"
#include "spindle/detail/future_core.hpp"

namespace spindle::asyncio {
namespace {

thread_local EventLoop* tls_running_loop = nullptr;

void throw_uv_error(int code, const char* what) {
  throw std::system_error(-code, std::generic_category(), what);
}

bool fires_before(const internal::TimerNode* a, const internal::TimerNode* b) noexcept {
  return a->when < b->when || (a->when == b->when && a->sequence < b->sequence);
}

}  // namespace

namespace internal {
EventLoop* running_loop() noexcept {
  return tls_running_loop;
}
TaskCoreBase* current_task_core() noexcept {
  return tls_running_loop != nullptr ? tls_running_loop->current_task() : nullptr;
}
}  // namespace internal

EventLoop& get_running_loop() {
  if (tls_running_loop == nullptr) throw std::logic_error("asyncio: no running event loop");
  return *tls_running_loop;
}

struct SignalEntry {
  uv_signal_t handle;
  EventLoop* loop;
  std::function<void()> callback;
};

struct EventLoop::Uv {
  uv_loop_t loop;
  uv_timer_t timer;
  uv_async_t async;
  std::map<int, SignalEntry*> signals;
};

namespace internal {
bool post_threadsafe(ThreadsafeGate& gate, spindle::detail::UniqueFunction function) {
  auto* state = new HandleState;
  state->function = std::move(function);
  {
    std::lock_guard lock(gate.mutex);
    if (!gate.closed) {
      gate.queue.push_back(state);
      uv_async_send(static_cast<uv_async_t*>(gate.async));
      return true;
    }
  }
  state->release();  // outside the mutex: the function's destructor may post again
  return false;
}
}  // namespace internal

EventLoop::EventLoop()
    : uv_(std::make_unique<Uv>()), gate_(std::make_shared<internal::ThreadsafeGate>()) {
  if (int rc = uv_loop_init(&uv_->loop); rc != 0) throw_uv_error(rc, "uv_loop_init");
  uv_timer_init(&uv_->loop, &uv_->timer);
  uv_->timer.data = this;
  int rc = uv_async_init(&uv_->loop, &uv_->async, [](uv_async_t* async) {
    static_cast<EventLoop*>(async->data)->drain_threadsafe();
  });
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&uv_->timer), nullptr);
    uv_run(&uv_->loop, UV_RUN_DEFAULT);
    uv_loop_close(&uv_->loop);
    throw_uv_error(rc, "uv_async_init");
  }
  uv_->async.data = this;
  gate_->async = &uv_->async;
}

EventLoop::~EventLoop() {
  if (running_) return;  // destroyed from inside its own callback: nothing safe to do
  close();
}

void* EventLoop::uv_loop_pointer() const noexcept {
  return &uv_->loop;
}

void EventLoop::stop() noexcept {
  stopping_ = true;
  // Called from a libuv callback that ran in uv_run's first timer phase, the poll that follows
  // would otherwise wait for I/O with no timer left to end it. Only then: uv_stop's flag
  // outlives the uv_run it was meant for and would make the next one (close()'s) do nothing.
  if (in_uv_run_) uv_stop(&uv_->loop);
}

void EventLoop::run_uv(int mode) {
  in_uv_run_ = true;
  uv_run(&uv_->loop, static_cast<uv_run_mode>(mode));
  in_uv_run_ = false;
}

void EventLoop::check_open() const {
  if (closed_) throw std::logic_error("asyncio: the event loop is closed");
}

void EventLoop::push_threadsafe(internal::HandleState* state) {
  {
    std::lock_guard lock(gate_->mutex);
    if (!gate_->closed) {
      gate_->queue.push_back(state);
      // Under the mutex, so that close() cannot close the async handle in between.
      uv_async_send(&uv_->async);
      return;
    }
  }
  state->release();
  state->release();
  throw std::logic_error("asyncio: call_soon_threadsafe on a closed event loop");
}

void EventLoop::drain_threadsafe() {
  std::vector<internal::HandleState*> arrived;
  {
    std::lock_guard lock(gate_->mutex);
    arrived.swap(gate_->queue);
  }
  for (auto* state : arrived)
    push_ready({&call_handle, state});
}

void EventLoop::call_handle(void* argument, bool run) {
  auto* state = static_cast<internal::HandleState*>(argument);
  if (run && !state->cancelled.load(std::memory_order_relaxed)) {
    try {
      state->function();
    } catch (...) {
      ExceptionContext context{"Exception in callback", std::current_exception(), "<Handle>"};
      if (tls_running_loop != nullptr)
        tls_running_loop->call_exception_handler(context);
      else
        default_exception_handler(context);
    }
  }
  state->release();
}

void EventLoop::fire_timer_handle(internal::TimerNode* node) {
  auto* state = static_cast<internal::HandleState*>(node);
  // The heap's reference moves to the ready queue.
  state->loop->push_ready({&call_handle, state});
}

void Handle::cancel() {
  if (state_ == nullptr || state_->cancelled.exchange(true)) return;
  if (state_->scheduled() && state_->loop != nullptr) {
    state_->loop->remove_timer(state_);
    state_->release();  // the heap's reference
  }
}

// ---- timer heap ----

void EventLoop::add_timer(internal::TimerNode* node) {
  node->sequence = ++timer_sequence_;
  node->heap_index = static_cast<std::uint32_t>(timers_.size());
  timers_.push_back(node);
  sift_up(node->heap_index);
}

void EventLoop::remove_timer(internal::TimerNode* node) noexcept {
  const std::size_t index = node->heap_index;
  if (index == internal::not_in_heap) return;
  internal::TimerNode* last = timers_.back();
  timers_.pop_back();
  node->heap_index = internal::not_in_heap;
  if (index < timers_.size()) {
    timers_[index] = last;
    last->heap_index = static_cast<std::uint32_t>(index);
    sift_down(index);
    sift_up(last->heap_index);
  }
}

void EventLoop::sift_up(std::size_t index) noexcept {
  internal::TimerNode* node = timers_[index];
  while (index > 0) {
    std::size_t parent = (index - 1) / 2;
    if (!fires_before(node, timers_[parent])) break;
    timers_[index] = timers_[parent];
    timers_[index]->heap_index = static_cast<std::uint32_t>(index);
    index = parent;
  }
  timers_[index] = node;
  node->heap_index = static_cast<std::uint32_t>(index);
}

void EventLoop::sift_down(std::size_t index) noexcept {
  internal::TimerNode* node = timers_[index];
  const std::size_t size = timers_.size();
  while (true) {
    std::size_t child = 2 * index + 1;
    if (child >= size) break;
    if (child + 1 < size && fires_before(timers_[child + 1], timers_[child])) ++child;
    if (!fires_before(timers_[child], node)) break;
    timers_[index] = timers_[child];
    timers_[index]->heap_index = static_cast<std::uint32_t>(index);
    index = child;
  }
  timers_[index] = node;
  node->heap_index = static_cast<std::uint32_t>(index);
}

// ---- running ----

void EventLoop::enter_running() {
  check_open();
  if (running_) throw std::logic_error("asyncio: this event loop is already running");
  if (tls_running_loop != nullptr)
    throw std::logic_error("asyncio: cannot run the event loop while another loop is running");
  running_ = true;
  thread_ = std::this_thread::get_id();
  tls_running_loop = this;
}

void EventLoop::leave_running() noexcept {
  running_ = false;
  stopping_ = false;
  tls_running_loop = nullptr;
}

// How long a loop that has just run callbacks polls for I/O before it sleeps. A peer that
// answers within microseconds (a request and its response over loopback, a pipe to a busy
// child) is then seen without a wake-up from sleep, which costs 20-50 us on a VM. Not on a
// single CPU, where polling would only keep the peer from running.
constexpr auto kBusyPoll = std::chrono::microseconds(50);

bool EventLoop::poll_briefly() {
  const auto until = clock::now() + kBusyPoll;
  do {
    run_uv(UV_RUN_NOWAIT);
    if (!ready_.empty() || stopping_) return true;
    const auto now = clock::now();
    if (!timers_.empty() && timers_.front()->when <= now) return true;
    if (now >= until) return false;
  } while (true);
}

void EventLoop::run_once() {
  if (!ready_.empty() || stopping_) {
    run_uv(UV_RUN_NOWAIT);
  } else if (was_busy_ && !spindle::detail::single_cpu_process() && poll_briefly()) {
    // found work without sleeping
  } else if (!timers_.empty()) {
    const auto wait = timers_.front()->when - clock::now();
    if (wait <= clock::duration::zero()) {
      run_uv(UV_RUN_NOWAIT);
    } else {
      const auto milliseconds = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
      // uv_stop in the callback: the timer may fire in uv_run's first timer phase (before the
      // poll), and a stopped loop polls without blocking instead of waiting for I/O forever.
      uv_update_time(&uv_->loop);
      uv_timer_start(
          &uv_->timer, [](uv_timer_t* timer) { uv_stop(timer->loop); },
          static_cast<std::uint64_t>(milliseconds), 0);
      run_uv(UV_RUN_ONCE);
      uv_timer_stop(&uv_->timer);
    }
  } else {
    run_uv(UV_RUN_ONCE);  // the async handle keeps this waiting for work
  }
  // Due timers join the ready queue, then this iteration runs what is ready now; callbacks
  // scheduled meanwhile wait for the next iteration (as Python's _run_once).
  if (!timers_.empty()) {
    const auto now = clock::now();
    while (!timers_.empty() && timers_.front()->when <= now) {
      internal::TimerNode* node = timers_.front();
      remove_timer(node);
      node->fire(node);
    }
  }
  running_batch_.swap(ready_);
  was_busy_ = !running_batch_.empty();
  for (const internal::ReadyEntry& entry : running_batch_)
    entry.call(entry.argument, true);
  running_batch_.clear();
  // A burst (a gather of many tasks) would otherwise leave both queues at its size.
  if (running_batch_.capacity() > 4096) running_batch_.shrink_to_fit();
}

void EventLoop::run_forever() {
  enter_running();
  try {
    while (true) {
      run_once();
      if (stopping_) break;
    }
  } catch (...) {
    leave_running();
    throw;
  }
  leave_running();
}

void EventLoop::register_future(internal::FutureBase* future) noexcept {
  future->list_previous = nullptr;
  future->list_next = futures_;
  if (futures_ != nullptr) futures_->list_previous = future;
  futures_ = future;
}

void EventLoop::unregister_future(internal::FutureBase* future) noexcept {
  if (future->list_previous != nullptr)
    future->list_previous->list_next = future->list_next;
  else if (futures_ == future)
    futures_ = future->list_next;
  if (future->list_next != nullptr) future->list_next->list_previous = future->list_previous;
  future->list_previous = future->list_next = nullptr;
}

std::vector<internal::TaskCoreBase*> EventLoop::pending_tasks() const {
  std::vector<internal::TaskCoreBase*> tasks;
  for (internal::FutureBase* future = futures_; future != nullptr; future = future->list_next) {
    internal::TaskCoreBase* task = future->as_task();
    if (task != nullptr && !task->done() && task->has_frame()) tasks.push_back(task);
  }
  return tasks;
}

void EventLoop::cancel_all_tasks() {
  std::vector<internal::TaskCoreBase*> tasks = pending_tasks();
  if (tasks.empty()) return;
  for (auto* task : tasks)
    task->add_ref();
  for (auto* task : tasks)
    task->cancel("");
  auto all_done = [&] {
    for (auto* task : tasks)
      if (!task->done() && task->has_frame()) return false;
    return true;
  };
  enter_running();
  try {
    while (!all_done())
      run_once();
  } catch (...) {
    leave_running();
    for (auto* task : tasks)
      task->release();
    throw;
  }
  leave_running();
  for (auto* task : tasks) {
    if (task->state() == internal::FutureBase::State::finished && task->stored_exception()) {
      call_exception_handler({"unhandled exception during asyncio.run() shutdown",
                              task->stored_exception(), task->describe()});
      task->mark_retrieved();
    }
    task->release();
  }
}

void EventLoop::close() {
  if (closed_) return;
  if (running_) throw std::logic_error("asyncio: cannot close a running event loop");
  drain_threadsafe();
  auto discard_ready = [this] {
    while (!ready_.empty()) {
      std::vector<internal::ReadyEntry> batch;
      batch.swap(ready_);
      for (const internal::ReadyEntry& entry : batch)
        entry.call(entry.argument, false);
    }
  };
  discard_ready();
  // Tasks still pending: reported, then their frames destroyed (no frame outlives its loop).
  std::vector<internal::TaskCoreBase*> pending = pending_tasks();
  for (auto* task : pending)
    task->add_ref();
  for (auto* task : pending) {
    if (!task->has_frame()) continue;
    call_exception_handler({"Task was destroyed but it is pending!", nullptr, task->describe()});
    task->abandon();
  }
  for (auto* task : pending)
    task->release();
  discard_ready();
  while (!timers_.empty()) {
    internal::TimerNode* node = timers_.back();
    remove_timer(node);
    if (node->fire == &fire_timer_handle) static_cast<internal::HandleState*>(node)->release();
  }
  while (!uv_->signals.empty())
    remove_signal_handler(uv_->signals.begin()->first);
  // Futures and finished tasks still referenced by handles outlive the loop: they forget it.
  while (futures_ != nullptr) {
    internal::FutureBase* future = futures_;
    unregister_future(future);
    future->forget_loop();
  }
  // Only now refuse thread-safe work: whoever is refused afterwards may drop asyncio handles
  // on its own thread, which is safe once no future refers to the loop.
  std::vector<internal::HandleState*> late;
  {
    std::lock_guard lock(gate_->mutex);
    gate_->closed = true;
    late.swap(gate_->queue);
  }
  for (auto* state : late)
    state->release();
  closed_ = true;
  if (default_executor_) {
    default_executor_->shutdown(false);
    default_executor_.reset();  // waits for the calls already running
  }
  uv_walk(
      &uv_->loop,
      [](uv_handle_t* handle, void*) {
        if (!uv_is_closing(handle)) uv_close(handle, nullptr);
      },
      nullptr);
  uv_run(&uv_->loop, UV_RUN_DEFAULT);
  uv_loop_close(&uv_->loop);
}

futures::Executor& EventLoop::default_executor() {
  check_open();
  if (!default_executor_) default_executor_ = std::make_shared<futures::ThreadPoolExecutor>();
  return *default_executor_;
}

void EventLoop::set_default_executor(std::shared_ptr<futures::Executor> executor) {
  if (!executor) throw std::invalid_argument("set_default_executor needs an executor");
  default_executor_ = std::move(executor);
}

void EventLoop::shutdown_default_executor() {
  if (!default_executor_) return;
  std::shared_ptr<futures::Executor> executor = std::move(default_executor_);
  std::thread waiter([executor, gate = gate_, this] {
    executor->shutdown(true);
    (void)internal::post_threadsafe(*gate, [this] { stop(); });
  });
  try {
    run_forever();
  } catch (...) {
    waiter.join();
    throw;
  }
  waiter.join();
}

void EventLoop::add_signal_handler(int signum, std::function<void()> callback) {
  check_open();
  if (!callback) throw std::invalid_argument("add_signal_handler needs a callable");
  if (signum <= 0 || signum >= NSIG || signum == SIGKILL || signum == SIGSTOP)
    throw std::invalid_argument("add_signal_handler: signal " + std::to_string(signum) +
                                " cannot be caught");
  if (auto found = uv_->signals.find(signum); found != uv_->signals.end()) {
    found->second->callback = std::move(callback);
    return;
  }
  auto entry = std::make_unique<SignalEntry>();
  entry->loop = this;
  entry->callback = std::move(callback);
  uv_signal_init(&uv_->loop, &entry->handle);
  entry->handle.data = entry.get();
  const int rc = uv_signal_start(
      &entry->handle,
      [](uv_signal_t* handle, int) {
        auto* signal = static_cast<SignalEntry*>(handle->data);
        signal->loop->call_soon(signal->callback);
      },
      signum);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&entry.release()->handle),
             [](uv_handle_t* handle) { delete static_cast<SignalEntry*>(handle->data); });
    throw std::invalid_argument("add_signal_handler: signal " + std::to_string(signum) + ": " +
                                uv_strerror(rc));
  }
  uv_->signals.emplace(signum, entry.release());
}

bool EventLoop::remove_signal_handler(int signum) {
  auto found = uv_->signals.find(signum);
  if (found == uv_->signals.end()) return false;
  SignalEntry* entry = found->second;
  uv_->signals.erase(found);
  uv_signal_stop(&entry->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&entry->handle),
           [](uv_handle_t* handle) { delete static_cast<SignalEntry*>(handle->data); });
  return true;
}

void EventLoop::call_exception_handler(const ExceptionContext& context) {
  try {
    if (exception_handler_)
      exception_handler_(*this, context);
    else
      default_exception_handler(context);
  } catch (...) {
    // A failing handler must not take the loop down (Python logs and goes on).
    std::fputs("asyncio: the exception handler failed\n", stderr);
  }
}

void EventLoop::default_exception_handler(const ExceptionContext& context) {
  std::string text = context.message;
  if (!context.subject.empty()) text.append(1, '\n').append(context.subject);
  if (context.exception)
    text.append(1, '\n').append(spindle::detail::format_exception(context.exception));
  text.append(1, '\n');
  std::fputs(text.c_str(), stderr);
}

}  // namespace spindle::asyncio
