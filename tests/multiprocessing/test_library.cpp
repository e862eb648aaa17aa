#include "test_library.hpp"

namespace spindle_test_library {
void send_square(int x, spindle::multiprocessing::Connection<int> out) {
  out.send(x * x);
}
}  // namespace spindle_test_library
