// Queue, JoinableQueue and SimpleQueue across processes.
#include <gtest/gtest.h>

#include <cereal/types/string.hpp>
#include <chrono>
#include <cstdlib>
#include <numeric>
#include <thread>

#include "shared_test_support.hpp"

namespace mp = spindle::multiprocessing;
namespace queue = spindle::queue;
using namespace std::chrono_literals;
using spindle_test::fork_child;
using spindle_test::wait_child;

namespace {

// A user type that crosses through its cereal serialize().
struct Order {
  std::string customer;
  std::vector<int> quantities;
  std::optional<double> discount;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(customer, quantities, discount);
  }
  bool operator==(const Order&) const = default;
};

// A trivially copyable type: crosses as its bytes.
struct Sample {
  int id;
  double value;
  char tag[8];
};

TEST(SharedQueue, StringsPutInAChildArriveInOrder) {
  mp::Queue<std::string> queue;
  const pid_t child = fork_child([&] {
    for (int i = 0; i < 1000; ++i)
      queue.put("item " + std::to_string(i));
    return true;
  });
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(queue.get(30s), "item " + std::to_string(i));
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_TRUE(queue.empty());
}

TEST(SharedQueue, VectorsUserTypesAndTriviallyCopyableStructsRoundTrip) {
  mp::Queue<std::vector<double>> vectors;
  mp::Queue<Order> orders;
  mp::Queue<Sample> samples;
  mp::Queue<std::map<std::string, int>> maps;
  const Order order{"ada", {1, 2, 3}, 0.25};
  const pid_t child = fork_child([&] {
    const auto vector = vectors.get(30s);
    const auto got = orders.get(30s);
    const auto sample = samples.get(30s);
    auto map = maps.get(30s);
    map["echo"] = 1;
    maps.put(map);
    orders.put(Order{got.customer + "!", got.quantities, std::nullopt});
    return vector == std::vector<double>{0.5, 1.5} && got == order && sample.id == 7 &&
           sample.value == 2.5 && std::string(sample.tag) == "tag";
  });
  vectors.put({0.5, 1.5});
  orders.put(order);
  samples.put(Sample{7, 2.5, "tag"});
  maps.put({{"a", 1}});
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_EQ(maps.get(30s), (std::map<std::string, int>{{"a", 1}, {"echo", 1}}));
  EXPECT_EQ(orders.get(30s), (Order{"ada!", {1, 2, 3}, std::nullopt}));
}

TEST(SharedQueue, MessagesLargerThanTheRingGetThroughInChunks) {
  mp::Queue<std::vector<std::int32_t>> queue(0, {.buffer_bytes = 64 * 1024});
  std::vector<std::int32_t> big(3 * 1024 * 1024 / 4);  // 3 MiB
  std::iota(big.begin(), big.end(), 0);
  const pid_t child = fork_child([&] {
    for (int i = 0; i < 3; ++i) {
      auto message = queue.get(30s);
      if (message != big) return false;
      message.push_back(i);
      queue.put(message);
    }
    return true;
  });
  for (int i = 0; i < 3; ++i) {
    queue.put(big);
    // The child takes the message, then puts it back: wait for its answer before the next.
    auto back = queue.get(30s);
    ASSERT_EQ(back.size(), big.size() + 1);
    EXPECT_EQ(back.back(), i);
    back.pop_back();
    EXPECT_EQ(back, big);
  }
  EXPECT_EQ(wait_child(child), 0);
}

TEST(SharedQueue, SmallMessagesWrapAroundTheRing) {
  mp::Queue<std::string> queue(0, {.buffer_bytes = 100});
  const pid_t child = fork_child([&] {
    for (int i = 0; i < 500; ++i)
      queue.put(std::string(static_cast<std::size_t>(i % 37), static_cast<char>('a' + i % 26)));
    return true;
  });
  for (int i = 0; i < 500; ++i) {
    ASSERT_EQ(queue.get(30s),
              std::string(static_cast<std::size_t>(i % 37), static_cast<char>('a' + i % 26)));
  }
  EXPECT_EQ(wait_child(child), 0);
}

