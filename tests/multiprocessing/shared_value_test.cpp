// Value and Array in shared memory.
#include <gtest/gtest.h>

#include <mutex>
#include <numeric>

#include "shared_test_support.hpp"

namespace mp = spindle::multiprocessing;
using spindle_test::fork_child;
using spindle_test::wait_child;

namespace {

TEST(SharedValue, IncrementsUnderItsLockFromSeveralProcessesGiveTheExactTotal) {
  mp::Value<long> counter(0);
  constexpr int kChildren = 4;
  constexpr long kIncrements = 20000;
  pid_t children[kChildren];
  for (auto& child : children) {
    child = fork_child([&] {
      for (long i = 0; i < kIncrements; ++i) {
        std::scoped_lock guard(counter.get_lock());
        ++counter.value();
      }
      return true;
    });
  }
  for (long i = 0; i < kIncrements; ++i) {
    std::scoped_lock guard(counter);
    ++counter.value();
  }
  for (const pid_t child : children)
    EXPECT_EQ(wait_child(child), 0);
  EXPECT_EQ(counter.value(), (kChildren + 1) * kIncrements);
}

TEST(SharedValue, StartsWithItsInitialValueOrZero) {
  mp::Value<double> pi(3.25);
  mp::Value<int> zero;
  EXPECT_EQ(pi.value(), 3.25);
  EXPECT_EQ(zero.value(), 0);
}

struct Point {
  int x;
  int y;
};

TEST(SharedValue, HoldsTriviallyCopyableStructsAndCrossesAsAHandle) {
  mp::Value<Point> point(Point{1, 2});
  mp::Value<Point> loaded;
  spindle_test::load_handle(spindle_test::save_handle(point), loaded);
  EXPECT_EQ(&loaded.value(), &point.value());  // one mapping per process
  const pid_t child = fork_child([&] {
    loaded.value().y = 20;
    return loaded.value().x == 1;
  });
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_EQ(point.value().y, 20);
}

TEST(SharedArray, IncrementsUnderGetLockFromSeveralProcessesGiveTheExactTotals) {
  mp::Array<int> counts(8);
  constexpr int kChildren = 3;
  constexpr int kRounds = 5000;
  pid_t children[kChildren];
  for (auto& child : children) {
    child = fork_child([&] {
      for (int round = 0; round < kRounds; ++round) {
        std::scoped_lock guard(counts.get_lock());
        for (int& count : counts.span())
          ++count;
      }
      return true;
    });
  }
  for (const pid_t child : children)
    EXPECT_EQ(wait_child(child), 0);
  for (std::size_t i = 0; i < counts.size(); ++i)
    EXPECT_EQ(counts[i], kChildren * kRounds) << i;
}

TEST(SharedArray, MadeFromValuesOrALength) {
  mp::Array<double> values{1.5, 2.5, 3.0};
  EXPECT_EQ(values.size(), 3u);
  EXPECT_EQ(std::accumulate(values.begin(), values.end(), 0.0), 7.0);
  const std::vector<int> source{4, 5, 6, 7};
  mp::Array<int> copied(source);
  EXPECT_EQ(std::vector<int>(copied.begin(), copied.end()), source);
  mp::Array<long> zeros(5);
  for (long element : zeros.span())
    EXPECT_EQ(element, 0);
  mp::Array<char> empty(std::size_t{0});
  EXPECT_EQ(empty.size(), 0u);
}

TEST(SharedArray, ANegativeOrHugeLengthIsInvalidArgumentNotAWildWrite) {
  EXPECT_THROW(mp::Array<int>(static_cast<std::size_t>(-1)), std::invalid_argument);
  EXPECT_THROW(mp::Array<double>(std::size_t{1} << 62), std::invalid_argument);
}

TEST(SharedHandles, AMovedFromHandleThrowsLogicErrorNotACrash) {
  mp::Value<int> value(1);
  mp::Value<int> moved(std::move(value));
  EXPECT_THROW(value.value(), std::logic_error);
  mp::Lock lock;
  mp::Lock other(std::move(lock));
  EXPECT_THROW(lock.acquire(), std::logic_error);
  mp::Event event;
  mp::Event kept(std::move(event));
  EXPECT_THROW(event.set(), std::logic_error);
  EXPECT_EQ(moved.value(), 1);
}

TEST(SharedArray, ItsLockCrossesOnItsOwnAndIsTheSameLock) {
  mp::Array<int> array(2);
  mp::RLock lock;
  spindle_test::load_handle(spindle_test::save_handle(array.get_lock()), lock);
  std::scoped_lock guard(array);
  const pid_t child = fork_child([&] { return !lock.try_lock(); });
  EXPECT_EQ(wait_child(child), 0);
}

}  // namespace
