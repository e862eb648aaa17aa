// asyncio lesson 3: a producer puts ten items on an asyncio::Queue (bounded to 3, so it waits
// when the consumers fall behind) and two consumers take them; queue.join() waits until every
// item is marked done, then the consumers are cancelled.
//
// Usage: async_producer_consumer [SCALE]  (SCALE, default 1.0, multiplies every wait)
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "spindle/asyncio.hpp"
#include "spindle/print.hpp"

namespace asyncio = spindle::asyncio;
using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

asyncio::Task<> producer(asyncio::Queue<int>& queue, int items, double scale) {
  for (int item = 1; item <= items; ++item) {
    co_await asyncio::sleep(Seconds(0.05 * scale));
    co_await queue.put(item);
    spindle::print("Produced {}", item);
  }
}

asyncio::Task<> consumer(std::string name, asyncio::Queue<int>& queue, int& total, double scale) {
  while (true) {
    int item = co_await queue.get();
    co_await asyncio::sleep(Seconds(0.1 * scale));  // processing takes a while
    spindle::print("{} consumed {}", name, item);
    total += item;
    queue.task_done();
  }
}

asyncio::Task<> main_task(double scale) {
  asyncio::Queue<int> queue(3);
  int total = 0;
  std::vector<asyncio::Task<>> consumers;
  consumers.push_back(asyncio::create_task(consumer("consumer-1", queue, total, scale)));
  consumers.push_back(asyncio::create_task(consumer("consumer-2", queue, total, scale)));
  co_await producer(queue, 10, scale);
  co_await queue.join();
  for (auto& task : consumers)
    task.cancel();
  co_await asyncio::gather(asyncio::return_exceptions, consumers);
  spindle::print("All items processed, total {}", total);
}

int main(int argc, char** argv) {
  const double scale = argc > 1 ? std::strtod(argv[1], nullptr) : 1.0;
  if (!(scale > 0 && scale <= 10)) {
    spindle::print(stderr, "usage: {} [SCALE]  (0 < SCALE <= 10, default 1.0)", argv[0]);
    return 2;
  }
  const auto start = Clock::now();
  asyncio::run(main_task(scale));
  spindle::print("Finished in {:.2f} second(s)",
                 std::chrono::duration<double>(Clock::now() - start).count());
}
