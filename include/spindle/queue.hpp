// spindle::queue — Python's `queue` module for C++: Queue, LifoQueue, PriorityQueue and
// SimpleQueue, with Python 3.13's task_done/join and shutdown semantics.
//
// Every method is thread-safe. Move-only item types work. put() takes its item by const&
// or &&: when it throws (Full, ShutDown) the caller's item is left as it was, so nothing is
// lost.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include "spindle/detail/timeout.hpp"
#include "spindle/errors.hpp"

namespace spindle::queue {

// get_nowait() on an empty queue, or get(timeout) that timed out.
class Empty : public spindle::Error {
 public:
  Empty() : spindle::Error("queue is empty") {}
};

// put_nowait() on a full queue, or put(item, timeout) that timed out.
class Full : public spindle::Error {
 public:
  Full() : spindle::Error("queue is full") {}
};

// put() on a queue that was shut down, or get() on one shut down and empty.
class ShutDown : public spindle::Error {
 public:
  ShutDown() : spindle::Error("queue is shut down") {}
};

namespace detail {

using spindle::detail::Clock;

template <class T>
struct FifoItems {
  std::deque<T> items;
  template <class U>
  void push(U&& item) {
    items.push_back(std::forward<U>(item));
  }
  T pop() {
    T item = std::move(items.front());
    items.pop_front();
    return item;
  }
};

template <class T>
struct LifoItems {
  std::vector<T> items;
  template <class U>
  void push(U&& item) {
    items.push_back(std::forward<U>(item));
  }
  T pop() {
    T item = std::move(items.back());
    items.pop_back();
    return item;
  }
};

template <class T, class Compare>
struct PriorityItems {
  std::vector<T> items;
  Compare compare;
  // std::push_heap builds a max-heap; comparing the other way round keeps the smallest on top.
  bool after(const T& a, const T& b) { return compare(b, a); }
  template <class U>
  void push(U&& item) {
    items.push_back(std::forward<U>(item));
    std::push_heap(items.begin(), items.end(),
                   [this](const T& a, const T& b) { return after(a, b); });
  }
  T pop() {
    std::pop_heap(items.begin(), items.end(),
                  [this](const T& a, const T& b) { return after(a, b); });
    T item = std::move(items.back());
    items.pop_back();
    return item;
  }
};

// The one implementation behind every queue: a container policy (FIFO, LIFO, heap) under a
// mutex, with three condition variables as in CPython (not_empty, not_full,
// all_tasks_done). A condition variable is notified only when a thread waits on it, so a
// stream whose consumers keep up makes no wake-up calls at all.
template <class T, class Items>
class BasicQueue {
 public:
  // track_tasks false: no unfinished-task count (SimpleQueue).
  explicit BasicQueue(std::size_t maxsize, Items items = {}, bool track_tasks = true)
      : maxsize_(maxsize), track_tasks_(track_tasks), items_(std::move(items)) {}
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;

  // Blocks while the queue is full. ShutDown once shut down.
  void put(const T& item) { put_until(item, nullptr); }
  void put(T&& item) { put_until(std::move(item), nullptr); }
  // Blocks up to `timeout` while full, then Full.
  template <class Rep, class Period>
  void put(const T& item, std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = spindle::detail::deadline_after(timeout);
    put_until(item, &deadline);
  }
  template <class Rep, class Period>
  void put(T&& item, std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = spindle::detail::deadline_after(timeout);
    put_until(std::move(item), &deadline);
  }
  // Never blocks: Full when full.
  void put_nowait(const T& item) { put_until(item, &kNoWait); }
  void put_nowait(T&& item) { put_until(std::move(item), &kNoWait); }

  // Blocks while the queue is empty. ShutDown once shut down and empty (at once after an
  // immediate shutdown).
  T get() { return get_until(nullptr); }
  // Blocks up to `timeout` while empty, then Empty.
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = spindle::detail::deadline_after(timeout);
    return get_until(&deadline);
  }
  // Never blocks: Empty when empty.
  T get_nowait() { return get_until(&kNoWait); }

  // Marks one item taken with get() as processed. More calls than items put:
  // std::invalid_argument. Non-blocking.
  void task_done() {
    std::lock_guard guard(mutex_);
    if (unfinished_tasks_ == 0) throw std::invalid_argument("task_done() called too many times");
    if (--unfinished_tasks_ == 0 && join_waiters_ > 0) all_tasks_done_.notify_all();
  }
  // Blocks until every item put has been marked with task_done() (or the queue was shut
  // down immediately).
  void join() {
    std::unique_lock lock(mutex_);
    ++join_waiters_;
    all_tasks_done_.wait(lock, [&] { return unfinished_tasks_ == 0; });
    --join_waiters_;
  }

  // Approximate, as in Python: other threads may change it at once. Non-blocking.
  std::size_t qsize() const {
    std::lock_guard guard(mutex_);
    return items_.items.size();
  }
  bool empty() const { return qsize() == 0; }
  bool full() const {
    std::lock_guard guard(mutex_);
    return maxsize_ > 0 && items_.items.size() >= maxsize_;
  }
  std::size_t maxsize() const { return maxsize_; }
  bool is_shutdown() const {
    std::lock_guard guard(mutex_);
    return shutdown_;
  }

