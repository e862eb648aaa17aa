// What the spindle::futures tests share: the executor kinds every executor test runs against,
// futures already in each state, a group of threads, stderr capture, and the scale of the
// stress tests.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "spindle/futures.hpp"
#include "spindle/threading.hpp"
#include "support/sanitizers.hpp"
#include "support/thread_group.hpp"

// Sanitizers slow the stress tests down by an order of magnitude: they run fewer tasks there.
#define SPINDLE_FUTURES_TEST_SANITIZED SPINDLE_TEST_SANITIZED

namespace futures_test {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// The exception the tests' tasks throw: its own type, so a test can tell it from anything the
// library throws.
class TaskError : public std::runtime_error {
 public:
  explicit TaskError(const std::string& what, int code = 0)
      : std::runtime_error(what), code(code) {}
  int code;
};

// Plain functions, callable by any executor (a process pool ships only these).
inline int mul(int x, int y) {
  return x * y;
}
inline int identity(int x) {
  return x;
}
inline int divide(int x, int y) {
  if (y == 0) throw TaskError("division by zero");
  return x / y;
}
inline void fail_with_task_error() {
  throw TaskError("task failed");
}

// An executor kind the executor tests run against.
struct ExecutorKind {
  std::string name;
  // Tasks run in this process: they may capture references and share memory with the test.
  bool in_process = true;
  std::function<std::unique_ptr<spindle::futures::Executor>(std::optional<std::size_t>)> make;
};

inline std::vector<ExecutorKind> executor_kinds() {
  return {
      {"ThreadPool", true,
       [](std::optional<std::size_t> max_workers) -> std::unique_ptr<spindle::futures::Executor> {
         return std::make_unique<spindle::futures::ThreadPoolExecutor>(
             spindle::futures::ThreadPoolOptions{.max_workers = max_workers});
       }},
  };
}

// The kind's name stands for it in test names: ctest lists Suite.Test/ThreadPool.
inline void PrintTo(const ExecutorKind& kind, std::ostream* out) {
  *out << kind.name;
}

// Base of the suites run once per executor kind.
class PerExecutor : public testing::TestWithParam<ExecutorKind> {
 protected:
  std::unique_ptr<spindle::futures::Executor> make(
      std::optional<std::size_t> max_workers = std::nullopt) const {
    return GetParam().make(max_workers);
  }
  // Tests whose tasks share memory with the test skip other kinds.
  bool in_process() const { return GetParam().in_process; }
};

#define SKIP_UNLESS_IN_PROCESS()                                               \
  do {                                                                         \
    if (!in_process()) GTEST_SKIP() << "the tasks share memory with the test"; \
  } while (false)

// Futures already in each state, as Python's test utilities make them.
template <class T = int>
spindle::futures::Future<T> pending_future() {
  return spindle::futures::Future<T>();
}
template <class T = int>
spindle::futures::Future<T> running_future() {
  spindle::futures::Future<T> future;
  future.set_running_or_notify_cancel();
  return future;
}
template <class T = int>
spindle::futures::Future<T> cancelled_future() {
  spindle::futures::Future<T> future;
  future.cancel();
  return future;
}
inline spindle::futures::Future<int> successful_future(int value = 42) {
  spindle::futures::Future<int> future;
  future.set_result(value);
  return future;
}
// The exception is marked as read, so the future's end reports nothing.
inline spindle::futures::Future<int> exception_future(const std::string& what = "failed") {
  spindle::futures::Future<int> future;
  future.set_exception(std::make_exception_ptr(TaskError(what)));
  future.exception();
  return future;
}

using spindle_test::Threads;

// Captures what is written to stderr from construction to text().
class CapturedStderr {
 public:
  CapturedStderr() { testing::internal::CaptureStderr(); }
  CapturedStderr(const CapturedStderr&) = delete;
  CapturedStderr& operator=(const CapturedStderr&) = delete;
  ~CapturedStderr() {
    if (!taken_) text();
  }
  // Ends the capture; what was written. A sanitizer report caught in it is written out again,
  // so that it is not lost with the capture.
  std::string text() {
    taken_ = true;
    std::string text = testing::internal::GetCapturedStderr();
    if (text.find("Sanitizer") != std::string::npos) std::fputs(text.c_str(), stderr);
    return text;
  }

 private:
  bool taken_ = false;
};

// Calls `call`; the exception it threw, or nullptr.
template <class F>
std::exception_ptr exception_of(F&& call) {
  try {
    std::forward<F>(call)();
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

// True if `error` holds an E (or a type derived from it).
template <class E>
bool holds(const std::exception_ptr& error) {
  if (!error) return false;
  try {
    std::rethrow_exception(error);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

// The what() of the exception in `error`.
inline std::string what_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "(not a std::exception)";
  }
}

}  // namespace futures_test
