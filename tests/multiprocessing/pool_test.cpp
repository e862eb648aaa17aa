// Pool: map, imap, imap_unordered, starmap, apply, the async forms and AsyncResult,
// chunksize, maxtasksperchild, initializer, close/terminate/join (CPython's
// _test_multiprocessing.py _TestPool is the list).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <list>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "spindle/multiprocessing.hpp"
#include "spindle/threading.hpp"

namespace mp = spindle::multiprocessing;
using namespace std::chrono_literals;

namespace {

int square(int x) {
  return x * x;
}
int multiply(int a, int b) {
  return a * b;
}
int get_pid_ignoring(int) {
  return static_cast<int>(::getpid());
}
int fail_on_five(int x) {
  if (x == 5) throw std::domain_error("five");
  return x;
}
int tag = 0;
void set_tag(int value, std::string) {
  tag = value;
}
int get_tag(int) {
  return tag;
}
int five_once_set(mp::Event event) {
  event.wait();
  return 5;
}
int wait_then_return(mp::Connection<int> connection) {
  return connection.recv();
}
void do_nothing(int) {}
int plus_one(int x) {
  return x + 1;
}
bool is_even(int x) {
  return x % 2 == 0;
}
std::string same_size_of_r(const std::string& text) {
  return std::string(text.size(), 'r');
}
int abort_on_minus_two_throw_on_minus_one(int x) {
  if (x == -2) std::abort();
  if (x == -1) throw std::domain_error("minus one");
  return x;
}
struct Point {
  int x;
  double y;
};
struct Scaled {
  double value;
  char tag;
};
Scaled scale(Point point) {
  return {point.x * point.y, point.x % 2 == 0 ? 'e' : 'o'};
}

// Makes a Pool inside a Pool's worker, which is a daemon.
int make_a_pool_inside() {
  mp::Pool inner({.processes = 1});
  return 1;
}

}  // namespace

TEST(Pool, MapReturnsResultsInOrder) {
  mp::Pool pool({.processes = 2});
  std::vector<int> inputs(100);
  std::iota(inputs.begin(), inputs.end(), 0);
  const std::vector<int> results = pool.map(square, inputs);
  ASSERT_EQ(results.size(), 100u);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(results[i], i * i);
  EXPECT_EQ(pool.map(square, std::vector<int>{}), std::vector<int>{});
}

TEST(Pool, MapOfManyElementsStreamsInChunksAndKeepsOrder) {
  mp::Pool pool({.processes = 2});
  std::vector<int> inputs(300000);
  std::iota(inputs.begin(), inputs.end(), 0);
  const std::vector<int> results = pool.map(plus_one, inputs);
  ASSERT_EQ(results.size(), inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i)
    ASSERT_EQ(results[i], inputs[i] + 1) << "element " << i;
  EXPECT_EQ(pool.map_async(plus_one, inputs, 7777).get(), results);
}

TEST(Pool, MapOfBoolResults) {
  mp::Pool pool({.processes = 2});
  std::vector<int> inputs(1001);
  std::iota(inputs.begin(), inputs.end(), 0);
  const std::vector<bool> results = pool.map(is_even, inputs, 100);
  ASSERT_EQ(results.size(), inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i)
    EXPECT_EQ(results[i], i % 2 == 0);
}

TEST(Pool, MapOfLargeElementsAndResults) {
  mp::Pool pool({.processes = 2});
  std::vector<std::string> inputs;
  for (int i = 0; i < 8; ++i)
    inputs.push_back(std::string(std::size_t{200000} + static_cast<std::size_t>(i), 'a'));
  const std::vector<std::string> results = pool.map(same_size_of_r, inputs);
  ASSERT_EQ(results.size(), inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i)
    EXPECT_EQ(results[i], std::string(inputs[i].size(), 'r'));
}

TEST(Pool, MapOfTriviallyCopyableStructsGivesStructs) {
  mp::Pool pool({.processes = 2});
  std::vector<Point> inputs;
  for (int i = 0; i < 50000; ++i)
    inputs.push_back({i, 0.5});
  const std::vector<Scaled> results = pool.map(scale, inputs);
  ASSERT_EQ(results.size(), inputs.size());
  for (int i = 0; i < 50000; ++i) {
    ASSERT_EQ(results[i].value, i * 0.5) << "element " << i;
    ASSERT_EQ(results[i].tag, i % 2 == 0 ? 'e' : 'o') << "element " << i;
  }
}

