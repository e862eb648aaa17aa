// Values, messages and exceptions crossing a process boundary (encoded and decoded here).
#include <gtest/gtest.h>

#include <functional>
#include <ios>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <typeinfo>
#include <unordered_map>
#include <variant>
#include <vector>

#include "spindle/multiprocessing.hpp"
#include "spindle/queue.hpp"

namespace mp = spindle::multiprocessing;
namespace detail = spindle::multiprocessing::detail;

namespace {

struct Point {  // trivially copyable, no serialize: copied as bytes
  double x;
  double y;
  bool operator==(const Point&) const = default;
};

struct Person {  // has a cereal serialize member
  std::string name;
  int age = 0;
  std::vector<std::string> tags;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(name, age, tags);
  }
  bool operator==(const Person&) const = default;
};

enum class Colour : std::uint8_t { red, green };

class CustomFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class T>
T round_trip(const T& value) {
  return detail::decode<T>(detail::encode(value));
}

}  // namespace

static_assert(detail::serializable_v<int>);
static_assert(detail::serializable_v<Point>);
static_assert(detail::serializable_v<Person>);
static_assert(detail::serializable_v<std::map<std::string, std::vector<Point>>>);
static_assert(!detail::serializable_v<int*>);
static_assert(!detail::serializable_v<std::unique_ptr<int>>);
static_assert(!detail::serializable_v<std::vector<const char*>>);
// Trivially copyable, but only an address into this process.
static_assert(!detail::serializable_v<std::reference_wrapper<int>>);
static_assert(!detail::serializable_v<std::string_view>);
static_assert(!detail::serializable_v<std::span<const int>>);

// With <spindle/multiprocessing.hpp> in view, a thread pool still takes std::ref arguments
// (the process pool's overload of submit must not claim them).
int add_into(int& total, int amount) {
  total += amount;
  return total;
}
TEST(Serialization, ThreadPoolSubmitWithStdRefCompilesBesideProcessPools) {
  int total = 1;
  spindle::futures::ThreadPoolExecutor pool({.max_workers = 1});
  EXPECT_EQ(pool.submit(add_into, std::ref(total), 41).result(), 42);
  EXPECT_EQ(total, 42);
}

TEST(Serialization, ScalarsAndTriviallyCopyableTypesRoundTrip) {
  EXPECT_EQ(round_trip(42), 42);
  EXPECT_EQ(round_trip(-1.5), -1.5);
  EXPECT_EQ(round_trip(Colour::green), Colour::green);
  EXPECT_EQ(round_trip(Point{1.0, 2.0}), (Point{1.0, 2.0}));
  EXPECT_EQ(round_trip(std::array<int, 3>{1, 2, 3}), (std::array<int, 3>{1, 2, 3}));
}

TEST(Serialization, StandardContainersRoundTrip) {
  EXPECT_EQ(round_trip(std::string("hello")), "hello");
  EXPECT_EQ(round_trip(std::vector<int>{1, 2, 3}), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(round_trip(std::vector<std::string>{"a", "", "c"}),
            (std::vector<std::string>{"a", "", "c"}));
  EXPECT_EQ(round_trip(std::vector<bool>{true, false, true}),
            (std::vector<bool>{true, false, true}));
  const std::map<std::string, std::vector<Point>> nested{{"a", {{1, 2}}}, {"b", {}}};
  EXPECT_EQ(round_trip(nested), nested);
  const std::unordered_map<int, std::string> hashed{{1, "one"}, {2, "two"}};
  EXPECT_EQ(round_trip(hashed), hashed);
  EXPECT_EQ(round_trip(std::set<int>{3, 1, 2}), (std::set<int>{1, 2, 3}));
  EXPECT_EQ(round_trip(std::optional<std::string>("x")), std::optional<std::string>("x"));
  EXPECT_EQ(round_trip(std::optional<int>()), std::optional<int>());
  using V = std::variant<int, std::string>;
  EXPECT_EQ(round_trip(V(std::string("s"))), V(std::string("s")));
  EXPECT_EQ(round_trip(V(7)), V(7));
  const auto tuple = std::make_tuple(1, std::string("two"), std::pair<int, double>(3, 4.5));
  EXPECT_EQ(round_trip(tuple), tuple);
}

TEST(Serialization, UserTypesWithCerealSerializeRoundTrip) {
  const Person person{"Ada", 36, {"math", "engines"}};
  EXPECT_EQ(round_trip(person), person);
  EXPECT_EQ(round_trip(std::vector<Person>{person, person}), (std::vector<Person>{person, person}));
}

TEST(Serialization, ContiguousTriviallyCopyableContainersAreOneBlockOfBytes) {
  const std::vector<Point> points(1000, Point{1, 2});
  // A size, then the elements' bytes: nothing per element.
  EXPECT_EQ(detail::encode(points).bytes.size(), sizeof(std::uint64_t) + 1000 * sizeof(Point));
  EXPECT_EQ(detail::encode(std::string(100, 'x')).bytes.size(), sizeof(std::uint64_t) + 100);
}

TEST(Serialization, TruncatedMessageIsCorrupt) {
  detail::Message message = detail::encode(std::vector<int>{1, 2, 3});
  message.bytes.resize(message.bytes.size() - 2);
  EXPECT_THROW(detail::decode<std::vector<int>>(std::move(message)), detail::CorruptMessage);
}

TEST(Serialization, ImpossibleSizeIsCorruptWithoutAllocating) {
  detail::Message message = detail::encode(std::uint64_t{1} << 60);
  EXPECT_THROW(detail::decode<std::vector<int>>(std::move(message)), detail::CorruptMessage);
}

TEST(Serialization, BytesLeftOverAreCorrupt) {
  detail::Message message = detail::encode(std::make_pair(1, 2));
  EXPECT_THROW(detail::decode<int>(std::move(message)), detail::CorruptMessage);
}

namespace {
std::exception_ptr cross(std::exception_ptr error) {
  detail::Message message;
  {
    detail::Encoder out(message);
    detail::write_exception(out, detail::record_exception(error));
  }
  detail::Decoder in(message.bytes);
  return detail::rebuild_exception(detail::read_exception(in));
}
}  // namespace

TEST(Serialization, StandardExceptionsKeepTheirType) {
  const auto error = cross(std::make_exception_ptr(std::invalid_argument("bad value")));
  try {
    std::rethrow_exception(error);
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "bad value");
  }
  EXPECT_THROW(std::rethrow_exception(cross(std::make_exception_ptr(std::out_of_range("x")))),
               std::out_of_range);
}

