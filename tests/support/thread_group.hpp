// A group of spindle threads for tests: started one by one, joined together.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "spindle/threading.hpp"

namespace spindle_test {

// Threads started one by one and joined together: by join(), or when the group is destroyed
// (the destructor blocks until every thread has ended). Not thread-safe: one thread owns it.
class Threads {
 public:
  Threads() = default;
  Threads(const Threads&) = delete;
  Threads& operator=(const Threads&) = delete;
  ~Threads() { join(); }

  template <class F>
  void start(F&& target) {
    threads_.push_back(std::make_unique<spindle::threading::Thread>(std::forward<F>(target)));
    threads_.back()->start();
  }
  // Starts `count` threads, each calling target(index) with its index 0 .. count - 1.
  template <class F>
  void start_n(std::size_t count, F target) {
    for (std::size_t index = 0; index < count; ++index) {
      start([target, index]() mutable { target(index); });
    }
  }
  void join() {
    for (auto& thread : threads_)
      thread->join();
    threads_.clear();
  }

 private:
  std::vector<std::unique_ptr<spindle::threading::Thread>> threads_;
};

}  // namespace spindle_test
