// What crosses a process boundary: values encoded with cereal binary archives, the file
// descriptors that travel with them, and exceptions.
//
// write()/read() handle the standard types themselves (strings and contiguous containers of
// trivially copyable elements are one memcpy), hand user and library types that have cereal
// serialization to cereal, copy the bytes of other trivially copyable types, and reject
// anything else at compile time (serializable_v).
//
// Library handles that own a file descriptor (Connection, shared objects) save it with
// attach_fd() and load it with take_fd(): the descriptor travels beside the bytes
// (SCM_RIGHTS), so the receiving process gets its own copy.
#pragma once

#include <array>
#include <cereal/archives/binary.hpp>
#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <istream>
#include <list>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <span>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "spindle/errors.hpp"

namespace spindle::multiprocessing::detail {

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

// Bytes plus the file descriptors sent with them. Owns the descriptors: closes them when
// destroyed. Move-only.
class Message {
 public:
  Message() = default;
  Message(Message&& other) noexcept
      : bytes(std::move(other.bytes)),
        borrowed(std::exchange(other.borrowed, {})),
        fds(std::exchange(other.fds, {})) {}
  Message& operator=(Message&& other) noexcept {
    if (this != &other) {
      close_fds();
      bytes = std::move(other.bytes);
      borrowed = std::exchange(other.borrowed, {});
      fds = std::exchange(other.fds, {});
    }
    return *this;
  }
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;
  ~Message() { close_fds(); }
  void close_fds() noexcept;
  // The whole payload's length: bytes, then borrowed.
  std::size_t size() const noexcept { return bytes.size() + borrowed.size(); }
  // Copies the borrowed bytes to the end of `bytes`: the message no longer refers to
  // anything it does not own.
  void own() {
    bytes.append(borrowed);
    borrowed = {};
  }

  std::string bytes;
  // More payload, sent after `bytes` but not owned: a blocking Pool.map's elements, straight
  // from the caller's range. Whoever sets it keeps those bytes alive until the message is
  // sent or dropped, or calls own() first (WorkerPool::own_borrowed). Only the sending side
  // (FrameWriter, send_frame) reads it.
  std::string_view borrowed;
  std::vector<int> fds;
};

// Large message buffers, kept for reuse. glibc hands freed memory at the top of its heap
// back to the kernel, so a stream of large frames would otherwise fault in fresh pages for
// every one (about 2 us per 4 KiB page on a VM: more than copying the bytes). Thread-safe.
//
// recycled_buffer: an empty string with at least `capacity` bytes reserved, reusing a kept
// buffer when one is large enough. recycle_buffer: keeps `buffer` (emptied) if its capacity
// is worth keeping and there is room; otherwise frees it.
// Buffers smaller than recycled_buffer_min are never kept (nor worth asking for).
inline constexpr std::size_t recycled_buffer_min = 16 * 1024;
std::string recycled_buffer(std::size_t capacity);
void recycle_buffer(std::string buffer) noexcept;

// Asks the kernel to back the 2 MiB-aligned part of [data, data + size) with huge pages when
// it is first touched (madvise MADV_HUGEPAGE; a no-op for less than that). For a large
// vector about to be filled: one fault per 2 MiB instead of one per 4 KiB page.
void advise_huge_pages(void* data, std::size_t size) noexcept;

// A frame could not be decoded: its bytes do not describe a value of the expected type.
class CorruptMessage : public spindle::Error {
 public:
  using spindle::Error::Error;
};

// ---------------------------------------------------------------------------------------
// Stream buffers over a std::string (output) and a byte range (input)
// ---------------------------------------------------------------------------------------

class StringSink final : public std::streambuf {
 public:
  explicit StringSink(std::string& out) : out_(out) {}

 protected:
  std::streamsize xsputn(const char* data, std::streamsize size) override {
    out_.append(data, static_cast<std::size_t>(size));
    return size;
  }
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof()))
      out_.push_back(traits_type::to_char_type(c));
    return traits_type::not_eof(c);
  }

 private:
  std::string& out_;
};