TEST(Serialization, TheStandardLibrarysOwnErrorsKeepTheirType) {
  const auto rethrow = [](auto error) {
    std::rethrow_exception(cross(std::make_exception_ptr(error)));
  };
  EXPECT_THROW(rethrow(std::bad_optional_access()), std::bad_optional_access);
  EXPECT_THROW(rethrow(std::bad_variant_access()), std::bad_variant_access);
  EXPECT_THROW(rethrow(std::bad_function_call()), std::bad_function_call);
  EXPECT_THROW(rethrow(std::bad_weak_ptr()), std::bad_weak_ptr);
  EXPECT_THROW(rethrow(std::bad_cast()), std::bad_cast);
  EXPECT_THROW(rethrow(std::bad_array_new_length()), std::bad_array_new_length);
  try {
    rethrow(std::ios_base::failure("stream broke"));
    ADD_FAILURE() << "no exception";
  } catch (const std::ios_base::failure& e) {
    EXPECT_NE(std::string(e.what()).find("stream broke"), std::string::npos) << e.what();
  }
}

TEST(Serialization, SpindleExceptionsKeepTheirType) {
  EXPECT_THROW(std::rethrow_exception(cross(std::make_exception_ptr(spindle::queue::Empty()))),
               spindle::queue::Empty);
  EXPECT_THROW(std::rethrow_exception(cross(std::make_exception_ptr(spindle::TimeoutError()))),
               spindle::TimeoutError);
  EXPECT_THROW(std::rethrow_exception(cross(std::make_exception_ptr(spindle::EOFError()))),
               spindle::EOFError);
}

TEST(Serialization, SystemErrorKeepsItsCode) {
  try {
    std::rethrow_exception(cross(std::make_exception_ptr(
        std::system_error(ENOENT, std::generic_category(), "open /nowhere"))));
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
    EXPECT_STREQ(e.what(),
                 std::system_error(ENOENT, std::generic_category(), "open /nowhere").what());
  }
}

TEST(Serialization, OtherExceptionsBecomeRemoteErrorWithTypeAndMessage) {
  try {
    std::rethrow_exception(cross(std::make_exception_ptr(CustomFailure("it broke"))));
    FAIL() << "no exception";
  } catch (const spindle::RemoteError& e) {
    EXPECT_STREQ(e.what(), "it broke");
    EXPECT_NE(e.type_name().find("CustomFailure"), std::string::npos) << e.type_name();
  }
}

TEST(Serialization, NonStandardThrownValueBecomesRemoteError) {
  try {
    std::rethrow_exception(cross(std::make_exception_ptr(42)));
    FAIL() << "no exception";
  } catch (const spindle::RemoteError& e) {
    EXPECT_EQ(e.type_name(), "int");
  }
}

namespace {
int triple(int x) {
  return 3 * x;
}
int negate(int x) {
  return -x;
}
}  // namespace

TEST(Serialization, CallTargetNamesTheFunctionNotTheArguments) {
  const detail::Message one = detail::encode_call<true>(triple, 1);
  const detail::Message two = detail::encode_call<true>(triple, 2);
  const detail::Message other = detail::encode_call<true>(negate, 1);
  const std::string_view target = detail::call_target(one.bytes);
  EXPECT_EQ(target.size(), one.bytes.size() - sizeof(int));
  EXPECT_EQ(target, detail::call_target(two.bytes));
  EXPECT_NE(target, detail::call_target(other.bytes));
  // Too short to name a function: the whole message stands for itself.
  const std::string_view truncated = std::string_view(one.bytes).substr(0, 12);
  EXPECT_EQ(detail::call_target(truncated), truncated);
  EXPECT_EQ(detail::call_target(""), "");
}
