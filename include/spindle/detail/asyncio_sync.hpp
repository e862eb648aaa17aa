// Async synchronisation primitives and queues (asyncio.Lock, Event, Condition, Semaphore,
// BoundedSemaphore, Barrier, Queue, LifoQueue, PriorityQueue). Included by
// <spindle/asyncio.hpp>. Not thread-safe: loop thread only, as Python's.
#pragma once

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <vector>

namespace spindle::asyncio {

namespace internal {

class WaitList;

// One suspended coroutine in a primitive's FIFO of waiters: Python's
// `fut = loop.create_future(); waiters.append(fut); await fut`. The primitive wakes it with
// WaitList::wake_first / wake_all; a cancellation of the task before that removes it and
// makes the await throw CancelledError. After a CancelledError, woken() says whether the
// primitive had already chosen this waiter (so the primitive can pass the turn on).
class WaitSlot final : Waiter, TaskSuspension {
 public:
  explicit WaitSlot(WaitList& list) noexcept : list_(&list) {}
  WaitSlot(const WaitSlot&) = delete;
  WaitSlot& operator=(const WaitSlot&) = delete;
  ~WaitSlot();
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> frame);
  void await_resume();
  bool woken() const noexcept { return woken_; }

 private:
  friend class WaitList;
  bool cancel_wait(const std::string& message) override;

  WaitList* list_;
  WaitSlot* previous_ = nullptr;
  WaitSlot* next_ = nullptr;
  bool linked_ = false;
  bool woken_ = false;
  bool cancelled_ = false;
};

class WaitList {
 public:
  WaitList() = default;
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;
  ~WaitList();
  // Wakes the oldest waiter not yet woken; with `pop` it also leaves the list. False if none.
  bool wake_first(bool pop);
  // Wakes every waiter not yet woken (at most `limit`); returns how many.
  std::size_t wake(std::size_t limit, bool pop);
  // Waiters in the list not woken yet.
  std::size_t waiting() const noexcept;
  bool empty() const noexcept { return head_ == nullptr; }

 private:
  friend class WaitSlot;
  void push_back(WaitSlot* slot) noexcept;
  void remove(WaitSlot* slot) noexcept;
  WaitSlot* head_ = nullptr;
  WaitSlot* tail_ = nullptr;
};

// A guard releasing a primitive at scope exit: what `scoped()` gives (the `async with`).
template <class P>
class [[nodiscard]] Held {
 public:
  explicit Held(P* primitive) noexcept : primitive_(primitive) {}
  Held(Held&& other) noexcept : primitive_(std::exchange(other.primitive_, nullptr)) {}
  Held& operator=(Held&&) = delete;
  ~Held() {
    if (primitive_ != nullptr) primitive_->release();
  }
  // Releases now instead of at scope exit.
  void release() {
    if (primitive_ != nullptr) std::exchange(primitive_, nullptr)->release();
  }

 private:
  P* primitive_;
};

}  // namespace internal

// A mutex for tasks (asyncio.Lock): not thread-safe, not reentrant; fair (FIFO).
class Lock {
 public:
  Lock() = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;
  // Suspends until the lock is acquired. Cancellation while waiting: CancelledError, lock
  // not held.
  Task<> acquire();
  // Acquires, and releases when the returned guard goes: `auto held = co_await lock.scoped();`
  Task<internal::Held<Lock>> scoped();
  // std::logic_error if not locked. Does not block; wakes the next waiter.
  void release();
  bool locked() const noexcept { return locked_; }

 private:
  bool locked_ = false;
  internal::WaitList waiters_;
};

// A flag tasks can wait for (asyncio.Event).
class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  // Suspends until the flag is set (at once if it is).
  Task<> wait();
  // Sets the flag and wakes every waiter. Does not block.
  void set();
  void clear() noexcept { value_ = false; }
  bool is_set() const noexcept { return value_; }

 private:
  bool value_ = false;
  internal::WaitList waiters_;
};

