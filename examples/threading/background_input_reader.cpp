// Lesson 14: reading stdin blocks, so a thread reads the line while the main thread keeps
// computing. The reader sets an Event once it has a line (or found stdin closed); the main
// thread checks it between chunks of work. The reader is a daemon thread: a blocked read
// cannot be interrupted, and a daemon does not keep the program alive.
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace threading = spindle::threading;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Input {
  threading::Event done;            // set once `line` is final
  std::optional<std::string> line;  // empty: stdin closed or empty
};

// Takes a share of `input`: if nobody types, this thread is still blocked here when main
// returns, and the Input must live on for it.
void read_line(std::shared_ptr<Input> input) {
  std::string line;
  if (std::getline(std::cin, line)) input->line = line;
  input->done.set();
}

int main() {
  const auto start = Clock::now();
  const auto input = std::make_shared<Input>();

  threading::Thread reader({.name = "reader", .daemon = true}, read_line, input);
  reader.start();
  spindle::print("Type a line and press enter (computing meanwhile, for up to 3 s)...");

  unsigned long long checksum = 0;
  unsigned long long chunks = 0;
  while (!input->done.is_set() && Clock::now() - start < 3s) {
    for (unsigned long long i = 0; i < 10'000; ++i) {
      checksum = checksum * 31 + i;  // some work
    }
    ++chunks;
  }

  if (!input->done.is_set()) {
    spindle::print("No line within 3 s: giving up on the input");
  } else if (input->line) {
    spindle::print("You entered: {}", *input->line);
  } else {
    spindle::print("stdin is closed or empty: there is no line to read");
  }
  spindle::print("Main thread computed {} chunk(s) of work meanwhile (checksum {:x})", chunks,
                 checksum);
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
}