class SpanSource final : public std::streambuf {
 public:
  SpanSource(const char* data, std::size_t size) {
    char* begin = const_cast<char*>(data);  // the get area is only read
    setg(begin, begin, begin + size);
  }
  std::size_t remaining() const { return static_cast<std::size_t>(egptr() - gptr()); }
  // The next `size` bytes (at most remaining()), in place; reading goes on after them.
  const char* take(std::size_t size) {
    const char* data = gptr();
    setg(eback(), gptr() + size, egptr());
    return data;
  }
};

// Encodes values into `message.bytes`; descriptors attached while it is the innermost
// encoder of this thread go to `message.fds`.
class Encoder {
 public:
  explicit Encoder(Message& message);
  ~Encoder();
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;
  cereal::BinaryOutputArchive& archive() { return archive_; }
  void raw(const void* data, std::size_t size) {
    archive_.saveBinary(data, static_cast<std::streamsize>(size));
  }
  void size(std::size_t n) {
    const auto value = static_cast<std::uint64_t>(n);
    raw(&value, sizeof value);
  }
  Message& message() { return message_; }
  // Appends `size` bytes (zeroed) and returns where they start, for the caller to fill in
  // place; valid until the next write.
  char* extend(std::size_t size) {
    const std::size_t at = message_.bytes.size();
    message_.bytes.resize(at + size);
    return message_.bytes.data() + at;
  }

 private:
  Message& message_;
  StringSink sink_;
  std::ostream stream_;
  cereal::BinaryOutputArchive archive_;
  Encoder* outer_;
};

// Decodes values from a byte range; take_fd() hands out `fds` (owned: the ones nobody took
// are closed by the Decoder's destructor).
class Decoder {
 public:
  Decoder(std::string_view bytes, std::vector<int> fds = {});
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;
  cereal::BinaryInputArchive& archive() { return archive_; }
  void raw(void* data, std::size_t size);
  // A container size; CorruptMessage when `n * min_bytes_each` exceeds what is left.
  std::size_t size(std::size_t min_bytes_each);
  std::size_t remaining() const { return source_.remaining(); }
  // The next `size` bytes in place, without copying them (they live as long as the decoded
  // range); CorruptMessage when fewer are left.
  const char* view(std::size_t size);
  int take_fd(std::uint32_t index);

 private:
  SpanSource source_;
  std::istream stream_;
  cereal::BinaryInputArchive archive_;
  std::vector<int> fds_;
  Decoder* outer_;
};

// For cereal save() functions of types that own a descriptor: sends a duplicate of `fd`
// with the message being encoded on this thread; returns the index to save. std::logic_error
// when nothing is being encoded for another process.
std::uint32_t attach_fd(int fd);
// For cereal load() functions: the descriptor saved under `index`, now owned by the caller.
// CorruptMessage if there is none.
int take_fd(std::uint32_t index);

// ---------------------------------------------------------------------------------------
// Which types can be written
// ---------------------------------------------------------------------------------------

template <class T>
inline constexpr bool has_cereal_v =
    cereal::traits::is_output_serializable<T, cereal::BinaryOutputArchive>::value&&
        cereal::traits::is_input_serializable<T, cereal::BinaryInputArchive>::value;

template <class T>
struct StdKind {
  static constexpr bool handled = false;
};

// Trivially copyable standard types that are only an address into this process: never sent.
template <class T>
struct PointsIntoThisProcess : std::false_type {};
template <class T>
struct PointsIntoThisProcess<std::reference_wrapper<T>> : std::true_type {};
template <class C, class Tr>
struct PointsIntoThisProcess<std::basic_string_view<C, Tr>> : std::true_type {};
template <class T, std::size_t N>
struct PointsIntoThisProcess<std::span<T, N>> : std::true_type {};

