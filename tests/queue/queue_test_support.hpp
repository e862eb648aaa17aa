// What the spindle::queue tests share: a group of threads, the outcome of a queue
// call as a value, the order each queue kind hands items back in, and the scale of the
// stress tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <utility>
#include <vector>

#include "spindle/queue.hpp"
#include "spindle/threading.hpp"
#include "support/sanitizers.hpp"
#include "support/thread_group.hpp"

// Sanitizers slow the stress tests down by an order of magnitude: they run fewer items there.
#define SPINDLE_QUEUE_TEST_SANITIZED SPINDLE_TEST_SANITIZED

namespace queue_test {

using Clock = std::chrono::steady_clock;

using spindle_test::Threads;

// How a queue call ended.
enum class Outcome { returned, empty, full, shut_down, invalid_argument, other_exception };

inline std::ostream& operator<<(std::ostream& out, Outcome outcome) {
  switch (outcome) {
    case Outcome::returned:
      return out << "returned";
    case Outcome::empty:
      return out << "Empty";
    case Outcome::full:
      return out << "Full";
    case Outcome::shut_down:
      return out << "ShutDown";
    case Outcome::invalid_argument:
      return out << "std::invalid_argument";
    case Outcome::other_exception:
      return out << "another exception";
  }
  return out << "?";
}

// Calls `call` and says how it ended.
template <class F>
Outcome outcome_of(F&& call) {
  try {
    std::forward<F>(call)();
    return Outcome::returned;
  } catch (const spindle::queue::Empty&) {
    return Outcome::empty;
  } catch (const spindle::queue::Full&) {
    return Outcome::full;
  } catch (const spindle::queue::ShutDown&) {
    return Outcome::shut_down;
  } catch (const std::invalid_argument&) {
    return Outcome::invalid_argument;
  } catch (...) {
    return Outcome::other_exception;
  }
}

// The order in which each queue kind hands back items put in the order `put`.
template <class Q>
struct Kind;
template <class T>
struct Kind<spindle::queue::Queue<T>> {
  static std::vector<int> order(std::vector<int> put) { return put; }
};
template <class T>
struct Kind<spindle::queue::LifoQueue<T>> {
  static std::vector<int> order(std::vector<int> put) { return {put.rbegin(), put.rend()}; }
};
template <class T, class Compare>
struct Kind<spindle::queue::PriorityQueue<T, Compare>> {
  static std::vector<int> order(std::vector<int> put) {
    std::sort(put.begin(), put.end());
    return put;
  }
};

// Takes every item left, without blocking.
template <class Q>
auto drain(Q& queue) {
  std::vector<decltype(queue.get_nowait())> items;
  while (!queue.empty())
    items.push_back(queue.get_nowait());
  return items;
}

}  // namespace queue_test

// Defines one test per bounded queue kind (suites Queue<Suffix>, LifoQueue<Suffix>,
// PriorityQueue<Suffix>), each running the check template check_<Name> on that kind
// holding `Item`s.
#define QUEUE_KINDS_TEST(Suffix, Name, Item)             \
  TEST(Queue##Suffix, Name) {                            \
    check_##Name<spindle::queue::Queue<Item>>();         \
  }                                                      \
  TEST(LifoQueue##Suffix, Name) {                        \
    check_##Name<spindle::queue::LifoQueue<Item>>();     \
  }                                                      \
  TEST(PriorityQueue##Suffix, Name) {                    \
    check_##Name<spindle::queue::PriorityQueue<Item>>(); \
  }