// map sends the caller's elements without copying them; when it fails, the chunks not yet
// sent must not read them any more (here a chunk read after the change would abort the
// worker and break the pool).
TEST(Pool, AFailedMapNoLongerReadsTheCallersElements) {
  mp::Pool pool({.processes = 1, .on_worker_crash = mp::break_pool});
  constexpr std::size_t chunk = 256 * 1024;  // 1 MiB of ints: more than a socket buffer
  auto inputs = std::make_unique<std::vector<int>>(chunk * 8, 7);
  (*inputs)[0] = -1;
  EXPECT_THROW(pool.map(abort_on_minus_two_throw_on_minus_one, *inputs, chunk), std::domain_error);
  std::fill(inputs->begin(), inputs->end(), -2);
  inputs.reset();
  EXPECT_EQ(pool.map(plus_one, std::vector<int>{1, 2, 3}), (std::vector<int>{2, 3, 4}));
}

// A Pool replaces a crashed worker (its default): the chunk that crashed fails the map, and
// the chunks queued behind it run again on the fresh worker, from the pool's own copy of the
// caller's elements, which may be gone by then.
TEST(Pool, AMapWhoseWorkerCrashesFailsAndThePoolGoesOn) {
  mp::Pool pool({.processes = 1});
  constexpr std::size_t chunk = 256 * 1024;
  auto inputs = std::make_unique<std::vector<int>>(chunk * 6, 7);
  (*inputs)[chunk] = -2;  // the second chunk aborts its worker
  EXPECT_THROW(pool.map(abort_on_minus_two_throw_on_minus_one, *inputs, chunk),
               mp::BrokenProcessPool);
  inputs.reset();
  EXPECT_EQ(pool.map(plus_one, std::vector<int>{1, 2, 3}), (std::vector<int>{2, 3, 4}));
}

TEST(Pool, MapAsyncOfAFailingElementFailsTheResult) {
  mp::Pool pool({.processes = 2});
  std::vector<int> inputs(10);
  std::iota(inputs.begin(), inputs.end(), 0);
  auto result = pool.map_async(fail_on_five, inputs, 2);
  EXPECT_TRUE(result.wait(30s));
  EXPECT_FALSE(result.successful());
  EXPECT_THROW(result.get(), std::domain_error);
}

TEST(Pool, MapAfterCloseIsInvalidArgument) {
  mp::Pool pool({.processes = 1});
  pool.close();
  EXPECT_THROW(pool.map(square, std::vector<int>{1, 2, 3}), std::invalid_argument);
  EXPECT_THROW(pool.map_async(square, std::vector<int>{1, 2, 3}), std::invalid_argument);
  pool.join();
}

TEST(Pool, MapWithChunksizeAndNonContiguousInput) {
  mp::Pool pool({.processes = 2});
  const std::list<int> inputs{1, 2, 3, 4, 5, 6, 7};
  EXPECT_EQ(pool.map(square, inputs, 3), (std::vector<int>{1, 4, 9, 16, 25, 36, 49}));
  EXPECT_THROW(pool.map(square, inputs, 0), std::invalid_argument);
}

TEST(Pool, MapOfAVoidFunctionGivesMonostates) {
  mp::Pool pool({.processes = 1});
  EXPECT_EQ(pool.map(do_nothing, std::vector<int>{1, 2}).size(), 2u);
}

TEST(Pool, MapWithLambda) {
  mp::Pool pool({.processes = 2});
  EXPECT_EQ(pool.map([](const std::string& s) { return s.size(); },
                     std::vector<std::string>{"a", "bb", "ccc"}),
            (std::vector<std::size_t>{1, 2, 3}));
}

TEST(Pool, MapRethrowsTheElementsException) {
  mp::Pool pool({.processes = 2});
  std::vector<int> inputs(10);
  std::iota(inputs.begin(), inputs.end(), 0);
  EXPECT_THROW(pool.map(fail_on_five, inputs), std::domain_error);
  EXPECT_EQ(pool.apply(square, 3), 9);  // the pool still works
}

TEST(Pool, StarmapUnpacksTuples) {
  mp::Pool pool({.processes = 2});
  const std::vector<std::tuple<int, int>> pairs{{1, 2}, {3, 4}, {5, 6}};
  EXPECT_EQ(pool.starmap(multiply, pairs), (std::vector<int>{2, 12, 30}));
  EXPECT_EQ(pool.starmap_async(multiply, pairs).get(), (std::vector<int>{2, 12, 30}));
}

