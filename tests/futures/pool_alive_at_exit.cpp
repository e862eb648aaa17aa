// A ThreadPoolExecutor that still exists at program exit is shut down with wait = true, as
// Python does: its running task finishes before the process ends. The pool is never destroyed,
// so only the exit hook can wait for it. With --shutdown-without-wait the pool was shut down
// with wait = false first; its task must still finish. The pool is reachable from a global,
// so leak checkers do not count it.
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "spindle/futures.hpp"
#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace {
spindle::threading::Event main_returned;
}

spindle::futures::ThreadPoolExecutor* pool = nullptr;

int main(int argc, char** argv) {
  const bool shutdown_without_wait = argc > 1 && std::string(argv[1]) == "--shutdown-without-wait";
  pool = new spindle::futures::ThreadPoolExecutor({.max_workers = 3});
  // Registered after the pool's own exit hook, so it runs before it.
  std::atexit([] { main_returned.set(); });
  (void)pool->submit([] {
    main_returned.wait();
    // Long enough that a process not waiting for the pool would end first.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    spindle::print("task finished");
  });
  if (shutdown_without_wait) pool->shutdown(false);
  spindle::print("main returns");
  return 0;
}
