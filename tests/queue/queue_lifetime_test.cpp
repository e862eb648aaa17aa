// spindle::queue: a queue may be destroyed by the thread that last needs it as soon as that
// thread's call has returned, even while the call that released it (put, get, shutdown) is
// still finishing in another thread. Such a call must not touch the queue once its effect is
// visible: it notifies its condition variables before it releases the lock, never after.
//
// Regression tests: put(), get() and shutdown() once notified after unlocking, and the thread
// sanitizer build reported each of these tests (a race with the condition variables'
// destruction, or a heap use after free). The owner spins with zero timeouts so that it
// counts as a waiter at the moment the other thread releases it, the window a late
// notification falls into. Every round is correct usage, so the tests never fail spuriously;
// elsewhere than under the sanitizers a late notification shows up only as a rare crash.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <thread>

#include "queue_test_support.hpp"
#include "spindle/queue.hpp"

namespace {

using namespace std::chrono_literals;
using queue_test::Threads;
using spindle::queue::Empty;
using spindle::queue::Full;
using spindle::queue::Queue;
using spindle::queue::ShutDown;
using spindle::queue::SimpleQueue;

constexpr int kRounds = 3000;

// Spins until `flag` holds `value`: the other thread is then spinning on the queue too.
void wait_until_equal(const std::atomic<int>& flag, int value) {
  while (flag.load() != value)
    std::this_thread::yield();
}

TEST(QueueLifetime, ConsumerMayDestroyTheQueueOnceGetReturns) {
  SimpleQueue<Queue<int>*> handoff;  // each round's queue, to its owner
  std::atomic<int> spinning{-1};     // the round whose owner has started to spin
  int received = 0;
  Threads owner;
  owner.start([&] {
    for (int round = 0; round < kRounds; ++round) {
      std::unique_ptr<Queue<int>> queue(handoff.get());
      for (;;) {
        try {
          received += queue->get(0s) == round ? 1 : 0;
          break;
        } catch (const Empty&) {
          spinning.store(round);
        }
      }
    }  // queue destroyed here, possibly while put() is still returning
  });
  for (int round = 0; round < kRounds; ++round) {
    auto* queue = new Queue<int>();
    handoff.put(queue);
    wait_until_equal(spinning, round);
    queue->put(round);  // the last use of `queue` by this thread
  }
  owner.join();
  EXPECT_EQ(received, kRounds);
}

TEST(QueueLifetime, ProducerMayDestroyTheQueueOncePutReturns) {
  SimpleQueue<Queue<int>*> handoff;  // each round's queue, to the thread that takes its item
  std::atomic<int> spinning{-1};     // the round whose producer has started to spin
  int received = 0;
  Threads taker;
  taker.start([&] {
    for (int round = 0; round < kRounds; ++round) {
      Queue<int>* queue = handoff.get();
      wait_until_equal(spinning, round);
      received += queue->get() == round ? 1 : 0;  // the last use of `queue` by this thread
    }
  });
  for (int round = 0; round < kRounds; ++round) {
    auto queue = std::make_unique<Queue<int>>(1);
    queue->put(round);
    handoff.put(queue.get());
    for (;;) {  // full until the taker gets the first item
      try {
        queue->put(-1, 0s);
        break;
      } catch (const Full&) {
        spinning.store(round);
      }
    }
  }  // queue destroyed here, possibly while get() is still returning
  taker.join();
  EXPECT_EQ(received, kRounds);
}

TEST(QueueLifetime, ConsumerMayDestroyTheQueueOnceShutdownStopsIt) {
  SimpleQueue<Queue<int>*> handoff;
  std::atomic<int> spinning{-1};
  int stopped = 0;
  Threads owner;
  owner.start([&] {
    for (int round = 0; round < kRounds; ++round) {
      std::unique_ptr<Queue<int>> queue(handoff.get());
      for (;;) {
        try {
          queue->get(0s);
        } catch (const Empty&) {
          spinning.store(round);
        } catch (const ShutDown&) {
          ++stopped;
          break;
        }
      }
    }  // queue destroyed here, possibly while shutdown() is still returning
  });
  for (int round = 0; round < kRounds; ++round) {
    auto* queue = new Queue<int>();
    handoff.put(queue);
    wait_until_equal(spinning, round);
    queue->shutdown(round % 2 == 0);  // the last use of `queue` by this thread
  }
  owner.join();
  EXPECT_EQ(stopped, kRounds);
}

}  // namespace
