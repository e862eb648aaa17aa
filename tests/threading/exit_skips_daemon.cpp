// At exit the process does not wait for a daemon thread, as Python does.
#include "spindle/print.hpp"
#include "spindle/threading.hpp"

spindle::threading::Thread* worker = nullptr;
spindle::threading::Event* never = nullptr;

int main() {
  never = new spindle::threading::Event();
  worker = new spindle::threading::Thread(spindle::threading::ThreadOptions{.daemon = true},
                                          [] { never->wait(); });
  worker->start();
  spindle::print("main returns");
  return 0;
}
