// FutureCore: completion, callbacks and blocking waits. See docs/design/thread-pool.md.
#include "spindle/detail/future_core.hpp"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <string>
#include <thread>

#include "spindle/detail/completion_set.hpp"
#include "spindle/detail/exception_info.hpp"
#include "spindle/futures.hpp"
#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace spindle::detail {
namespace {

// The callback list's "already completed" mark: adding to a closed list runs the callback.
CallbackNode* closed_list() noexcept {
  static struct Closed final : CallbackNode {
    void invoke(FutureCore&) noexcept override {}
  } closed;
  return &closed;
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// How long a blocked result() spins before it sleeps: a cross-core wake-up costs 20-50 µs on
// a VM, and most tasks waited on in a loop take far less. Measured in time, not iterations:
// the cost of a pause instruction varies tenfold between processors.
constexpr auto kWaitSpin = std::chrono::microseconds(50);

// Spins until ready() or `budget` has passed (the clock is read every 64 pauses). Between
// spins it yields, so a thread it waits for can run on the same core.
template <class Ready>
bool spin_until(Ready ready, Clock::duration budget) {
  const auto until = Clock::now() + budget;
  // On one CPU the awaited thread runs only when this one gives the CPU up: yield every time.
  const unsigned yield_every = single_cpu_process() ? 1 : 64;
  for (unsigned spin = 1;; ++spin) {
    if (ready()) return true;
    if (spin % yield_every == 0) {
      if (Clock::now() >= until) return false;
      std::this_thread::yield();
    } else {
      cpu_relax();
    }
  }
}

// Signals a waiter when the future completes.
class WakeNode final : public CallbackNode {
 public:
  explicit WakeNode(std::shared_ptr<Waiter> waiter) : waiter_(std::move(waiter)) {}
  void invoke(FutureCore&) noexcept override {
    waiter_->signal();
    delete this;
  }

 private:
  std::shared_ptr<Waiter> waiter_;
};

const char* status_name(FutureCore::Status status) {
  switch (status) {
    case FutureCore::pending:
      return "pending";
    case FutureCore::running:
      return "running";
    case FutureCore::cancelled:
      return "cancelled";
    case FutureCore::completing:
    case FutureCore::finished:
      return "finished";
  }
  return "unknown";
}

}  // namespace

void Waiter::signal() noexcept {
  if (word_.exchange(signalled, std::memory_order_acq_rel) == sleeping) {
    threading::detail::futex_wake(word_, 1);
  }
}

bool Waiter::wait(const Clock::time_point* deadline) noexcept {
  for (;;) {
    std::uint32_t expected = signalled;
    if (word_.compare_exchange_strong(expected, idle, std::memory_order_acquire)) return true;
    if (deadline != nullptr && Clock::now() >= *deadline) {
      // Leaving: drop the sleeping mark; a signal that arrived meanwhile is taken instead.
      return word_.exchange(idle, std::memory_order_acquire) == signalled;
    }
    // idle -> sleeping; a signal in between turns it into signalled and the CAS fails.
    expected = idle;
    if (word_.compare_exchange_strong(expected, sleeping, std::memory_order_acquire) ||
        expected == sleeping) {
      threading::detail::futex_wait(word_, sleeping, deadline);
    }
  }
}

std::shared_ptr<Waiter>& current_waiter_slot() {
  thread_local std::shared_ptr<Waiter> waiter = std::make_shared<Waiter>();
  return waiter;
}

const std::shared_ptr<Waiter>& current_waiter() {
  return current_waiter_slot();
}

Helper*& current_helper() {
  thread_local Helper* helper = nullptr;
  return helper;
}

FutureCore::~FutureCore() {
  if (status_.load(std::memory_order_relaxed) == finished && error_ &&
      !retrieved_.load(std::memory_order_relaxed)) {
    spindle::print(stderr, "Future exception was never retrieved: {}", format_exception(error_));
  }
  CallbackNode* node = callbacks_.load(std::memory_order_acquire);
  while (node != nullptr && node != closed_list()) {
    std::exchange(node, node->next)->discard();
  }
}

bool FutureCore::cancel() noexcept {
  std::uint32_t expected = pending;
  if (status_.compare_exchange_strong(expected, cancelled, std::memory_order_acq_rel)) {
    run_callbacks();
    return true;
  }
  return expected == cancelled;
}

bool FutureCore::set_running_or_notify_cancel() {
  std::uint32_t expected = pending;
  if (status_.compare_exchange_strong(expected, running, std::memory_order_acq_rel)) return true;
  if (expected == cancelled) return false;
  throw std::logic_error(std::string("Future in unexpected state: ") +
                         status_name(static_cast<Status>(expected)));
}

void FutureCore::claim_completion() {
  std::uint32_t expected = status_.load(std::memory_order_relaxed);
  do {
    if (expected != pending && expected != running) {
      throw futures::InvalidStateError(std::string("the future is already ") +
                                       status_name(static_cast<Status>(expected)));
    }
  } while (!status_.compare_exchange_weak(expected, completing, std::memory_order_acquire,
                                          std::memory_order_relaxed));
}

void FutureCore::publish(std::exception_ptr error) noexcept {
  error_ = std::move(error);
  status_.store(finished, std::memory_order_release);
  run_callbacks();
}

void FutureCore::add_callback(CallbackNode* node) noexcept {
  CallbackNode* head = callbacks_.load(std::memory_order_acquire);
  do {
    if (head == closed_list()) {
      node->invoke(*this);
      return;
    }
    node->next = head;
  } while (!callbacks_.compare_exchange_weak(head, node, std::memory_order_acq_rel,
                                             std::memory_order_acquire));
}

void FutureCore::run_callbacks() noexcept {
  CallbackNode* head = callbacks_.exchange(closed_list(), std::memory_order_acq_rel);
  // The list is newest first; callbacks run in the order they were added.
  CallbackNode* ordered = nullptr;
  while (head != nullptr) {
    CallbackNode* next = head->next;
    head->next = ordered;
    ordered = head;
    head = next;
  }
  while (ordered != nullptr) {
    CallbackNode* next = ordered->next;
    ordered->invoke(*this);  // deletes the node
    ordered = next;
  }
}

bool FutureCore::wait_done(const Clock::time_point* deadline) const {
  if (done()) return true;
  // A pool worker would rather run queued work than spin (block_until does that first).
  if (current_helper() == nullptr && !long_wait_.load(std::memory_order_relaxed) &&
      spin_until([this] { return done() || (help_waiter() && done()); }, kWaitSpin)) {
    return true;
  }
  // A deadline already passed (a poll with a zero timeout) registers nothing: repeated polls
  // must not pile up wake-up nodes on a future that stays pending.
  if (deadline != nullptr && Clock::now() >= *deadline) return done();
  const std::shared_ptr<Waiter>& waiter = current_waiter();
  const_cast<FutureCore*>(this)->add_callback(new WakeNode(waiter));
  return block_until([this] { return done(); }, deadline);
}

bool block_until(const std::function<bool()>& ready, const Clock::time_point* deadline) {
  const std::shared_ptr<Waiter>& waiter = current_waiter();
  Helper* helper = current_helper();
  for (;;) {
    if (ready()) return true;
    if (helper != nullptr && helper->run_one_queued()) continue;
    // ready() again: what the helper ran, or another thread, may have made it so meanwhile.
    if (deadline != nullptr && Clock::now() >= *deadline) return ready();
    if (helper != nullptr) {
      // Nothing to run: spin briefly (the awaited task is likely running on another core).
      if (spin_until(ready, kWaitSpin / 4)) return true;
      // Announce the sleep first, then look again: a submit either sees us asleep (and
      // wakes us) or we see its task.
      if (!helper->set_waiting(true)) continue;
      if (!ready()) waiter->wait(deadline);
      helper->set_waiting(false);
    } else {
      waiter->wait(deadline);
    }
  }
}

CompletionSet* CompletionSet::create(std::size_t capacity) {
  return new CompletionSet(capacity);
}

CompletionSet::CompletionSet(std::size_t capacity)
    : capacity_(capacity),
      nodes_(std::make_unique<Node[]>(capacity)),
      references_(capacity + 1),  // every node, watched or not, and the owner
      waiter_(current_waiter().get()),
      waiters_{current_waiter()} {
  for (std::size_t i = 0; i < capacity; ++i)
    nodes_[i].set = this;
}

void CompletionSet::watch(FutureCore& future, std::size_t index) noexcept {
  ++watched_;
  future.add_callback(&nodes_[index]);
}

void CompletionSet::push(Node* node) noexcept {
  // Once the node is on the list the owner may collect it, close the set and free it. A push
  // that will signal afterwards (the list was empty) first takes a reference of its own.
  std::size_t guard = 0;
  CallbackNode* head = completed_.load(std::memory_order_acquire);
  for (;;) {
    if (head == closed_list()) {  // the owner is gone: nobody collects this node
      drop(1 + guard);
      return;
    }
    if (head == nullptr && guard == 0) {
      references_.fetch_add(1, std::memory_order_relaxed);  // alive: the node holds one
      guard = 1;
    }
    node->next = head;
    if (completed_.compare_exchange_weak(head, node, std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
      break;
    }
  }
  // Empty -> non-empty: the owner may be asleep waiting for it.
  if (head == nullptr) waiter_.load(std::memory_order_acquire)->signal();
  if (guard != 0) drop(guard);
}

void CompletionSet::take(std::vector<std::size_t>& out) {
  if (current_waiter().get() != waiter_.load(std::memory_order_relaxed)) {
    // Iterated from another thread than before: wake that one from now on. A push may still
    // signal the old waiter, which therefore lives as long as the set.
    waiters_.push_back(current_waiter());
    waiter_.store(waiters_.back().get(), std::memory_order_release);
  }
  if (completed_.load(std::memory_order_relaxed) == nullptr) return;
  CallbackNode* node = completed_.exchange(nullptr, std::memory_order_acquire);
  const std::size_t first = out.size();
  for (; node != nullptr; node = node->next) {
    out.push_back(static_cast<std::size_t>(static_cast<Node*>(node) - nodes_.get()));
  }
  std::reverse(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
  collected_ += out.size() - first;
}

bool CompletionSet::any() const noexcept {
  return completed_.load(std::memory_order_acquire) != nullptr;
}

void CompletionSet::close() noexcept {
  // The owner's reference, the nodes never watched and those collected already...
  std::size_t finished = 1 + (capacity_ - watched_) + collected_;
  // ...and those completed but not collected.
  for (CallbackNode* node = completed_.exchange(closed_list(), std::memory_order_acquire);
       node != nullptr; node = node->next) {
    ++finished;
  }
  drop(finished);
}

void CompletionSet::drop(std::size_t references) noexcept {
  if (references_.fetch_sub(references, std::memory_order_acq_rel) == references) delete this;
}

bool single_cpu_process() noexcept {
  static const bool single = [] {
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) == 1;
  }();
  return single;
}

void report_callback_exception(std::exception_ptr error) noexcept {
  spindle::print(stderr, "exception calling callback for future: {}", format_exception(error));
}

}  // namespace spindle::detail