// Trivially copyable types without their own serialization are copied as bytes (pointers
// are not: an address means nothing in another process).
template <class T>
inline constexpr bool raw_copyable_v = std::is_arithmetic_v<T> || std::is_enum_v<T> ||
                                       (std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> &&
                                        !PointsIntoThisProcess<T>::value &&
                                        !std::is_member_pointer_v<T> &&
                                        !std::is_null_pointer_v<T> && !StdKind<T>::handled &&
                                        !has_cereal_v<T> && !std::is_empty_v<T>);

template <class T>
struct Serializable
    : std::bool_constant<raw_copyable_v<T> ||
                         (!StdKind<T>::handled && !std::is_pointer_v<T> && has_cereal_v<T>) ||
                         (std::is_empty_v<T> && std::is_default_constructible_v<T>)> {};

// True when T can cross a process boundary.
template <class T>
inline constexpr bool serializable_v = Serializable<std::remove_cv_t<T>>::value;

// The standard types: element types decide.
template <class C, class Tr, class A>
struct StdKind<std::basic_string<C, Tr, A>> {
  static constexpr bool handled = true;
};
template <class C, class Tr, class A>
struct Serializable<std::basic_string<C, Tr, A>> : std::bool_constant<raw_copyable_v<C>> {};

#define SPINDLE_MP_SEQUENCE(TEMPLATE)     \
  template <class T, class A>             \
  struct StdKind<TEMPLATE<T, A>> {        \
    static constexpr bool handled = true; \
  };                                      \
  template <class T, class A>             \
  struct Serializable<TEMPLATE<T, A>> : std::bool_constant<serializable_v<T>> {};
SPINDLE_MP_SEQUENCE(std::vector)
SPINDLE_MP_SEQUENCE(std::deque)
SPINDLE_MP_SEQUENCE(std::list)
#undef SPINDLE_MP_SEQUENCE

template <class T, std::size_t N>
struct StdKind<std::array<T, N>> {
  static constexpr bool handled = true;
};
template <class T, std::size_t N>
struct Serializable<std::array<T, N>> : std::bool_constant<serializable_v<T>> {};

#define SPINDLE_MP_SET(TEMPLATE, ...)     \
  template <class K, class... Rest>       \
  struct StdKind<TEMPLATE<K, Rest...>> {  \
    static constexpr bool handled = true; \
  };                                      \
  template <class K, class... Rest>       \
  struct Serializable<TEMPLATE<K, Rest...>> : std::bool_constant<serializable_v<K>> {};
SPINDLE_MP_SET(std::set)
SPINDLE_MP_SET(std::multiset)
SPINDLE_MP_SET(std::unordered_set)
SPINDLE_MP_SET(std::unordered_multiset)
#undef SPINDLE_MP_SET

#define SPINDLE_MP_MAP(TEMPLATE)               \
  template <class K, class V, class... Rest>   \
  struct StdKind<TEMPLATE<K, V, Rest...>> {    \
    static constexpr bool handled = true;      \
  };                                           \
  template <class K, class V, class... Rest>   \
  struct Serializable<TEMPLATE<K, V, Rest...>> \
      : std::bool_constant<serializable_v<K> && serializable_v<V>> {};
SPINDLE_MP_MAP(std::map)
SPINDLE_MP_MAP(std::multimap)
SPINDLE_MP_MAP(std::unordered_map)
SPINDLE_MP_MAP(std::unordered_multimap)
#undef SPINDLE_MP_MAP

