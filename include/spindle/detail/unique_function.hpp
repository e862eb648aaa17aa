// A move-only `void()` callable (std::move_only_function arrives only in C++23).
#pragma once

#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

namespace spindle::detail {

class UniqueFunction {
 public:
  UniqueFunction() = default;
  UniqueFunction(std::nullptr_t) {}

  template <class F>
  requires(!std::is_same_v<std::decay_t<F>, UniqueFunction> && std::invocable<std::decay_t<F>&>)
      UniqueFunction(F&& function)
      : callable_(std::make_unique<Model<std::decay_t<F>>>(std::forward<F>(function))) {}

  UniqueFunction(UniqueFunction&&) noexcept = default;
  UniqueFunction& operator=(UniqueFunction&&) noexcept = default;

  explicit operator bool() const { return callable_ != nullptr; }
  void operator()() { callable_->call(); }

 private:
  struct Concept {
    virtual ~Concept() = default;
    virtual void call() = 0;
  };
  template <class F>
  struct Model final : Concept {
    explicit Model(F&& f) : function(std::move(f)) {}
    explicit Model(const F& f) : function(f) {}
    void call() override { std::invoke(function); }
    F function;
  };
  std::unique_ptr<Concept> callable_;
};

// Decay-copies `function` and `args` (as std::thread does) into one callable that invokes
// std::invoke(function, args...) with the stored copies passed as rvalues.
template <class F, class... A>
UniqueFunction bind_call(F&& function, A&&... args) {
  return UniqueFunction(
      [function = std::forward<F>(function),
       arguments = std::tuple<std::decay_t<A>...>(std::forward<A>(args)...)]() mutable {
        std::apply([&](auto&... stored) { std::invoke(std::move(function), std::move(stored)...); },
                   arguments);
      });
}

}  // namespace spindle::detail

namespace spindle::detail {
// Like bind_call, but the result may be called many times: each call passes the stored
// arguments as lvalues (Timer's function, which a repeating subclass calls again and again).
template <class F, class... A>
UniqueFunction bind_repeatable_call(F&& function, A&&... args) {
  return UniqueFunction(
      [function = std::forward<F>(function),
       arguments = std::tuple<std::decay_t<A>...>(std::forward<A>(args)...)]() mutable {
        std::apply([&](auto&... stored) { std::invoke(function, stored...); }, arguments);
      });
}
}  // namespace spindle::detail