// A condition variable for tasks (asyncio.Condition), on its own Lock or a shared one.
class Condition {
 public:
  Condition() : owned_(std::make_unique<Lock>()), lock_(owned_.get()) {}
  // Shares `lock`, which must outlive the condition.
  explicit Condition(Lock& lock) : lock_(&lock) {}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  Task<> acquire() { return lock_->acquire(); }
  Task<internal::Held<Condition>> scoped();
  void release() { lock_->release(); }
  bool locked() const noexcept { return lock_->locked(); }
  // Releases the lock, suspends until notified, re-acquires the lock (even when cancelled,
  // then rethrows CancelledError). std::logic_error if the lock is not held.
  Task<> wait();
  // wait() until predicate() is true; returns its last value.
  template <class Predicate>
  Task<bool> wait_for(Predicate predicate) {
    bool result = static_cast<bool>(predicate());
    while (!result) {
      co_await wait();
      result = static_cast<bool>(predicate());
    }
    co_return result;
  }
  // Wakes up to n waiters (the lock must be held: std::logic_error otherwise).
  void notify(std::size_t n = 1);
  void notify_all();

 private:
  std::unique_ptr<Lock> owned_;
  Lock* lock_;
  internal::WaitList waiters_;
};

// A counter tasks wait on (asyncio.Semaphore). std::invalid_argument for a negative value.
class Semaphore {
 public:
  explicit Semaphore(long value = 1);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  virtual ~Semaphore() = default;
  // Suspends until the counter can be decremented (FIFO).
  Task<> acquire();
  Task<internal::Held<Semaphore>> scoped();
  // Increments the counter and wakes the next waiter. Does not block.
  virtual void release();
  // True if acquire() would suspend.
  bool locked() const noexcept;

 protected:
  bool wake_up_next();
  long value_;
  internal::WaitList waiters_;
};

// A Semaphore whose release() above the initial value is std::invalid_argument
// (asyncio.BoundedSemaphore; Python: ValueError).
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(long value = 1) : Semaphore(value), bound_(value) {}
  void release() override;

 private:
  long bound_;
};

// The barrier was aborted or reset while tasks waited (asyncio.BrokenBarrierError).
class BrokenBarrierError : public spindle::Error {
 public:
  BrokenBarrierError() : spindle::Error("the barrier is broken") {}
  using spindle::Error::Error;
};

// A barrier for tasks (asyncio.Barrier). std::invalid_argument if parties < 1.
class Barrier {
 public:
  explicit Barrier(std::size_t parties);
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;
  // Suspends until `parties` tasks wait; returns this task's arrival index (0..parties-1).
  // BrokenBarrierError if the barrier is or becomes broken (abort) or reset meanwhile.
  Task<std::size_t> wait();
  // Back to the empty state; tasks waiting get BrokenBarrierError.
  Task<> reset();
  // Breaks the barrier: current and future wait() throw BrokenBarrierError.
  Task<> abort();
  std::size_t parties() const noexcept { return parties_; }
  std::size_t n_waiting() const noexcept { return state_ == State::filling ? count_ : 0; }
  bool broken() const noexcept { return state_ == State::broken; }

 private:
  // filling --last arrival--> draining --all left--> filling
  // any --reset with waiters--> resetting --all left--> filling; any --abort--> broken
  enum class State { filling, draining, resetting, broken };
  Task<> block();
  Condition condition_;
  std::size_t parties_;
  std::size_t count_ = 0;
  State state_ = State::filling;
};

// asyncio.QueueEmpty / QueueFull / QueueShutDown.
class QueueEmpty : public spindle::Error {
 public:
  QueueEmpty() : spindle::Error("the queue is empty") {}
};
class QueueFull : public spindle::Error {
 public:
  QueueFull() : spindle::Error("the queue is full") {}
};
class QueueShutDown : public spindle::Error {
 public:
  QueueShutDown() : spindle::Error("the queue is shut down") {}
};

namespace internal {
// The storage orders of Queue (FIFO), LifoQueue and PriorityQueue.
template <class T>
struct FifoStorage {
  std::deque<T> items;
  void push(T item) { items.push_back(std::move(item)); }
  T pop() {
    T item = std::move(items.front());
    items.pop_front();
    return item;
  }
};
template <class T>
struct LifoStorage {
  std::vector<T> items;
  void push(T item) { items.push_back(std::move(item)); }
  T pop() {
    T item = std::move(items.back());
    items.pop_back();
    return item;
  }
};
template <class T, class Compare>
struct PriorityStorage {
  std::vector<T> items;  // a heap; smallest first, as Python's heapq
  void push(T item) {
    items.push_back(std::move(item));
    std::push_heap(items.begin(), items.end(), Reverse{});
  }
  T pop() {
    std::pop_heap(items.begin(), items.end(), Reverse{});
    T item = std::move(items.back());
    items.pop_back();
    return item;
  }
  struct Reverse {
    bool operator()(const T& a, const T& b) const { return Compare{}(b, a); }
  };
};

// Queue's logic over a storage order (asyncio.Queue).
template <class T, class Storage>
class BasicQueue {
 public:
  // maxsize 0: unbounded.
  explicit BasicQueue(std::size_t maxsize = 0) : maxsize_(maxsize) {}
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;

