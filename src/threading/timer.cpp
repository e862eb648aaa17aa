#include "spindle/threading.hpp"

namespace spindle::threading {

Timer::~Timer() {
  // run() uses this object's members, so the thread must end before they go.
  cancel();
  if (ident().has_value() && get_ident() != *ident()) join();
}

void Timer::run() {
  if (!finished_.wait(interval_)) call_function();
  finished_.set();
}

}  // namespace spindle::threading
