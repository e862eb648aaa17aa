// The example README.md opens with, built and run so the README stays true.
#include <spindle/spindle.hpp>

int main() {
  spindle::queue::Queue<std::string> jobs(/*maxsize=*/8);
  spindle::threading::Thread worker([&jobs] {
    try {
      for (;;) {
        spindle::print("processed {}", jobs.get());
        jobs.task_done();
      }
    } catch (const spindle::queue::ShutDown&) {
      // shut down and drained: done
    }
  });
  worker.start();
  for (auto name : {"a.txt", "b.txt", "c.txt"}) {
    jobs.put(name);
  }
  jobs.join();      // blocks until every item is task_done()
  jobs.shutdown();  // the worker's next get() throws ShutDown
}  // ~Thread joins the worker