TEST(SharedQueue, EmptyAndFullAfterTheirTimeouts) {
  mp::Queue<int> queue(2);
  EXPECT_THROW(queue.get_nowait(), queue::Empty);
  EXPECT_THROW(queue.get(5ms), queue::Empty);
  queue.put(1);
  queue.put_nowait(2);
  EXPECT_TRUE(queue.full());
  EXPECT_EQ(queue.qsize(), 2u);
  EXPECT_THROW(queue.put_nowait(3), queue::Full);
  EXPECT_THROW(queue.put(3, 5ms), queue::Full);
  EXPECT_EQ(queue.get(), 1);
  EXPECT_EQ(queue.get(), 2);
  EXPECT_THROW(queue.put(1, -1s), std::invalid_argument);
  EXPECT_EQ(queue.maxsize(), 2u);
  EXPECT_EQ(queue.buffer_bytes(), mp::QueueOptions{}.buffer_bytes);
  EXPECT_THROW(mp::Queue<int>(0, {.buffer_bytes = 10}), std::invalid_argument);
}

TEST(SharedQueue, AFullRingIsFullUntilARreaderMakesRoom) {
  mp::Queue<std::string> queue(0, {.buffer_bytes = 64});
  queue.put(std::string(40, 'x'));
  EXPECT_THROW(queue.put_nowait(std::string(40, 'y')), queue::Full);
  const pid_t child = fork_child([&] { return queue.get(30s) == std::string(40, 'x'); });
  queue.put(std::string(40, 'y'), 30s);
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_EQ(queue.get(), std::string(40, 'y'));
}

TEST(SharedQueue, MaxsizeBlocksAPutterUntilAnotherProcessGets) {
  mp::Queue<int> queue(1);
  queue.put(1);
  mp::Event trying;
  const pid_t child = fork_child([&] {
    trying.set();
    queue.put(2);  // blocks until the parent gets
    return true;
  });
  ASSERT_TRUE(trying.wait(30s));
  EXPECT_EQ(queue.get(30s), 1);
  EXPECT_EQ(queue.get(30s), 2);
  EXPECT_EQ(wait_child(child), 0);
}

TEST(SharedQueue, ManyProducersAndConsumersMoveEveryItemOnce) {
  mp::Queue<long> queue(0, {.buffer_bytes = 4096});
  mp::Value<long> sum(0);
  mp::Value<long> count(0);
  constexpr long kPerProducer = 20000;
  pid_t producers[2];
  pid_t consumers[2];
  for (int p = 0; p < 2; ++p) {
    producers[p] = fork_child([&, p] {
      for (long i = 1; i <= kPerProducer; ++i)
        queue.put(i + p * kPerProducer);
      return true;
    });
  }
  for (auto& consumer : consumers) {
    consumer = fork_child([&] {
      for (;;) {
        const long item = queue.get(30s);
        if (item < 0) return true;
        std::scoped_lock guard(sum);
        sum.value() += item;
        ++count.value();
      }
    });
  }
  for (const pid_t producer : producers)
    EXPECT_EQ(wait_child(producer), 0);
  queue.put(-1);
  queue.put(-1);
  for (const pid_t consumer : consumers)
    EXPECT_EQ(wait_child(consumer), 0);
  const long n = 2 * kPerProducer;
  EXPECT_EQ(count.value(), n);
  EXPECT_EQ(sum.value(), n * (n + 1) / 2);
}

TEST(SharedQueue, ShutdownWakesAGetterInAnotherProcess) {
  mp::Queue<int> queue;
  mp::Event waiting;
  const pid_t child = fork_child([&] {
    waiting.set();
    try {
      queue.get();
    } catch (const queue::ShutDown&) {
      return true;
    }
    return false;
  });
  ASSERT_TRUE(waiting.wait(30s));
  queue.shutdown();
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_TRUE(queue.is_shutdown());
  EXPECT_THROW(queue.put(1), queue::ShutDown);
}

TEST(SharedQueue, ShutdownLetsGettersDrainFirst) {
  mp::Queue<int> queue;
  queue.put(1);
  queue.put(2);
  queue.shutdown();
  const pid_t child = fork_child([&] {
    const bool drained = queue.get() == 1 && queue.get() == 2;
    try {
      queue.get();
    } catch (const queue::ShutDown&) {
      return drained;
    }
    return false;
  });
  EXPECT_EQ(wait_child(child), 0);
}

