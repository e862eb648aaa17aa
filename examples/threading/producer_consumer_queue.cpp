// Lesson 12: producers and consumers talk through a queue::Queue, which does all the locking.
// The consumers call task_done() for every item they get; the main thread's join() returns
// once every item put has been processed. Then shutdown() makes the consumers' get() throw
// queue::ShutDown, which ends their loops.
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "spindle/print.hpp"
#include "spindle/queue.hpp"
#include "spindle/threading.hpp"

namespace queue = spindle::queue;
namespace threading = spindle::threading;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::atomic<int> processed{0};

void producer(queue::Queue<int>& q, int first, int count) {
  for (int item = first; item < first + count; ++item) {
    std::this_thread::sleep_for(20ms);  // producing takes a while
    q.put(item);
    spindle::print("{} produced {}", threading::current_thread().name(), item);
  }
}

void consumer(queue::Queue<int>& q) {
  const std::string name = threading::current_thread().name();
  int consumed = 0;
  try {
    for (;;) {
      const int item = q.get();
      std::this_thread::sleep_for(30ms);  // consuming too
      spindle::print("{} consumed {}", name, item);
      ++consumed;
      ++processed;
      q.task_done();
    }
  } catch (const queue::ShutDown&) {
    spindle::print("{} is done: {} item(s) consumed", name, consumed);
  }
}

int main() {
  const auto start = Clock::now();
  queue::Queue<int> q(5);  // bounded: producers block while 5 items wait

  std::deque<threading::Thread> consumers;  // a deque never moves its elements
  for (int i = 1; i <= 3; ++i) {
    const threading::ThreadOptions options{.name = "consumer-" + std::to_string(i)};
    consumers.emplace_back(options, consumer, std::ref(q)).start();
  }
  threading::Thread producer1({.name = "producer-1"}, producer, std::ref(q), 1, 10);
  threading::Thread producer2({.name = "producer-2"}, producer, std::ref(q), 101, 10);
  producer1.start();
  producer2.start();
  producer1.join();
  producer2.join();

  q.join();  // every item put has been task_done()
  spindle::print("All items processed: {} of 20", processed.load());
  q.shutdown();
  for (auto& thread : consumers) {
    thread.join();
  }

  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
}
