// At exit the process waits for a started non-daemon thread, as Python does. The Thread is
// reachable from a global and never destroyed, so only the exit hook can wait for it.
#include <chrono>
#include <thread>

#include "spindle/print.hpp"
#include "spindle/threading.hpp"

spindle::threading::Thread* worker = nullptr;

int main() {
  worker = new spindle::threading::Thread([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    spindle::print("worker finished");
  });
  worker->start();
  spindle::print("main returns");
  return 0;
}