TEST(Pool, ImapIsInOrderAndImapUnorderedHasEveryResult) {
  mp::Pool pool({.processes = 2});
  std::vector<int> inputs(50);
  std::iota(inputs.begin(), inputs.end(), 0);
  std::vector<int> ordered;
  for (int value : pool.imap(square, inputs))
    ordered.push_back(value);
  std::vector<int> expected;
  for (int i : inputs)
    expected.push_back(i * i);
  EXPECT_EQ(ordered, expected);
  std::multiset<int> unordered;
  for (int value : pool.imap_unordered(square, inputs, 7))
    unordered.insert(value);
  EXPECT_EQ(unordered, std::multiset<int>(expected.begin(), expected.end()));
  auto results = pool.imap(square, std::vector<int>{4});
  EXPECT_EQ(results.next(), 16);
  EXPECT_THROW(results.next(), std::out_of_range);
}

// IMapIterator.next(timeout): a result not in by then is TimeoutError, and the iteration
// goes on.
TEST(Pool, ImapNextWithATimeoutTimesOutAndTheIterationGoesOn) {
  mp::Pool pool({.processes = 2});
  for (const bool ordered : {true, false}) {
    SCOPED_TRACE(ordered ? "imap" : "imap_unordered");
    mp::Event go;
    const std::vector<mp::Event> inputs{go};
    auto results =
        ordered ? pool.imap(five_once_set, inputs) : pool.imap_unordered(five_once_set, inputs);
    EXPECT_THROW(results.next(20ms), spindle::TimeoutError);
    EXPECT_THROW(results.next(0ms), spindle::TimeoutError);
    EXPECT_THROW(results.next(-1ms), std::invalid_argument);
    go.set();
    EXPECT_EQ(results.next(30s), 5);
    EXPECT_THROW(results.next(30s), std::out_of_range);
  }
}

TEST(Pool, ApplyAndApplyAsync) {
  mp::Pool pool({.processes = 2});
  EXPECT_EQ(pool.apply(multiply, 6, 7), 42);
  auto result = pool.apply_async(square, 8);
  result.wait();
  EXPECT_TRUE(result.ready());
  EXPECT_TRUE(result.successful());
  EXPECT_EQ(result.get(), 64);
  auto failed = pool.apply_async(fail_on_five, 5);
  EXPECT_TRUE(failed.wait(30s));
  EXPECT_FALSE(failed.successful());
  EXPECT_THROW(failed.get(), std::domain_error);
}

TEST(Pool, AsyncResultTimeoutsAndNotReady) {
  mp::Pool pool({.processes = 1});
  auto [keep, other] = mp::Pipe<int>();
  auto result = pool.apply_async(wait_then_return, std::move(other));
  EXPECT_FALSE(result.ready());
  EXPECT_THROW(result.successful(), std::invalid_argument);
  EXPECT_FALSE(result.wait(20ms));
  EXPECT_THROW(result.get(20ms), spindle::TimeoutError);
  keep.send(11);
  EXPECT_EQ(result.get(30s), 11);
}

TEST(Pool, MapAsync) {
  mp::Pool pool({.processes = 2});
  auto result = pool.map_async(square, std::vector<int>{1, 2, 3});
  EXPECT_EQ(result.get(30s), (std::vector<int>{1, 4, 9}));
}

TEST(Pool, InitializerWithArguments) {
  mp::Pool pool({.processes = 2, .initializer = {set_tag, 5, "five"}});
  EXPECT_EQ(pool.map(get_tag, std::vector<int>{0, 0, 0, 0}), (std::vector<int>{5, 5, 5, 5}));
}

TEST(Pool, MaxtasksperchildReplacesWorkers) {
  mp::Pool pool({.processes = 1, .maxtasksperchild = 1});
  const std::vector<int> pids = pool.map(get_pid_ignoring, std::vector<int>{1, 2, 3}, 1);
  EXPECT_EQ(std::set<int>(pids.begin(), pids.end()).size(), 3u);
}

