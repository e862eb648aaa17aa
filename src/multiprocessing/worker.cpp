// The body of a pool worker process: runs calls in the order they arrive and sends results
// back in the same order, each as soon as it is ready.
#include <sched.h>

#include <chrono>

#include "process_internal.hpp"
#include "spindle/detail/exception_info.hpp"
#include "spindle/multiprocessing.hpp"

namespace spindle::multiprocessing::detail {
namespace {

constexpr auto idle_spin = std::chrono::microseconds(20);

// Runs the call in `task`; the result message (status byte, then value or exception).
Message run_task(Message& task) {
  Message result;
  // A large call (a map chunk) likely has a result of about its size.
  if (task.bytes.size() >= recycled_buffer_min) result.bytes = recycled_buffer(task.bytes.size());
  {
    Encoder out(result);
    const std::uint8_t ok = static_cast<std::uint8_t>(ResultStatus::value);
    out.raw(&ok, 1);
    try {
      {
        Decoder in(task.bytes, std::exchange(task.fds, {}));
        run_call(in, out);
      }
      recycle_buffer(std::move(task.bytes));
      return result;
    } catch (...) {
      const ExceptionRecord record = record_exception(std::current_exception());
      result.close_fds();
      result.bytes.clear();
      const std::uint8_t failed = static_cast<std::uint8_t>(ResultStatus::exception);
      out.raw(&failed, 1);
      write_exception(out, record);
    }
  }
  return result;
}

// run_task, with the call's running time appended (call_time_size bytes).
Message execute(Message& task) {
  const auto began = std::chrono::steady_clock::now();
  Message result = run_task(task);
  const auto took =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - began)
          .count();
  const auto nanoseconds = static_cast<std::uint64_t>(took);
  result.bytes.append(reinterpret_cast<const char*>(&nanoseconds), sizeof nanoseconds);
  return result;
}

// Marks this process as a batch worker (SCHED_BATCH) for the scheduler, best effort. A worker
// woken by a write from a busy caller is then not allowed to preempt that caller: otherwise
// the first worker woken onto the caller's CPU takes a whole time slice (about 2 ms) before
// the caller gets to wake the next worker, which idles meanwhile. See docs/design/processes.md.
void run_as_batch_worker() {
  sched_param no_priority{};
  (void)::sched_setscheduler(0, SCHED_BATCH, &no_priority);
}

}  // namespace

void run_pool_worker(int fd, Decoder& boot, bool forked) {
  const auto max_tasks = read_value<std::uint64_t>(boot);
  const auto has_initializer = read_value<bool>(boot);
  run_as_batch_worker();
  FrameReader reader(fd);
  FrameWriter writer;
  auto next = [&](Message& message) {
    while (!reader.pop(message)) {
      writer.flush_blocking(fd);
      // Look for the next call for a short while before sleeping: a caller that submits
      // calls one after another sends the next one within a few microseconds, and waking a
      // sleeping process costs far more than that on some machines (20-50 us on VMs).
      const auto until = std::chrono::steady_clock::now() + idle_spin;
      do {
        if (!reader.fill(false)) return false;
        if (reader.pop(message)) return true;
      } while (std::chrono::steady_clock::now() < until);
      if (!reader.fill(true)) return false;
    }
    return true;
  };
  if (has_initializer) {
    Message call;
    if (!next(call)) finish_child(0, forked);
    Message outcome = execute(call);
    // The parent learns of a failed initializer from this message, then from the exit.
    if (outcome.bytes[0] != static_cast<char>(ResultStatus::value)) {
      outcome.bytes[0] = static_cast<char>(ResultStatus::initializer_failed);
      writer.push(std::move(outcome));
      writer.flush_blocking(fd);
      finish_child(1, forked);
    }
  }
  std::uint64_t done = 0;
  Message task;
  while (next(task)) {
    writer.push(execute(task));
    // Every result leaves at once (as far as the socket takes it without blocking): the
    // next queued call may run for long, and the caller is owed this result meanwhile.
    writer.flush(fd);
    if (max_tasks != 0 && ++done == max_tasks) break;
  }
  writer.flush_blocking(fd);
  finish_child(0, forked);
}

}  // namespace spindle::multiprocessing::detail
