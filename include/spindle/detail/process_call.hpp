// A call shipped to another process of the same program: where its code is (as an object
// file and an offset, so it resolves in the other address space, also inside a shared
// library), the arguments, and on the way back the result or the exception.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "spindle/detail/serialization.hpp"

namespace spindle::multiprocessing::detail {

// A function's place in the program: the loaded object that holds it ("" for the main
// executable) and its offset from that object's load address.
struct FunctionRef {
  std::string object;
  std::uint64_t offset = 0;
};

// Where `address` (code) is. Cached. std::invalid_argument when no loaded object holds it.
FunctionRef locate_function(std::uintptr_t address);
// The address of `ref` in this process (loading its object if needed). CorruptMessage when
// it cannot be found.
std::uintptr_t resolve_function(const FunctionRef& ref);

void write_function_ref(Encoder& out, const FunctionRef& ref);
FunctionRef read_function_ref(Decoder& in);

// The leading bytes of a call message that name what it runs (its thunk and target, as
// written by write_call_header or encode_chunk); all of `call` when it is too short to hold
// them. Calls of one function share these bytes.
std::string_view call_target(std::string_view call) noexcept;

// Decodes the arguments of a call from `in`, runs it, writes its result to `out`.
using Thunk = void (*)(std::uintptr_t target, Decoder& in, Encoder& out);

template <class F>
inline constexpr bool is_plain_function_v =
    std::is_pointer_v<F>&& std::is_function_v<std::remove_pointer_t<F>>;
// A lambda without captures (or another empty function object): the other process makes its
// own from the type.
template <class F>
inline constexpr bool is_stateless_callable_v =
    std::is_class_v<F>&& std::is_empty_v<F>&& std::is_default_constructible_v<F>;
template <class F>
inline constexpr bool shippable_target_v =
    is_plain_function_v<std::decay_t<F>> || is_stateless_callable_v<std::decay_t<F>>;

#define SPINDLE_MP_TARGET_MESSAGE                                                              \
  "spindle::multiprocessing: a target must be a plain function or a lambda without captures: " \
  "the other process finds it in its own copy of the program. Pass state as arguments (they "  \
  "are serialized) instead of capturing it, and share objects through Pipe, Queue, Value or "  \
  "SharedMemory"

// An argument as it travels: string literals as std::string, everything else decayed.
template <class A>
using Shipped = std::conditional_t<std::is_same_v<std::decay_t<A>, const char*> ||
                                       std::is_same_v<std::decay_t<A>, char*>,
                                   std::string, std::decay_t<A>>;

template <class F>
struct Signature;
template <class R, class... P>
struct Signature<R (*)(P...)> {
  using Parameters = std::tuple<std::decay_t<P>...>;
};
template <class R, class... P>
struct Signature<R (*)(P...) noexcept> {
  using Parameters = std::tuple<std::decay_t<P>...>;
};

// The tuple of argument types that travels for target F called with A...: a plain function's
// own parameter types, so conversions happen in the caller.
template <class F, class... A>
struct ArgumentsOf {
  using type = std::tuple<Shipped<A>...>;
};
template <class F, class... A>
requires is_plain_function_v<F>
struct ArgumentsOf<F, A...> {
  using type = typename Signature<F>::Parameters;
};
template <class F, class... A>
using ArgumentsOf_t = typename ArgumentsOf<std::decay_t<F>, A...>::type;

template <class F, class Tuple>
struct TupleResult;
template <class F, class... P>
struct TupleResult<F, std::tuple<P...>> {
  static constexpr bool invocable =
      std::is_invocable_v<F&, P&...> || std::is_invocable_v<F&, P&&...>;
  using type = std::remove_cvref_t<
      std::invoke_result_t<F&, std::conditional_t<std::is_invocable_v<F&, P&&...>, P&&, P&>...>>;
};

// The result type of shipping F with A...
template <class F, class... A>
using ShippedResult_t = typename TupleResult<std::decay_t<F>, ArgumentsOf_t<F, A...>>::type;

template <class T>
inline constexpr bool serializable_result_v = std::is_void_v<T> || serializable_v<T>;

template <class Tuple>
struct AllSerializable;
template <class... P>
struct AllSerializable<std::tuple<P...>> : std::bool_constant<(serializable_v<P> && ...)> {};

// Checks (at compile time, with the messages users see) that target F called with A... can
// be shipped. `result_matters`: the result comes back (pools), so it must be serializable.
template <bool result_matters, class F, class... A>
constexpr bool check_shippable() {
  static_assert(shippable_target_v<F>, SPINDLE_MP_TARGET_MESSAGE);
  if constexpr (shippable_target_v<F>) {
    using Arguments = ArgumentsOf_t<F, A...>;
    static_assert(AllSerializable<Arguments>::value,
                  "spindle::multiprocessing: every argument must be "
                  "serializable. " SPINDLE_MP_UNSERIALIZABLE_MESSAGE);
    if constexpr (is_plain_function_v<std::decay_t<F>>) {
      static_assert(std::tuple_size_v<Arguments> == sizeof...(A),
                    "spindle::multiprocessing: the number of arguments does not match the target's "
                    "parameters");
    }
    if constexpr (AllSerializable<Arguments>::value) {
      static_assert(TupleResult<std::decay_t<F>, Arguments>::invocable,
                    "spindle::multiprocessing: the target cannot be called with these arguments");
      if constexpr (TupleResult<std::decay_t<F>, Arguments>::invocable && result_matters) {
        static_assert(serializable_result_v<ShippedResult_t<F, A...>>,
                      "spindle::multiprocessing: the target's result must be "
                      "serializable. " SPINDLE_MP_UNSERIALIZABLE_MESSAGE);
      }
    }
  }
  return true;
}

// True (without a compile-time error) when the call can be shipped: for overload selection.
template <bool result_matters, class F, class... A>
concept ShippableCall = shippable_target_v<F> && AllSerializable<ArgumentsOf_t<F, A...>>::value &&
                        (!is_plain_function_v<std::decay_t<F>> ||
                         std::tuple_size_v<ArgumentsOf_t<F, A...>> == sizeof...(A)) &&
                        TupleResult<std::decay_t<F>, ArgumentsOf_t<F, A...>>::invocable &&
                        (!result_matters || serializable_result_v<ShippedResult_t<F, A...>>);

template <class F>
std::decay_t<F> target_from(std::uintptr_t address) {
  using Target = std::decay_t<F>;
  if constexpr (is_plain_function_v<Target>) {
    return reinterpret_cast<Target>(address);
  } else {
    return Target{};
  }
}

// Calls `target` with the arguments; a void result is written as nothing.
template <bool keep_result, class Target, class Arguments>
void invoke_into(Target& target, Arguments& arguments, Encoder& out) {
  std::apply(
      [&](auto&... values) {
        auto call = [&]() -> decltype(auto) {
          if constexpr (std::is_invocable_v<Target&, decltype(std::move(values))...>) {
            return std::invoke(target, std::move(values)...);
          } else {
            return std::invoke(target, values...);
          }
        };
        using R = std::remove_cvref_t<decltype(call())>;
        if constexpr (std::is_void_v<R> || !keep_result) {
          call();
        } else {
          const R& result = call();
          write(out, result);
        }
      },
      arguments);
}

template <class F, class Arguments, bool keep_result>
void call_thunk(std::uintptr_t address, Decoder& in, Encoder& out) {
  auto target = target_from<F>(address);
  auto arguments = blank<Arguments>();
  read(in, arguments);
  invoke_into<keep_result>(target, arguments, out);
}

// Where a thunk instantiation is; computed once per instantiation.
template <class F, class Arguments, bool keep_result>
const FunctionRef& thunk_ref() {
  static const FunctionRef ref =
      locate_function(reinterpret_cast<std::uintptr_t>(&call_thunk<F, Arguments, keep_result>));
  return ref;
}

// Writes the thunk and the target of a call.
template <class F, class Arguments, bool keep_result = true>
void write_call_header(Encoder& out, const F& target) {
  write_function_ref(out, thunk_ref<std::decay_t<F>, Arguments, keep_result>());
  if constexpr (is_plain_function_v<std::decay_t<F>>) {
    if (target == nullptr) throw std::invalid_argument("the target is a null function pointer");
    write_function_ref(out, locate_function(reinterpret_cast<std::uintptr_t>(target)));
  } else {
    write_function_ref(out, FunctionRef{});
  }
}

// Writes one argument as the type that travels (a tuple is written element by element, so
// this matches reading the whole tuple). Move-only arguments (Connection) are not copied.
template <class P, class A>
void write_argument(Encoder& out, A&& argument) {
  if constexpr (std::is_same_v<std::remove_cvref_t<A>, P>) {
    write(out, static_cast<const P&>(argument));
  } else {
    const P converted(std::forward<A>(argument));
    write(out, converted);
  }
}

template <class Arguments, std::size_t... I, class... A>
void write_arguments(Encoder& out, std::index_sequence<I...>, A&&... args) {
  (write_argument<std::tuple_element_t<I, Arguments>>(out, std::forward<A>(args)), ...);
}

// The message for target(args...), ready to run in another process with run_call(). Checks
// shippability at compile time first, so a user sees only the messages that say what to do.
template <bool keep_result, class F, class... A>
Message encode_call(const F& target, A&&... args) {
  static_assert(check_shippable<keep_result, F, A...>());
  Message message;
  if constexpr (ShippableCall<keep_result, F, A...>) {
    using Arguments = ArgumentsOf_t<F, A...>;
    Encoder out(message);
    const std::decay_t<F> decayed = target;  // a function name becomes a pointer
    write_call_header<std::decay_t<F>, Arguments, keep_result>(out, decayed);
    write_arguments<Arguments>(out, std::index_sequence_for<A...>{}, std::forward<A>(args)...);
  }
  return message;
}

// Runs a call read from `in` (thunk, target, arguments) and writes its result to `out`.
// Exceptions from the call propagate.
void run_call(Decoder& in, Encoder& out);

// A result message from a worker: a status byte, then the value or an ExceptionRecord.
enum class ResultStatus : std::uint8_t { value = 0, exception = 1, initializer_failed = 2 };

// Decodes a result message: the value, or throws the rebuilt exception.
template <class R>
R decode_result(Message&& message) {
  Decoder in(message.bytes, std::exchange(message.fds, {}));
  std::uint8_t status = 0;
  in.raw(&status, 1);
  if (status == static_cast<std::uint8_t>(ResultStatus::exception)) {
    std::rethrow_exception(rebuild_exception(read_exception(in)));
  }
  if (status != static_cast<std::uint8_t>(ResultStatus::value)) {
    throw CorruptMessage("corrupt result message: unknown status " + std::to_string(status));
  }
  if constexpr (std::is_void_v<R>) {
    if (in.remaining() != 0)
      throw CorruptMessage("corrupt result message: bytes after a void result");
  } else {
    R value = read_value<R>(in);
    if (in.remaining() != 0) throw CorruptMessage("corrupt result message: bytes left over");
    return value;
  }
}

}  // namespace spindle::multiprocessing::detail