  // From now on put() throws ShutDown and blocked putters get ShutDown; get() drains what is
  // left, then throws ShutDown. immediate: the items left are dropped (each counted as
  // task_done, so join() returns) and get() throws ShutDown at once. Non-blocking.
  void shutdown(bool immediate = false) {
    decltype(items_.items) dropped;  // destroyed after the lock is released
    std::lock_guard guard(mutex_);
    shutdown_ = true;
    if (immediate) {
      unfinished_tasks_ -= std::min(unfinished_tasks_, items_.items.size());
      std::swap(dropped, items_.items);
    }
    all_tasks_done_.notify_all();
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  // A deadline already passed: the _nowait forms.
  static constexpr Clock::time_point kNoWait = Clock::time_point::min();

  template <class U>
  void put_until(U&& item, const Clock::time_point* deadline) {
    std::unique_lock lock(mutex_);
    if (shutdown_) throw ShutDown();
    if (maxsize_ > 0 && items_.items.size() >= maxsize_) {
      if (deadline == &kNoWait) throw Full();
      const auto has_room = [&] { return shutdown_ || items_.items.size() < maxsize_; };
      ++waiting_putters_;
      const bool ready = wait(not_full_, lock, deadline, has_room);
      --waiting_putters_;
      if (shutdown_) throw ShutDown();
      if (!ready) throw Full();
    }
    items_.push(std::forward<U>(item));
    if (track_tasks_) ++unfinished_tasks_;
    // Notified under the lock: a getter may destroy the queue as soon as get() returns.
    if (waiting_getters_ > 0) not_empty_.notify_one();
  }

  T get_until(const Clock::time_point* deadline) {
    std::unique_lock lock(mutex_);
    if (items_.items.empty()) {
      if (shutdown_) throw ShutDown();
      if (deadline == &kNoWait) throw Empty();
      const auto has_item = [&] { return shutdown_ || !items_.items.empty(); };
      ++waiting_getters_;
      const bool ready = wait(not_empty_, lock, deadline, has_item);
      --waiting_getters_;
      if (!ready) throw Empty();
      if (items_.items.empty()) throw ShutDown();
    }
    T item = items_.pop();
    if (waiting_putters_ > 0) not_full_.notify_one();
    return item;
  }

  template <class Predicate>
  static bool wait(std::condition_variable& condition, std::unique_lock<std::mutex>& lock,
                   const Clock::time_point* deadline, Predicate predicate) {
    if (deadline == nullptr) {
      condition.wait(lock, predicate);
      return true;
    }
    return condition.wait_until(lock, *deadline, predicate);
  }

  const std::size_t maxsize_;
  const bool track_tasks_;
  mutable std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::condition_variable all_tasks_done_;
  Items items_;
  std::size_t unfinished_tasks_ = 0;
  std::size_t waiting_getters_ = 0;
  std::size_t waiting_putters_ = 0;
  std::size_t join_waiters_ = 0;
  bool shutdown_ = false;
};

}  // namespace detail

// First in, first out. maxsize 0: unbounded. See BasicQueue for every method.
template <class T>
class Queue : public detail::BasicQueue<T, detail::FifoItems<T>> {
 public:
  explicit Queue(std::size_t maxsize = 0) : detail::BasicQueue<T, detail::FifoItems<T>>(maxsize) {}
};

// Last in, first out.
template <class T>
class LifoQueue : public detail::BasicQueue<T, detail::LifoItems<T>> {
 public:
  explicit LifoQueue(std::size_t maxsize = 0)
      : detail::BasicQueue<T, detail::LifoItems<T>>(maxsize) {}
};

// Smallest item first by `Compare` (std::less: the smallest; std::greater: the largest).
// Items that compare equal come out in no particular order, as with Python's heapq.
template <class T, class Compare = std::less<T>>
class PriorityQueue : public detail::BasicQueue<T, detail::PriorityItems<T, Compare>> {
 public:
  explicit PriorityQueue(std::size_t maxsize = 0, Compare compare = Compare())
      : detail::BasicQueue<T, detail::PriorityItems<T, Compare>>(
            maxsize, detail::PriorityItems<T, Compare>{{}, std::move(compare)}) {}
};

// An unbounded FIFO without task tracking or shutdown, as Python's SimpleQueue.
template <class T>
class SimpleQueue {
 public:
  SimpleQueue() : queue_(0, {}, false) {}

  // Never blocks (the queue is unbounded).
  void put(const T& item) { queue_.put(item); }
  void put(T&& item) { queue_.put(std::move(item)); }
  void put_nowait(const T& item) { queue_.put(item); }
  void put_nowait(T&& item) { queue_.put(std::move(item)); }
  // Blocks while empty; with a timeout, Empty when it passes.
  T get() { return queue_.get(); }
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    return queue_.get(timeout);
  }
  T get_nowait() { return queue_.get_nowait(); }
  bool empty() const { return queue_.empty(); }
  std::size_t qsize() const { return queue_.qsize(); }

 private:
  detail::BasicQueue<T, detail::FifoItems<T>> queue_;
};

}  // namespace spindle::queue