  // Suspends while the queue is full, then adds `item`. QueueShutDown once shut down.
  Task<> put(T item) {
    while (full()) {
      if (shutdown_) throw QueueShutDown();
      WaitSlot putter(putters_);
      std::exception_ptr error;
      try {
        co_await putter;
      } catch (...) {
        error = std::current_exception();
      }
      if (error) {
        // Woken by a get but cancelled meanwhile: let the next putter have the room.
        if (!full() && putter.woken()) putters_.wake_first(true);
        std::rethrow_exception(error);
      }
    }
    put_nowait(std::move(item));
  }
  // Adds `item` or throws QueueFull / QueueShutDown. Does not block.
  void put_nowait(T item) {
    if (shutdown_) throw QueueShutDown();
    if (full()) throw QueueFull();
    storage_.push(std::move(item));
    ++unfinished_tasks_;
    finished_.clear();
    getters_.wake_first(true);
  }
  // Suspends while the queue is empty, then removes and returns an item. QueueShutDown once
  // shut down and empty.
  Task<T> get() {
    while (empty()) {
      if (shutdown_) throw QueueShutDown();
      WaitSlot getter(getters_);
      std::exception_ptr error;
      try {
        co_await getter;
      } catch (...) {
        error = std::current_exception();
      }
      if (error) {
        if (!empty() && getter.woken()) getters_.wake_first(true);
        std::rethrow_exception(error);
      }
    }
    co_return get_nowait();
  }
  // Removes and returns an item or throws QueueEmpty / QueueShutDown. Does not block.
  T get_nowait() {
    if (empty()) {
      if (shutdown_) throw QueueShutDown();
      throw QueueEmpty();
    }
    T item = storage_.pop();
    putters_.wake_first(true);
    return item;
  }
  // One item taken earlier is processed; std::invalid_argument if called more often than
  // items were put.
  void task_done() {
    if (unfinished_tasks_ == 0)
      throw std::invalid_argument("Queue::task_done() called too many times");
    if (--unfinished_tasks_ == 0) finished_.set();
  }
  // Suspends until every item put has been marked task_done.
  Task<> join() {
    if (unfinished_tasks_ > 0) co_await finished_.wait();
  }
  // Shuts the queue down: put raises QueueShutDown, get too once empty (at once with
  // `immediate`, which drops the items left). Blocked callers wake up.
  void shutdown(bool immediate = false) {
    shutdown_ = true;
    if (immediate) {
      while (!empty()) {
        (void)storage_.pop();
        if (unfinished_tasks_ > 0) --unfinished_tasks_;
      }
      if (unfinished_tasks_ == 0) finished_.set();
    }
    getters_.wake(static_cast<std::size_t>(-1), true);
    putters_.wake(static_cast<std::size_t>(-1), true);
  }
  std::size_t qsize() const noexcept { return storage_.items.size(); }
  std::size_t maxsize() const noexcept { return maxsize_; }
  bool empty() const noexcept { return storage_.items.empty(); }
  bool full() const noexcept { return maxsize_ > 0 && qsize() >= maxsize_; }

 private:
  Storage storage_;
  std::size_t maxsize_;
  std::size_t unfinished_tasks_ = 0;
  bool shutdown_ = false;
  Event finished_;
  WaitList getters_;
  WaitList putters_;
};
}  // namespace internal

// A FIFO queue for tasks (asyncio.Queue). Loop thread only.
template <class T>
class Queue : public internal::BasicQueue<T, internal::FifoStorage<T>> {
 public:
  using internal::BasicQueue<T, internal::FifoStorage<T>>::BasicQueue;
};
// Last in, first out (asyncio.LifoQueue).
template <class T>
class LifoQueue : public internal::BasicQueue<T, internal::LifoStorage<T>> {
 public:
  using internal::BasicQueue<T, internal::LifoStorage<T>>::BasicQueue;
};
// Smallest first by `Compare` (asyncio.PriorityQueue; put (priority, value) pairs as Python).
template <class T, class Compare = std::less<T>>
class PriorityQueue : public internal::BasicQueue<T, internal::PriorityStorage<T, Compare>> {
 public:
  using internal::BasicQueue<T, internal::PriorityStorage<T, Compare>>::BasicQueue;
};

}  // namespace spindle::asyncio
