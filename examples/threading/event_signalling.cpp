// Lesson 10: an Event is a flag that threads wait on. Part 1: two threads wait until the main
// thread sets the event, then all go on at once. Part 2: a worker checks an Event between
// steps, so the main thread can stop it early just by setting it.
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace threading = spindle::threading;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

void waiter(threading::Event& event) {
  const std::string name = threading::current_thread().name();
  spindle::print("{}: waiting for the event...", name);
  event.wait();
  spindle::print("{}: the event is set, going on", name);
}

// Up to 100 steps of 0.1 s (10 s), unless `stop` is set first. wait(timeout) is a sleep that
// ends early when the event is set; it returns true then.
void worker(threading::Event& stop) {
  int steps = 0;
  while (steps < 100 && !stop.wait(100ms)) {
    ++steps;  // each wait stands for a step of work
  }
  spindle::print("worker: stopped early after {} of 100 steps", steps);
}

int main() {
  const auto start = Clock::now();

  spindle::print("== Signalling waiting threads ==");
  threading::Event ready;
  threading::Thread first({.name = "waiter-1"}, waiter, std::ref(ready));
  threading::Thread second({.name = "waiter-2"}, waiter, std::ref(ready));
  first.start();
  second.start();
  std::this_thread::sleep_for(500ms);
  spindle::print("main: setting the event");
  ready.set();
  first.join();
  second.join();

  spindle::print("== Stopping a worker early ==");
  threading::Event stop;
  threading::Thread work({.name = "worker"}, worker, std::ref(stop));
  work.start();
  std::this_thread::sleep_for(500ms);
  spindle::print("main: asking the worker to stop");
  stop.set();
  work.join();

  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
}