TEST(Pool, CloseThenJoinWaitsForTheTasks) {
  mp::Pool pool({.processes = 2});
  auto result = pool.map_async(square, std::vector<int>{1, 2, 3});
  EXPECT_THROW(pool.join(), std::invalid_argument);  // still running
  pool.close();
  EXPECT_THROW(pool.apply(square, 1), std::invalid_argument);
  pool.join();
  EXPECT_EQ(result.get(), (std::vector<int>{1, 4, 9}));
}

TEST(Pool, TerminateFailsUnfinishedResults) {
  mp::Pool pool({.processes = 1});
  auto [keep, other] = mp::Pipe<int>();
  auto result = pool.apply_async(wait_then_return, std::move(other));
  pool.terminate();
  EXPECT_THROW(result.get(30s), mp::BrokenProcessPool);
  pool.join();
}

TEST(Pool, InvalidOptions) {
  EXPECT_THROW(mp::Pool({.processes = 0}), std::invalid_argument);
  EXPECT_THROW(mp::Pool({.maxtasksperchild = 0}), std::invalid_argument);
}

TEST(Pool, NegativeCountsAreInvalidArgumentNotHugeOnes) {
  try {
    mp::Pool pool({.processes = -1});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "Number of processes must be at least 1");
  }
  EXPECT_THROW(mp::Pool({.maxtasksperchild = -1}), std::invalid_argument);
  mp::Pool pool({.processes = 1});
  const std::vector<int> inputs{1, 2, 3};
  EXPECT_THROW(pool.map(square, inputs, -1), std::invalid_argument);
  EXPECT_THROW(pool.map_async(square, inputs, -1), std::invalid_argument);
  EXPECT_THROW(pool.imap(square, inputs, -1), std::invalid_argument);
  EXPECT_EQ(pool.map(square, inputs), (std::vector<int>{1, 4, 9}));
}

// A close() from another thread while calls are being submitted: every refusal is Pool's own
// (std::invalid_argument, "Pool not running"), also when close() comes between the pool's
// check of its state and the hand-over of the call. That window is narrow: rounds make
// hitting it likely, not certain.
TEST(Pool, CloseWhileAnotherThreadSubmitsIsAlwaysPoolNotRunning) {
  for (int round = 0; round < 20; ++round) {
    mp::Pool pool({.processes = 1});
    std::atomic<bool> submitting{false};
    std::exception_ptr refusal;
    std::thread submitter([&] {
      try {
        for (;;) {
          pool.apply_async(square, 2);
          submitting.store(true, std::memory_order_release);
        }
      } catch (...) {
        refusal = std::current_exception();
      }
    });
    while (!submitting.load(std::memory_order_acquire)) {
      std::this_thread::yield();
    }
    pool.close();
    submitter.join();
    pool.join();  // every call submitted runs
    try {
      std::rethrow_exception(refusal);
    } catch (const std::invalid_argument& e) {
      EXPECT_STREQ(e.what(), "Pool not running");
    } catch (const std::exception& e) {
      FAIL() << "round " << round << ": " << e.what();
    }
  }
}

// The last reference to a Pool dropped in a done callback: its destructor (terminate) runs on
// the collector thread, which cannot wait for itself. It does not wait; the calls left fail
// as terminate() makes them.
TEST(Pool, DestroyedInItsOwnDoneCallbackItDoesNotWaitForItself) {
  auto pool = std::make_shared<mp::Pool>(mp::PoolOptions{.processes = 1});
  auto [teller, told] = mp::Pipe<int>();
  auto [unused, never_told] = mp::Pipe<int>();
  auto first = pool->apply_async(wait_then_return, std::move(told));
  auto second = pool->apply_async(wait_then_return, std::move(never_told));
  spindle::threading::Event destroyed;
  auto future = first.future();
  future.add_done_callback([pool, &destroyed](const spindle::futures::Future<int>&) mutable {
    pool.reset();
    destroyed.set();
  });
  pool.reset();  // the callback holds the last reference
  teller.send(1);
  ASSERT_TRUE(destroyed.wait(30s));
  EXPECT_EQ(first.get(), 1);
  EXPECT_THROW(second.get(30s), mp::BrokenProcessPool);
}

