// CompletionSet: how one thread waits for many futures (as_completed, wait) without a
// callback allocation or a lock per future. See docs/design/thread-pool.md.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <vector>

#include "spindle/detail/future_core.hpp"

namespace spindle::detail {

// Gathers the completions of up to `capacity` futures for the thread that waits on them.
// One allocation holds a callback node per future. A future that completes pushes its node
// onto a lock-free list (one compare-and-swap in the completing thread); the waiting thread
// takes the whole list at once. Only the completion that makes the list non-empty signals
// the waiter, so a burst of completions costs one wake-up at most.
//
// Lifetime: the owner (the thread that created it) holds one reference and each node one.
// close() drops the owner's, together with those of the nodes it has collected; a node that
// completes or is discarded after close() drops its own. A push that makes the list non-empty
// holds one more until it has signalled the waiter. The last drop frees the set.
class CompletionSet {
 public:
  // A set for `capacity` futures; it signals the calling thread's waiter.
  static CompletionSet* create(std::size_t capacity);

  // Watches `future` as number `index` (below capacity, each index at most once). If the
  // future is already done, the index is reported at once. Owner thread only.
  void watch(FutureCore& future, std::size_t index) noexcept;
  // Appends the indices completed since the last call, in completion order, and makes the
  // calling thread the one to wake. Never blocks. Owner thread only.
  void take(std::vector<std::size_t>& out);
  // True when take() would append something. Any thread; non-blocking.
  bool any() const noexcept;
  // The owner is done with the set. Owner thread only; the set must not be used afterwards.
  void close() noexcept;

  // Closes the set when the owning handle goes.
  struct Closer {
    void operator()(CompletionSet* set) const noexcept { set->close(); }
  };

 private:
  class Node final : public CallbackNode {
   public:
    void invoke(FutureCore&) noexcept override { set->push(this); }
    void discard() noexcept override { set->drop(1); }
    CompletionSet* set = nullptr;
  };

  explicit CompletionSet(std::size_t capacity);
  ~CompletionSet() = default;
  void push(Node* node) noexcept;
  void drop(std::size_t references) noexcept;

  const std::size_t capacity_;
  std::unique_ptr<Node[]> nodes_;
  // Completed nodes, newest first, linked through CallbackNode::next; closed_mark() once the
  // owner has closed the set.
  std::atomic<CallbackNode*> completed_{nullptr};
  std::atomic<std::size_t> references_;
  std::size_t watched_ = 0;    // nodes watch() has registered (owner thread only)
  std::size_t collected_ = 0;  // nodes take() has returned (owner thread only)
  // The waiter of the thread that takes completions; waiters_ keeps every one it has been
  // alive (owner thread only).
  std::atomic<Waiter*> waiter_;
  std::vector<std::shared_ptr<Waiter>> waiters_;
};

using CompletionSetHandle = std::unique_ptr<CompletionSet, CompletionSet::Closer>;

inline CompletionSetHandle make_completion_set(std::size_t capacity) {
  return CompletionSetHandle(CompletionSet::create(capacity));
}

}  // namespace spindle::detail