template <class A, class B>
struct StdKind<std::pair<A, B>> {
  static constexpr bool handled = true;
};
template <class A, class B>
struct Serializable<std::pair<A, B>> : std::bool_constant<serializable_v<A> && serializable_v<B>> {
};
template <class... T>
struct StdKind<std::tuple<T...>> {
  static constexpr bool handled = true;
};
template <class... T>
struct Serializable<std::tuple<T...>> : std::bool_constant<(serializable_v<T> && ...)> {};
template <class T>
struct StdKind<std::optional<T>> {
  static constexpr bool handled = true;
};
template <class T>
struct Serializable<std::optional<T>> : std::bool_constant<serializable_v<T>> {};
template <class... T>
struct StdKind<std::variant<T...>> {
  static constexpr bool handled = true;
};
template <class... T>
struct Serializable<std::variant<T...>> : std::bool_constant<(serializable_v<T> && ...)> {};

template <class T>
inline constexpr bool always_false_v = false;

#define SPINDLE_MP_UNSERIALIZABLE_MESSAGE                                                      \
  "spindle::multiprocessing: this type cannot cross a process boundary. Give it a cereal "     \
  "serialize() member or free function (or save/load), or make it trivially copyable without " \
  "pointers; std::string, the standard containers, optional, variant, pair and tuple of such " \
  "types work as they are"

// ---------------------------------------------------------------------------------------
// write / read
// ---------------------------------------------------------------------------------------

template <class T>
void write(Encoder& out, const T& value);
template <class T>
void read(Decoder& in, T& value);

template <class T>
struct IsVector : std::false_type {};
template <class T, class A>
struct IsVector<std::vector<T, A>> : std::true_type {};
template <class T>
struct IsArray : std::false_type {};
template <class T, std::size_t N>
struct IsArray<std::array<T, N>> : std::true_type {};
template <class T>
struct IsString : std::false_type {};
template <class C, class Tr, class A>
struct IsString<std::basic_string<C, Tr, A>> : std::true_type {};
template <class T>
struct IsPair : std::false_type {};
template <class A, class B>
struct IsPair<std::pair<A, B>> : std::true_type {};
template <class T>
struct IsTuple : std::false_type {};
template <class... T>
struct IsTuple<std::tuple<T...>> : std::true_type {};
template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};
template <class T>
struct IsVariant : std::false_type {};
template <class... T>
struct IsVariant<std::variant<T...>> : std::true_type {};
template <class T>
concept Associative = requires {
  typename T::key_type;
};

// The constructor tag of the shared-object handles (Queue, Value, Array, Lock, Barrier,
// SharedMemory...): a handle that names nothing yet, only to be loaded into. A receiving
// process builds what it reads with blank<T>(), so it neither makes a new shared object only
// to drop it nor needs a default constructor (Array and Barrier have none).
struct ForLoading {};

template <class T>
T blank();

template <class... T>
std::tuple<T...> blank_tuple(std::tuple<T...>* /*type*/) {
  return std::tuple<T...>(blank<T>()...);
}

// An object to read a T into: T(ForLoading) for a handle, a tuple or pair of blanks, else T{}.
template <class T>
T blank() {
  if constexpr (std::is_constructible_v<T, ForLoading>) {
    return T(ForLoading{});
  } else if constexpr (IsTuple<T>::value) {
    return blank_tuple(static_cast<T*>(nullptr));
  } else if constexpr (IsPair<T>::value) {
    return T(blank<typename T::first_type>(), blank<typename T::second_type>());
  } else {
    return T{};
  }
}

template <class T>
struct IsVectorOfHandles : std::false_type {};
template <class E, class A>
struct IsVectorOfHandles<std::vector<E, A>> : std::is_constructible<E, ForLoading> {};

template <class... T, std::size_t... I>
void read_variant(Decoder& in, std::variant<T...>& value, std::size_t index,
                  std::index_sequence<I...>) {
  const bool found =
      ((index == I ? (value.template emplace<I>(
                          blank<std::variant_alternative_t<I, std::variant<T...>>>()),
                      read(in, std::get<I>(value)), true)
                   : false) ||
       ...);
  if (!found) throw CorruptMessage("corrupt message: variant index out of range");
}

