// Futures and tasks: completion, cancellation requests and the task's step (Python's
// Future and Task._Task__step). See docs/design/asyncio.md.
#include <atomic>

#include "spindle/detail/asyncio_core.hpp"
#include "spindle/detail/exception_info.hpp"
#include "spindle/trace.hpp"

namespace spindle::asyncio::internal {
namespace {

std::atomic<std::uint64_t> task_counter{0};

void run_task_step(void* core, bool run);

const char* state_word(FutureBase::State state) {
  switch (state) {
    case FutureBase::State::pending:
      return "pending";
    case FutureBase::State::cancelled:
      return "cancelled";
    case FutureBase::State::finished:
      break;
  }
  return "finished";
}

}  // namespace

// ---- FutureBase ----

FutureBase::FutureBase(EventLoop* loop) : loop_(loop) {
  if (loop_ != nullptr) loop_->register_future(this);
}

FutureBase::~FutureBase() {
  if (loop_ != nullptr) loop_->unregister_future(this);
}

FutureBase::Extras& FutureBase::extras() {
  if (!extras_) extras_ = std::make_unique<Extras>();
  return *extras_;
}

const std::string& FutureBase::cancel_message_or_empty() const noexcept {
  static const std::string empty;
  return extras_ ? extras_->cancel_message : empty;
}

void FutureBase::destroy_unreferenced() noexcept {
  if (state_ == State::finished && log_unretrieved_ && stored_exception())
    report(as_task() != nullptr ? "Task exception was never retrieved"
                                : "Future exception was never retrieved");
  delete this;
}

void FutureBase::report(const char* message) const {
  try {
    ExceptionContext context{message, stored_exception(), describe()};
    if (loop_ != nullptr)
      loop_->call_exception_handler(context);
    else
      EventLoop::default_exception_handler(context);
  } catch (...) {
    // Reporting is best effort: nothing may escape a release().
  }
}

bool FutureBase::cancel(const std::string& message) {
  log_unretrieved_ = false;
  if (state_ != State::pending) return false;
  if (!message.empty()) extras().cancel_message = message;
  complete(State::cancelled);
  return true;
}

void FutureBase::set_exception(std::exception_ptr error) {
  if (!error) throw std::invalid_argument("set_exception needs an exception");
  if (state_ != State::pending)
    throw InvalidStateError("set_exception: the future is already done");
  extras().exception = std::move(error);
  log_unretrieved_ = !silenced_;
  complete(State::finished);
}

CancelledError FutureBase::make_cancelled_error() const {
  return CancelledError(cancel_message_or_empty());
}

std::exception_ptr FutureBase::exception() {
  if (state_ == State::cancelled) throw make_cancelled_error();
  if (state_ == State::pending) throw InvalidStateError("the exception is not set yet");
  log_unretrieved_ = false;
  return stored_exception();
}

void FutureBase::check_result_ready() {
  if (state_ == State::cancelled) throw make_cancelled_error();
  if (state_ == State::pending) throw InvalidStateError("the result is not set yet");
  log_unretrieved_ = false;
  if (std::exception_ptr error = stored_exception()) std::rethrow_exception(error);
}

void FutureBase::subscribe(CompletionNode* node) noexcept {
  node->previous = nullptr;
  node->next = listeners_;
  if (listeners_ != nullptr) listeners_->previous = node;
  listeners_ = node;
  node->linked = true;
}

void FutureBase::unsubscribe(CompletionNode* node) noexcept {
  if (!node->linked) return;
  if (node->previous != nullptr)
    node->previous->next = node->next;
  else
    listeners_ = node->next;
  if (node->next != nullptr) node->next->previous = node->previous;
  node->previous = node->next = nullptr;
  node->linked = false;
}

void FutureBase::add_callback(spindle::detail::UniqueFunction callback) {
  if (done()) {
    if (loop_ != nullptr && !loop_->is_closed()) loop_->call_soon(std::move(callback));
    return;
  }
  extras().callbacks.push_back(std::move(callback));
}

void FutureBase::complete(State final_state) {
  state_ = final_state;
  // Listeners were subscribed newest first; tell them oldest first, as callbacks are run.
  CompletionNode* last = listeners_;
  while (last != nullptr && last->next != nullptr)
    last = last->next;
  while (last != nullptr) {
    CompletionNode* node = last;
    last = node->previous;
    unsubscribe(node);
    node->on_complete(node);
  }
  if (extras_ && !extras_->callbacks.empty()) {
    std::vector<spindle::detail::UniqueFunction> callbacks;
    callbacks.swap(extras_->callbacks);
    if (loop_ != nullptr && !loop_->is_closed())
      for (auto& callback : callbacks)
        loop_->call_soon(std::move(callback));
  }
}

std::string FutureBase::describe() const {
  std::string text = std::string("<Future ") + state_word(state_);
  if (std::exception_ptr error = stored_exception(); state_ == State::finished && error)
    text += " exception=" + spindle::detail::format_exception(error);
  return text + ">";
}

// ---- TaskCoreBase ----

namespace {
void run_task_step(void* core, bool run) {
  if (run) static_cast<TaskCoreBase*>(core)->step_from_queue();
}
}  // namespace

TaskCoreBase::TaskCoreBase(EventLoop* loop, std::coroutine_handle<> root, std::string name)
    : FutureBase(loop), root_(root), resume_point_(root) {
  number_ = static_cast<std::uint32_t>(task_counter.fetch_add(1, std::memory_order_relaxed) + 1);
  if (!name.empty()) extras().name = std::move(name);
}

std::string TaskCoreBase::name() const {
  if (extras_ && !extras_->name.empty()) return extras_->name;
  return "Task-" + std::to_string(number_);
}

std::string TaskCoreBase::describe() const {
  std::string text = std::string("<Task ") + state_word(state_) + " name='" + name() + "'";
  if (std::exception_ptr error = stored_exception(); state_ == State::finished && error)
    text += " exception=" + spindle::detail::format_exception(error);
  return text + ">";
}

bool TaskCoreBase::cancel(const std::string& message) {
  log_unretrieved_ = false;
  if (done() || !root_) return false;
  ++cancels_requested_;
  if (!message.empty() || extras_) extras().cancel_message = message;
  if (waiter_ != nullptr && waiter_->cancel_wait(message)) return true;
  must_cancel_ = true;
  return true;
}

int TaskCoreBase::uncancel() noexcept {
  if (cancels_requested_ > 0) {
    --cancels_requested_;
    if (cancels_requested_ == 0) must_cancel_ = false;
  }
  return cancels_requested_;
}

void TaskCoreBase::suspend_on(Waiter* waiter, std::coroutine_handle<> resume_point) {
  resume_point_ = resume_point;
  waiter_ = waiter;
  if (must_cancel_ && waiter->cancel_wait(cancel_message())) must_cancel_ = false;
}

void TaskCoreBase::yield(std::coroutine_handle<> resume_point) {
  resume_point_ = resume_point;
  waiter_ = nullptr;
  loop_->push_ready({&run_task_step, this});
}

void TaskCoreBase::wake(Waiter* from) {
  if (from == nullptr || waiter_ != from) return;
  waiter_ = nullptr;
  loop_->push_ready({&run_task_step, this});
}

void TaskCoreBase::schedule_first_step() {
  loop_->push_ready({&run_task_step, this});
}

void TaskCoreBase::step_from_queue() {
  if (!root_) return;  // abandoned meanwhile
  EventLoop* loop = loop_;
  TaskCoreBase* previous = loop->current_task();
  if (!started_ && must_cancel_) {
    // Cancelled before its first step: the coroutine never runs (Python throws
    // CancelledError into the unstarted coroutine, which ends it at once).
    cancel_before_start();
    return;
  }
  started_ = true;
  loop->set_current_task(this);
  {
    const trace::ScopedSpan span("asyncio", [this] { return name(); });
    resume_point_.resume();
  }
  loop->set_current_task(previous);
  if (root_.done()) finish();
}

void TaskCoreBase::cancel_before_start() {
  must_cancel_ = false;
  root_.destroy();
  root_ = {};
  resume_point_ = {};
  complete(State::cancelled);
  release();  // the running reference
}

void TaskCoreBase::finish() {
  take_frame_result();
  root_.destroy();
  root_ = {};
  resume_point_ = {};
  State final_state = State::finished;
  if (std::exception_ptr error = stored_exception()) {
    try {
      std::rethrow_exception(error);
    } catch (const CancelledError& cancelled) {
      final_state = State::cancelled;
      if (*cancelled.what() != '\0' || extras_) extras().cancel_message = cancelled.what();
      extras_->exception = nullptr;
    } catch (...) {
      log_unretrieved_ = !silenced_;
    }
  } else if (must_cancel_) {
    // The coroutine returned although a cancellation was requested while it ran.
    must_cancel_ = false;
    final_state = State::cancelled;
  }
  complete(final_state);
  release();  // the running reference
}

void TaskCoreBase::abandon() noexcept {
  if (!root_) return;
  root_.destroy();
  root_ = {};
  resume_point_ = {};
  waiter_ = nullptr;
  release();  // the running reference
}

}  // namespace spindle::asyncio::internal