TEST(SharedJoinableQueue, JoinWaitsUntilAnotherProcessMarksEveryItemDone) {
  mp::JoinableQueue<int> queue;
  for (int i = 0; i < 10; ++i)
    queue.put(i);
  const pid_t child = fork_child([&] {
    for (int i = 0; i < 10; ++i) {
      if (queue.get(30s) != i) return false;
      queue.task_done();
    }
    return true;
  });
  queue.join();
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_THROW(queue.task_done(), std::invalid_argument);
}

TEST(SharedJoinableQueue, ImmediateShutdownDropsItemsAndReleasesJoin) {
  mp::JoinableQueue<std::string> queue;
  queue.put("a");
  queue.put("b");
  const pid_t child = fork_child([&] {
    queue.join();
    return true;
  });
  queue.shutdown(true);
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_EQ(queue.qsize(), 0u);
  EXPECT_THROW(queue.get(), queue::ShutDown);
}

TEST(SharedSimpleQueue, PutInOneProcessGetInAnother) {
  mp::SimpleQueue<std::string> to_parent;
  mp::SimpleQueue<std::string> to_child;
  EXPECT_TRUE(to_parent.empty());
  const pid_t child = fork_child([&] {
    to_parent.put("from child");
    return to_child.get() == "from parent";
  });
  EXPECT_EQ(to_parent.get(), "from child");
  to_child.put("from parent");
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_TRUE(to_child.empty());
}

TEST(SharedQueue, ClosedHandleIsInvalidArgumentOthersGoOn) {
  mp::Queue<int> queue;
  mp::Queue<int> other = queue;
  queue.close();
  EXPECT_THROW(queue.put(1), std::invalid_argument);
  other.put(1);
  EXPECT_EQ(other.get(), 1);
}

TEST(SharedQueue, AWriterDyingMidMessageBreaksTheQueueInsteadOfHanging) {
  mp::Queue<std::string> queue(0, {.buffer_bytes = 4096});
  const pid_t child = fork_child([&] {
    queue.put(std::string(100000, 'x'));  // blocks after the first chunk: nobody reads
    return true;
  });
  // Counted as being put, and asleep: it has written the first chunk and waits for room.
  // (Killed earlier, it would have written nothing, and nothing would be broken.)
  while (queue.qsize() == 0 || !spindle_test::asleep(child))
    std::this_thread::yield();
  ::kill(child, SIGKILL);
  EXPECT_EQ(wait_child(child), 128 + SIGKILL);
  EXPECT_THROW(
      {
        try {
          queue.get(30s);
        } catch (const spindle::Error& error) {
          EXPECT_NE(std::string(error.what()).find("broken"), std::string::npos) << error.what();
          throw;
        }
      },
      spindle::Error);
  EXPECT_THROW(queue.put("more"), spindle::Error);
}

// A spawned process (a fresh image of this test binary, no inherited mapping) attaches to the
// queues by the names in their handles.
TEST(SharedQueue, ASpawnedProcessAttachesByName) {
  mp::Queue<std::string> requests;
  mp::Queue<std::string> replies;
  const pid_t child = spindle_test::spawn_self_test(
      "SpawnedChild.DISABLED_EchoesQueueItems", "SPINDLE_TEST_QUEUES",
      spindle_test::to_hex(spindle_test::save_handle(requests)) + ":" +
          spindle_test::to_hex(spindle_test::save_handle(replies)));
  ASSERT_GT(child, 0);
  requests.put("ping");
  requests.put(std::string(2 * 1024 * 1024, 'z'));
  requests.put("stop");
  EXPECT_EQ(replies.get(60s), "echo ping");
  EXPECT_EQ(replies.get(60s), "echo " + std::string(2 * 1024 * 1024, 'z'));
  EXPECT_EQ(wait_child(child), 0);
}

TEST(SpawnedChild, DISABLED_EchoesQueueItems) {
  const char* handles = std::getenv("SPINDLE_TEST_QUEUES");
  ASSERT_NE(handles, nullptr);
  const std::string both(handles);
  const auto colon = both.find(':');
  mp::Queue<std::string> requests;
  mp::Queue<std::string> replies;
  spindle_test::load_handle(spindle_test::from_hex(both.substr(0, colon).c_str()), requests);
  spindle_test::load_handle(spindle_test::from_hex(both.substr(colon + 1).c_str()), replies);
  for (;;) {
    const std::string request = requests.get(60s);
    if (request == "stop") break;
    replies.put("echo " + request);
  }
}

}  // namespace