template <class T>
void write(Encoder& out, const T& value) {
  static_assert(serializable_v<T>, SPINDLE_MP_UNSERIALIZABLE_MESSAGE);
  if constexpr (IsString<T>::value) {
    out.size(value.size());
    out.raw(value.data(), value.size() * sizeof(typename T::value_type));
  } else if constexpr (IsVector<T>::value || IsArray<T>::value) {
    using E = typename T::value_type;
    if constexpr (IsVector<T>::value) out.size(value.size());
    if constexpr (raw_copyable_v<E> && !std::is_same_v<T, std::vector<bool>>) {
      out.raw(value.data(), value.size() * sizeof(E));
    } else {
      for (const auto& element : value)
        write(out, static_cast<const E&>(element));
    }
  } else if constexpr (IsPair<T>::value) {
    write(out, value.first);
    write(out, value.second);
  } else if constexpr (IsTuple<T>::value) {
    std::apply([&](const auto&... elements) { (write(out, elements), ...); }, value);
  } else if constexpr (IsOptional<T>::value) {
    const std::uint8_t engaged = value.has_value() ? 1 : 0;
    out.raw(&engaged, 1);
    if (value) write(out, *value);
  } else if constexpr (IsVariant<T>::value) {
    if (value.valueless_by_exception()) {
      throw std::invalid_argument("cannot send a variant that is valueless by exception");
    }
    out.size(value.index());
    std::visit([&](const auto& alternative) { write(out, alternative); }, value);
  } else if constexpr (StdKind<T>::handled) {  // the other containers
    out.size(static_cast<std::size_t>(std::distance(value.begin(), value.end())));
    for (const auto& element : value) {
      if constexpr (Associative<T> && requires { typename T::mapped_type; }) {
        write(out, element.first);
        write(out, element.second);
      } else {
        write(out, element);
      }
    }
  } else if constexpr (raw_copyable_v<T>) {
    out.raw(&value, sizeof value);
  } else if constexpr (has_cereal_v<T>) {
    out.archive()(value);
  } else {
    // empty trivially default constructible types (stateless function objects): nothing
  }
}

template <class T>
void read(Decoder& in, T& value) {
  static_assert(serializable_v<T>, SPINDLE_MP_UNSERIALIZABLE_MESSAGE);
  if constexpr (IsString<T>::value) {
    using C = typename T::value_type;
    value.resize(in.size(sizeof(C)));
    in.raw(value.data(), value.size() * sizeof(C));
  } else if constexpr (IsVectorOfHandles<T>::value) {
    // Handles: each element loaded into a blank one, never a new shared object first.
    const std::size_t count = in.size(1);
    value.clear();
    value.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      value.push_back(blank<typename T::value_type>());
      read(in, value.back());
    }
  } else if constexpr (IsVector<T>::value || IsArray<T>::value) {
    using E = typename T::value_type;
    if constexpr (IsVector<T>::value) {
      value.resize(in.size(raw_copyable_v<E> ? sizeof(E) : (std::is_empty_v<E> ? 0 : 1)));
    }
    if constexpr (raw_copyable_v<E> && !std::is_same_v<T, std::vector<bool>>) {
      in.raw(value.data(), value.size() * sizeof(E));
    } else if constexpr (std::is_same_v<T, std::vector<bool>>) {
      for (std::size_t i = 0; i < value.size(); ++i) {
        bool element = false;
        read(in, element);
        value[i] = element;
      }
    } else {
      for (auto& element : value)
        read(in, element);
    }
  } else if constexpr (IsPair<T>::value) {
    read(in, value.first);
    read(in, value.second);
  } else if constexpr (IsTuple<T>::value) {
    std::apply([&](auto&... elements) { (read(in, elements), ...); }, value);
  } else if constexpr (IsOptional<T>::value) {
    std::uint8_t engaged = 0;
    in.raw(&engaged, 1);
    if (engaged > 1) throw CorruptMessage("corrupt message: bad optional flag");
    if (engaged) {
      value.emplace(blank<typename T::value_type>());
      read(in, *value);
    } else {
      value.reset();
    }
  } else if constexpr (IsVariant<T>::value) {
    const std::size_t index = in.size(0);
    read_variant(in, value, index, std::make_index_sequence<std::variant_size_v<T>>{});
  } else if constexpr (StdKind<T>::handled) {
    const std::size_t count = in.size(1);
    value.clear();
    for (std::size_t i = 0; i < count; ++i) {
      if constexpr (Associative<T> && requires { typename T::mapped_type; }) {
        auto key = blank<std::remove_const_t<typename T::key_type>>();
        auto mapped = blank<typename T::mapped_type>();
        read(in, key);
        read(in, mapped);
        value.emplace(std::move(key), std::move(mapped));
      } else if constexpr (Associative<T>) {
        auto key = blank<typename T::key_type>();
        read(in, key);
        value.insert(std::move(key));
      } else {
        auto element = blank<typename T::value_type>();
        read(in, element);
        value.push_back(std::move(element));
      }
    }
  } else if constexpr (raw_copyable_v<T>) {
    in.raw(&value, sizeof value);
  } else if constexpr (has_cereal_v<T>) {
    in.archive()(value);
  }
}

