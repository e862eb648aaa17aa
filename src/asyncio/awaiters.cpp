// sleep, gather, wait, wait_for, shield, TaskGroup, current_task, all_tasks: the waiting
// each of them does on behalf of the current task.
#include <string>

#include "spindle/asyncio.hpp"

namespace spindle::asyncio {
namespace internal {

bool is_cancelled_error(const std::exception_ptr& error) noexcept {
  if (!error) return false;
  try {
    std::rethrow_exception(error);
  } catch (const CancelledError&) {
    return true;
  } catch (...) {
    return false;
  }
}

std::chrono::nanoseconds checked_timeout(std::chrono::nanoseconds timeout, const char* function) {
  if (timeout < std::chrono::nanoseconds::zero())
    throw std::invalid_argument(std::string("asyncio::") + function +
                                ": the timeout must not be negative");
  return timeout;
}

void run_until_done(EventLoop& loop, FutureBase* core) {
  if (core->done()) return;
  struct StopNode {
    CompletionNode node;
    EventLoop* loop;
  } stop{{}, &loop};
  stop.node.owner = &stop;
  stop.node.on_complete = [](CompletionNode* node) {
    static_cast<StopNode*>(node->owner)->loop->stop();
  };
  core->add_ref();
  core->subscribe(&stop.node);
  try {
    loop.run_forever();
  } catch (...) {
    core->unsubscribe(&stop.node);
    core->release();
    throw;
  }
  core->unsubscribe(&stop.node);
  const bool done = core->done();
  core->release();
  if (!done) throw std::logic_error("asyncio: the event loop stopped before the task completed");
}

// ---- sleep ----

SleepAwaiter::~SleepAwaiter() {
  if (scheduled()) task_->loop()->remove_timer(this);
}

void SleepAwaiter::await_suspend(std::coroutine_handle<> frame) {
  task_ = current_task_core();
  if (task_ == nullptr) throw std::logic_error("asyncio::sleep outside a running task");
  if (delay_ <= std::chrono::nanoseconds::zero()) {
    task_->yield(frame);  // a cancellation meanwhile is delivered at resumption
    return;
  }
  when = Clock::now() + std::chrono::ceil<Clock::duration>(delay_);
  fire = &expire;
  task_->loop()->add_timer(this);
  suspend(this, frame);
}

void SleepAwaiter::await_resume() {
  deliver_pending_cancel();
  if (cancelled_) throw CancelledError(task_->cancel_message());
}

void SleepAwaiter::expire(TimerNode* node) {
  auto* self = static_cast<SleepAwaiter*>(node);
  self->wake(self);
}

bool SleepAwaiter::cancel_wait(const std::string&) {
  if (scheduled()) task_->loop()->remove_timer(this);
  cancelled_ = true;
  wake(this);
  return true;
}

Task<> sleep_for(std::chrono::nanoseconds delay) {
  co_await SleepAwaiter(delay);
}

// ---- gather ----

GatherAwaiter::GatherAwaiter(std::vector<FutureBase*> children, bool return_exceptions)
    : children_(std::move(children)),
      nodes_(new CompletionNode[children_.size()]),
      return_exceptions_(return_exceptions) {}

GatherAwaiter::~GatherAwaiter() {
  for (std::size_t i = 0; i < children_.size(); ++i)
    if (nodes_[i].linked) children_[i]->unsubscribe(&nodes_[i]);
}

bool GatherAwaiter::failed(FutureBase* child) const noexcept {
  return child->cancelled() ||
         (child->state() == FutureBase::State::finished && child->stored_exception());
}

bool GatherAwaiter::await_ready() {
  remaining_ = 0;
  for (FutureBase* child : children_) {
    if (!child->done())
      ++remaining_;
    else if (!return_exceptions_ && failure_ == nullptr && failed(child))
      failure_ = child;
  }
  return remaining_ == 0 || failure_ != nullptr;
}

void GatherAwaiter::await_suspend(std::coroutine_handle<> frame) {
  for (std::size_t i = 0; i < children_.size(); ++i) {
    if (children_[i]->done()) continue;
    CompletionNode& node = nodes_[i];
    node.owner = this;
    node.on_complete = &on_child_done;
    children_[i]->subscribe(&node);
  }
  suspend(this, frame);
}

void GatherAwaiter::on_child_done(CompletionNode* node) {
  auto* self = static_cast<GatherAwaiter*>(node->owner);
  FutureBase* child = self->children_[static_cast<std::size_t>(node - self->nodes_.get())];
  --self->remaining_;
  if (self->woken_) return;
  if (!self->return_exceptions_ && self->failed(child))
    self->failure_ = child;
  else if (self->remaining_ != 0)
    return;
  self->woken_ = true;
  self->wake(self);
}

bool GatherAwaiter::cancel_wait(const std::string& message) {
  bool any = false;
  for (FutureBase* child : children_)
    if (!child->done() && child->cancel(message)) any = true;
  if (any) cancel_requested_ = true;
  return any;
}

void GatherAwaiter::await_resume() {
  for (std::size_t i = 0; i < children_.size(); ++i)
    if (nodes_[i].linked) children_[i]->unsubscribe(&nodes_[i]);
  deliver_pending_cancel();
  if (failure_ != nullptr) {
    // Python retrieves the exceptions of the children that finish after the gather did.
    for (FutureBase* child : children_)
      child->mark_retrieved();
    if (failure_->cancelled()) throw failure_->make_cancelled_error();
    std::rethrow_exception(failure_->exception());
  }
  if (cancel_requested_) throw CancelledError(task_ != nullptr ? task_->cancel_message() : "");
}

// ---- wait ----

WaitAwaiter::WaitAwaiter(std::vector<FutureBase*> children, WaitOptions options)
    : children_(std::move(children)), nodes_(new ChildNode[children_.size()]), options_(options) {}

WaitAwaiter::~WaitAwaiter() {
  for (std::size_t i = 0; i < children_.size(); ++i)
    if (nodes_[i].node.linked) children_[i]->unsubscribe(&nodes_[i].node);
  if (deadline_.scheduled()) loop_->remove_timer(&deadline_);
}

bool WaitAwaiter::satisfied() const noexcept {
  std::size_t done = 0;
  for (FutureBase* child : children_) {
    if (!child->done()) continue;
    ++done;
    if (options_.return_when == FIRST_COMPLETED) return true;
    if (options_.return_when == FIRST_EXCEPTION && child->state() == FutureBase::State::finished &&
        child->stored_exception())
      return true;
  }
  return done == children_.size();
}

bool WaitAwaiter::await_ready() {
  return satisfied() || (options_.timeout && *options_.timeout <= std::chrono::nanoseconds::zero());
}

void WaitAwaiter::await_suspend(std::coroutine_handle<> frame) {
  for (std::size_t i = 0; i < children_.size(); ++i) {
    if (children_[i]->done()) continue;
    ChildNode& child = nodes_[i];
    child.owner = this;
    child.child = children_[i];
    child.node.owner = &child;
    child.node.on_complete = &on_child_done;
    children_[i]->subscribe(&child.node);
  }
  if (options_.timeout) {
    loop_ = &get_running_loop();
    deadline_.owner = this;
    deadline_.when = Clock::now() + std::chrono::ceil<Clock::duration>(*options_.timeout);
    deadline_.fire = &on_deadline;
    loop_->add_timer(&deadline_);
  }
  suspend(this, frame);
}

void WaitAwaiter::on_child_done(CompletionNode* node) {
  auto* child = static_cast<ChildNode*>(node->owner);
  WaitAwaiter* self = child->owner;
  if (self->woken_) return;
  const bool stop =
      self->options_.return_when == FIRST_COMPLETED ||
      (self->options_.return_when == FIRST_EXCEPTION &&
       child->child->state() == FutureBase::State::finished && child->child->stored_exception());
  if (!stop) {
    for (FutureBase* other : self->children_)
      if (!other->done()) return;
  }
  self->woken_ = true;
  self->wake(self);
}

void WaitAwaiter::on_deadline(TimerNode* node) {
  WaitAwaiter* self = static_cast<Deadline*>(node)->owner;
  if (self->woken_) return;
  self->woken_ = true;
  self->wake(self);
}

bool WaitAwaiter::cancel_wait(const std::string&) {
  cancelled_ = true;
  woken_ = true;
  wake(this);
  return true;
}

void WaitAwaiter::await_resume() {
  for (std::size_t i = 0; i < children_.size(); ++i)
    if (nodes_[i].node.linked) children_[i]->unsubscribe(&nodes_[i].node);
  if (deadline_.scheduled()) loop_->remove_timer(&deadline_);
  deliver_pending_cancel();
  if (cancelled_) throw CancelledError(task_->cancel_message());
}

// ---- wait_for, shield ----

TimeoutScope::TimeoutScope(Clock::duration delay) : task_(current_task_core()) {
  if (task_ == nullptr) throw std::logic_error("asyncio::wait_for outside a running task");
  loop_ = task_->loop();
  cancelling_at_entry_ = task_->cancelling();
  when = Clock::now() + delay;
  fire = &expire;
  loop_->add_timer(this);
}

TimeoutScope::~TimeoutScope() {
  if (scheduled()) loop_->remove_timer(this);
}

void TimeoutScope::expire(TimerNode* node) {
  auto* self = static_cast<TimeoutScope*>(node);
  self->expired_ = true;
  self->task_->cancel("");
}

void TimeoutScope::exit(std::exception_ptr error) {
  if (scheduled()) loop_->remove_timer(this);
  if (expired_ && task_->uncancel() <= cancelling_at_entry_ && is_cancelled_error(error))
    throw TimeoutError("wait_for: timed out");
  if (error) std::rethrow_exception(error);
}

DoneAwaiter::DoneAwaiter(FutureBase* core, bool shield) : core_(core), shield_(shield) {
  core_->add_ref();
  node_.owner = this;
  node_.on_complete = [](CompletionNode* node) {
    auto* self = static_cast<DoneAwaiter*>(node->owner);
    self->wake(self);
  };
}

DoneAwaiter::~DoneAwaiter() {
  core_->unsubscribe(&node_);
  core_->release();
}

void DoneAwaiter::await_suspend(std::coroutine_handle<> frame) {
  core_->subscribe(&node_);
  suspend(this, frame);
}

bool DoneAwaiter::cancel_wait(const std::string&) {
  core_->unsubscribe(&node_);
  // A shielded child that fails later has its exception retrieved (Python's shield does).
  if (shield_) core_->mark_retrieved();
  cancelled_ = true;
  wake(this);
  return true;
}

void DoneAwaiter::await_resume() {
  core_->unsubscribe(&node_);
  deliver_pending_cancel();
  if (cancelled_) throw CancelledError(task_->cancel_message());
}

}  // namespace internal

// ---- TaskGroup ----

TaskGroup::TaskGroup() : parent_(internal::current_task_core()), loop_(internal::running_loop()) {
  if (parent_ == nullptr) throw std::logic_error("asyncio::task_group outside a running task");
}

TaskGroup::~TaskGroup() {
  for (Child& child : children_) {
    child.core->unsubscribe(&child.node);
    child.core->release();
  }
}

void TaskGroup::check_can_create() const {
  if (exiting_ && children_.empty())
    throw std::logic_error("TaskGroup::create_task: the task group is finished");
  if (aborting_) throw std::logic_error("TaskGroup::create_task: the task group is shutting down");
}

void TaskGroup::adopt(internal::TaskCoreBase* child) {
  child->add_ref();
  children_.push_back(Child{{}, this, child, {}});
  Child& added = children_.back();
  added.self = std::prev(children_.end());
  added.node.owner = &added;
  added.node.on_complete = &on_child_done;
  child->subscribe(&added.node);
}

void TaskGroup::on_child_done(internal::CompletionNode* node) {
  // Handled at the next iteration, as Python's done callback: tasks woken in this iteration
  // run (and may fail) before the group reacts.
  auto* child = static_cast<Child*>(node->owner);
  child->group->loop_->push_ready({&handle_child_done, child});
}

void TaskGroup::handle_child_done(void* argument, bool run) {
  if (!run) return;  // the loop closed: the group's frame is destroyed with its task
  auto* child = static_cast<Child*>(argument);
  TaskGroup* group = child->group;
  internal::TaskCoreBase* core = child->core;
  std::exception_ptr error;
  if (!core->cancelled()) {
    error = core->stored_exception();
    if (error) core->mark_retrieved();
  }
  group->children_.erase(child->self);
  core->release();  // the child still holds its running reference while it completes
  if (group->exit_waiter_ != nullptr && group->children_.empty()) {
    ExitAwaiter* waiter = group->exit_waiter_;
    group->exit_waiter_ = nullptr;
    waiter->wake(waiter);
  }
  if (!error) return;
  group->errors_.push_back(error);
  if (group->parent_->done()) return;
  if (!group->aborting_ && !group->parent_cancel_requested_) {
    group->abort();
    group->parent_cancel_requested_ = true;
    group->parent_->cancel("");
  }
}

void TaskGroup::abort() {
  aborting_ = true;
  std::vector<internal::TaskCoreBase*> pending;
  for (Child& child : children_)
    if (!child.core->done()) pending.push_back(child.core);
  for (auto* core : pending)
    core->cancel("");
}

TaskGroup::ExitAwaiter TaskGroup::wait_children() {
  return ExitAwaiter(this);
}

void TaskGroup::leave(std::exception_ptr body_error, std::exception_ptr propagate_cancel) {
  if (parent_cancel_requested_ && parent_->uncancel() == 0) propagate_cancel = nullptr;
  if (propagate_cancel && errors_.empty()) std::rethrow_exception(propagate_cancel);
  if (body_error && !internal::is_cancelled_error(body_error)) errors_.push_back(body_error);
  if (!errors_.empty()) throw ExceptionGroup("unhandled errors in a TaskGroup", std::move(errors_));
}

// ---- the rest ----

ExceptionGroup::ExceptionGroup(std::string message, std::vector<std::exception_ptr> exceptions)
    : spindle::Error(message + " (" + std::to_string(exceptions.size()) + " sub-exception" +
                     (exceptions.size() == 1 ? "" : "s") + ")"),
      message_(std::move(message)),
      exceptions_(std::move(exceptions)) {}

AnyTask current_task() {
  EventLoop& loop = get_running_loop();
  return AnyTask(loop.current_task());
}

std::vector<AnyTask> all_tasks() {
  std::vector<AnyTask> tasks;
  for (internal::TaskCoreBase* core : get_running_loop().pending_tasks())
    tasks.push_back(AnyTask(core));
  return tasks;
}

}  // namespace spindle::asyncio