// A done callback waits in map() (collecting on the collector thread) while a later
// callback, run during that wait, destroys the Pool: the map fails as terminate() makes it,
// and touches nothing of the destroyed Pool on its way out.
TEST(Pool, DestroyedByACallbackWhileAnotherCallbackWaitsInItsMap) {
  auto pool = std::make_shared<mp::Pool>(mp::PoolOptions{.processes = 2});
  auto [teller, told] = mp::Pipe<int>();
  // Not a structured binding: the callback captures it (clang 14 cannot).
  auto second_pipe = mp::Pipe<int>();
  auto& second_teller = second_pipe.first;
  auto first = pool->apply_async(wait_then_return, std::move(told));
  auto second = pool->apply_async(wait_then_return, std::move(second_pipe.second));
  mp::Pool* const waiting_in = pool.get();
  std::string outcome;
  spindle::threading::Event called;
  auto first_future = first.future();
  first_future.add_done_callback([&](const spindle::futures::Future<int>&) {
    mp::Event never;
    try {
      second_teller.send(2);  // second's callback runs while this one waits below
      waiting_in->map(five_once_set, std::vector<mp::Event>{never});
      outcome = "the map returned";
    } catch (const mp::BrokenProcessPool&) {
      outcome = "BrokenProcessPool";
    } catch (const std::exception& error) {
      outcome = error.what();
    }
    called.set();
  });
  auto second_future = second.future();
  second_future.add_done_callback(
      [pool](const spindle::futures::Future<int>&) mutable { pool.reset(); });
  pool.reset();  // the second callback holds the last reference
  teller.send(1);
  ASSERT_TRUE(called.wait(30s));
  EXPECT_EQ(outcome, "BrokenProcessPool");
  EXPECT_EQ(first.get(), 1);
  EXPECT_EQ(second.get(), 2);
}

// Results are delivered on the collector thread, which runs the done callbacks: a callback
// waiting there for another result of the same pool goes on collecting meanwhile (Python's
// would wait for ever). join(), which would wait for that thread itself, is refused.
TEST(Pool, ADoneCallbackMayWaitForResultsOfTheSamePool) {
  mp::Pool pool({.processes = 2});
  auto [teller, told] = mp::Pipe<int>();
  // Not a structured binding: the callback captures it (clang 14 cannot).
  auto other_pipe = mp::Pipe<int>();
  auto& other_teller = other_pipe.first;
  auto& other_told = other_pipe.second;
  auto first = pool.apply_async(wait_then_return, std::move(told));
  auto other = pool.apply_async(wait_then_return, std::move(other_told));
  std::vector<int> seen;
  std::exception_ptr error;
  std::string join_refused;
  spindle::threading::Event called;
  auto future = first.future();
  future.add_done_callback([&](const spindle::futures::Future<int>&) {
    try {
      other_teller.send(2);  // other finishes only now, while this callback waits for it
      other.wait();
      seen.push_back(other.get());
      seen.push_back(pool.apply(square, 3));
      for (int x : pool.map(square, std::vector<int>{4, 5}))
        seen.push_back(x);
      auto ordered = pool.imap(square, std::vector<int>{6, 7});
      seen.push_back(ordered.next());
      seen.push_back(ordered.next());
      auto unordered = pool.imap_unordered(square, std::vector<int>{8});
      seen.push_back(unordered.next());
      mp::Event go;
      auto later = pool.imap_unordered(five_once_set, std::vector<mp::Event>{go});
      try {
        later.next(10ms);
      } catch (const spindle::TimeoutError&) {
        seen.push_back(-1);
      }
      go.set();
      seen.push_back(later.next());
      pool.close();
    } catch (...) {
      error = std::current_exception();
    }
    try {
      pool.join();
    } catch (const std::logic_error& refusal) {
      join_refused = refusal.what();
    }
    called.set();
  });
  teller.send(1);
  ASSERT_TRUE(called.wait(30s));
  if (error) std::rethrow_exception(error);
  EXPECT_EQ(seen, (std::vector<int>{2, 9, 16, 25, 36, 49, 64, -1, 5}));
  EXPECT_NE(join_refused.find("done callback"), std::string::npos) << join_refused;
  EXPECT_EQ(first.get(), 1);
  pool.join();
}

TEST(Pool, ItsWorkersAreDaemonsWhichMayNotStartAPoolOfTheirOwn) {
  mp::Pool pool({.processes = 1});
  try {
    pool.apply(make_a_pool_inside);
    ADD_FAILURE() << "no exception";
  } catch (const std::logic_error& error) {
    EXPECT_STREQ(error.what(), "daemonic processes are not allowed to have children");
  }
}