// A value read from `in`, read into blank<T>().
template <class T>
T read_value(Decoder& in) {
  T value = blank<T>();
  read(in, value);
  return value;
}

// Strings and vectors of raw elements: encoded as their element count, then their bytes.
template <class T>
struct IsContiguousRaw : std::false_type {};
template <class C, class Tr, class A>
struct IsContiguousRaw<std::basic_string<C, Tr, A>> : std::bool_constant<raw_copyable_v<C>> {};
template <class E, class A>
struct IsContiguousRaw<std::vector<E, A>>
    : std::bool_constant<raw_copyable_v<E> && !std::is_same_v<E, bool>> {};
template <class T>
inline constexpr bool contiguous_raw_v = IsContiguousRaw<T>::value;

// `value` as a message that borrows its elements (Message::borrowed): the same bytes as
// encode(value), without copying them. `value` must outlive the sending of the message.
template <class T>
requires contiguous_raw_v<T> Message encode_borrowing(const T& value) {
  Message message;
  const auto count = static_cast<std::uint64_t>(value.size());
  message.bytes.assign(reinterpret_cast<const char*>(&count), sizeof count);
  message.borrowed = std::string_view(reinterpret_cast<const char*>(value.data()),
                                      value.size() * sizeof(typename T::value_type));
  return message;
}

// One value as a message.
template <class T>
Message encode(const T& value) {
  Message message;
  {
    Encoder out(message);
    write(out, value);
  }
  return message;
}

// The value `message` holds; CorruptMessage if it does not hold a T, or holds more.
template <class T>
T decode(Message&& message) {
  Decoder in(message.bytes, std::exchange(message.fds, {}));
  T value = read_value<T>(in);
  if (in.remaining() != 0) {
    throw CorruptMessage("corrupt message: " + std::to_string(in.remaining()) +
                         " bytes left over after the value");
  }
  return value;
}

// ---------------------------------------------------------------------------------------
// Exceptions
// ---------------------------------------------------------------------------------------

// An exception as it travels: its C++ type and what(); error codes for std::system_error.
struct ExceptionRecord {
  std::string type_name;
  std::string message;
  int code = 0;
  std::string category;  // "generic", "system" (std::system_error only)
};

ExceptionRecord record_exception(std::exception_ptr error) noexcept;
// The same type for standard and spindle exceptions, RemoteError for the others.
std::exception_ptr rebuild_exception(const ExceptionRecord& record);

void write_exception(Encoder& out, const ExceptionRecord& record);
ExceptionRecord read_exception(Decoder& in);

}  // namespace spindle::multiprocessing::detail
