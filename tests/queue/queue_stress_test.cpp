// spindle::queue under load: many producers and consumers pass a large number of distinct
// items through small queues; every item must arrive exactly once.
//
// Sanitized builds run a quarter of the items (SPINDLE_QUEUE_TEST_SANITIZED); every other build
// runs the full count.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "queue_test_support.hpp"
#include "spindle/queue.hpp"

namespace {

using queue_test::Threads;
using spindle::queue::Empty;
using spindle::queue::Full;
using spindle::queue::LifoQueue;
using spindle::queue::PriorityQueue;
using spindle::queue::Queue;
using spindle::queue::ShutDown;

#if SPINDLE_QUEUE_TEST_SANITIZED
constexpr std::size_t kScaleDown = 4;
#else
constexpr std::size_t kScaleDown = 1;
#endif

// How often each item arrived, and how the run went.
struct Delivery {
  std::vector<std::atomic<std::uint8_t>> seen;
  std::atomic<std::size_t> out_of_order{0};  // FIFO only: a producer's items overtaking
  std::atomic<std::size_t> received{0};

  explicit Delivery(std::size_t items) : seen(items) {}

  // Items never seen, and items seen more than once.
  std::size_t missing() const {
    std::size_t count = 0;
    for (const auto& times : seen)
      count += times.load() == 0 ? 1 : 0;
    return count;
  }
  std::size_t duplicated() const {
    std::size_t count = 0;
    for (const auto& times : seen)
      count += times.load() > 1 ? 1 : 0;
    return count;
  }
};

// Producer p puts the items [p * per_producer, (p + 1) * per_producer) in increasing order;
// consumers mark each item seen and task_done() it. Once the producers are done, join() must
// find every item received; a non-immediate shutdown then ends the consumers. With
// `check_fifo`, each consumer also checks it gets each producer's items in increasing order,
// which a single FIFO line guarantees.
template <class Q>
void pass_items(Q& queue, std::size_t producers, std::size_t consumers, std::size_t items,
                Delivery& delivery, bool check_fifo) {
  const std::size_t per_producer = items / producers;
  ASSERT_EQ(per_producer * producers, items);
  std::vector<int> consumer_saw_shutdown(consumers, 0);

  Threads consumer_threads;
  consumer_threads.start_n(consumers, [&](std::size_t index) {
    std::vector<long> last(producers, -1);
    try {
      for (;;) {
        const std::size_t item = static_cast<std::size_t>(queue.get());
        delivery.seen[item].fetch_add(1, std::memory_order_relaxed);
        if (check_fifo) {
          const std::size_t producer = item / per_producer;
          if (static_cast<long>(item) <= last[producer]) delivery.out_of_order.fetch_add(1);
          last[producer] = static_cast<long>(item);
        }
        delivery.received.fetch_add(1, std::memory_order_relaxed);
        queue.task_done();
      }
    } catch (const ShutDown&) {
      consumer_saw_shutdown[index] = 1;
    }
  });
  Threads producer_threads;
  producer_threads.start_n(producers, [&](std::size_t index) {
    const std::size_t first = index * per_producer;
    for (std::size_t item = first; item < first + per_producer; ++item) {
      queue.put(static_cast<int>(item));
    }
  });
  producer_threads.join();
  queue.join();
  EXPECT_EQ(delivery.received.load(), items) << "join() returned before every item was done";
  queue.shutdown();
  consumer_threads.join();
  for (int saw : consumer_saw_shutdown)
    EXPECT_EQ(saw, 1);
  EXPECT_TRUE(queue.empty());
}

TEST(QueueStress, EightProducersAndEightConsumersDeliverAMillionItemsOnce) {
  constexpr std::size_t kItems = 1'000'000 / kScaleDown;
  Queue<int> queue(64);
  Delivery delivery(kItems);
  pass_items(queue, 8, 8, kItems, delivery, /*check_fifo=*/true);
  EXPECT_EQ(delivery.missing(), 0u);
  EXPECT_EQ(delivery.duplicated(), 0u);
  EXPECT_EQ(delivery.out_of_order.load(), 0u);
}

TEST(LifoQueueStress, FourProducersAndFourConsumersDeliverEveryItemOnce) {
  constexpr std::size_t kItems = 200'000 / kScaleDown;
  LifoQueue<int> queue(16);
  Delivery delivery(kItems);
  pass_items(queue, 4, 4, kItems, delivery, /*check_fifo=*/false);
  EXPECT_EQ(delivery.missing(), 0u);
  EXPECT_EQ(delivery.duplicated(), 0u);
}

TEST(PriorityQueueStress, FourProducersAndFourConsumersDeliverEveryItemOnce) {
  constexpr std::size_t kItems = 200'000 / kScaleDown;
  PriorityQueue<int> queue(16);
  Delivery delivery(kItems);
  pass_items(queue, 4, 4, kItems, delivery, /*check_fifo=*/false);
  EXPECT_EQ(delivery.missing(), 0u);
  EXPECT_EQ(delivery.duplicated(), 0u);
}

// Unique owners travel between threads: none is lost, duplicated or leaked (the address
// sanitizer build checks the last).
TEST(QueueStress, MoveOnlyItemsDeliverEveryItemOnce) {
  constexpr std::size_t kProducers = 4;
  constexpr std::size_t kConsumers = 4;
  constexpr std::size_t kItems = 200'000 / kScaleDown;
  constexpr std::size_t kPerProducer = kItems / kProducers;
  Queue<std::unique_ptr<std::size_t>> queue(32);
  Delivery delivery(kItems);
  Threads consumers;
  consumers.start_n(kConsumers, [&](std::size_t) {
    try {
      for (;;) {
        const std::unique_ptr<std::size_t> item = queue.get();
        delivery.seen[*item].fetch_add(1, std::memory_order_relaxed);
      }
    } catch (const ShutDown&) {
    }
  });
  Threads producers;
  producers.start_n(kProducers, [&](std::size_t index) {
    for (std::size_t item = index * kPerProducer; item < (index + 1) * kPerProducer; ++item) {
      queue.put(std::make_unique<std::size_t>(item));
    }
  });
  producers.join();
  queue.shutdown();  // consumers drain what is left, then stop
  consumers.join();
  EXPECT_EQ(delivery.missing(), 0u);
  EXPECT_EQ(delivery.duplicated(), 0u);
}

// Producers and consumers that only ever wait with short timeouts, retrying on Full and
// Empty: timed-out waits must not lose a wake-up or an item.
TEST(QueueStress, TimedPutsAndGetsDeliverEveryItemOnce) {
  constexpr std::size_t kProducers = 4;
  constexpr std::size_t kConsumers = 4;
  constexpr std::size_t kItems = 200'000 / kScaleDown;
  constexpr std::size_t kPerProducer = kItems / kProducers;
  Queue<int> queue(8);
  Delivery delivery(kItems);
  Threads consumers;
  consumers.start_n(kConsumers, [&](std::size_t) {
    for (;;) {
      try {
        const int item = queue.get(std::chrono::microseconds(200));
        delivery.seen[static_cast<std::size_t>(item)].fetch_add(1, std::memory_order_relaxed);
      } catch (const Empty&) {
      } catch (const ShutDown&) {
        return;
      }
    }
  });
  Threads producers;
  producers.start_n(kProducers, [&](std::size_t index) {
    for (std::size_t item = index * kPerProducer; item < (index + 1) * kPerProducer; ++item) {
      for (;;) {
        try {
          queue.put(static_cast<int>(item), std::chrono::microseconds(200));
          break;
        } catch (const Full&) {
        }
      }
    }
  });
  producers.join();
  queue.shutdown();
  consumers.join();
  EXPECT_EQ(delivery.missing(), 0u);
  EXPECT_EQ(delivery.duplicated(), 0u);
}

}  // namespace
