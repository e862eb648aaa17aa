// A target that lives in a shared library (its address differs per process).
#pragma once

#include "spindle/multiprocessing.hpp"

namespace spindle_test_library {
void send_square(int x, spindle::multiprocessing::Connection<int> out);
}
