// The parent side of a pool of worker processes: one collector thread polls every worker's
// socket, writes queued calls when a socket has room, completes futures as results arrive,
// and notices a worker's death at once (end of stream). See docs/design/processes.md.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "process_internal.hpp"
#include "spindle/detail/exception_info.hpp"
#include "spindle/multiprocessing.hpp"
#include "spindle/trace.hpp"

namespace spindle::multiprocessing::internal {
namespace {

using detail::Message;
using Clock = std::chrono::steady_clock;

std::vector<int> copy_fds(const std::vector<int>& fds) {
  std::vector<int> copies;
  try {
    for (int fd : fds) {
      const int duplicate = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (duplicate < 0) throw std::system_error(errno, std::generic_category(), "dup");
      copies.push_back(duplicate);
    }
  } catch (...) {
    for (int fd : copies)
      detail::close_fd(fd);
    throw;
  }
  return copies;
}

Message copy_message(const Message& original) {
  Message copy;
  copy.bytes = original.bytes;
  copy.bytes.append(original.borrowed);
  copy.fds = copy_fds(original.fds);
  return copy;
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           ::strsignal(WTERMSIG(status)) + ")";
  }
  return "exited with code " + std::to_string(WEXITSTATUS(status));
}

int reap(int pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// How many calls a worker holds (running and queued) is sized from how long its calls run:
// enough to keep it busy for `refill_us`, the time the pool takes to send more once a result
// is in, and never fewer than two, so a worker does not wait for its next call. Calls of a
// function not yet timed go two at a time; calls that run `long_call_us` or more one at a
// time, so none waits behind another for long while a worker idles.
// The last calls (no more pending than there are workers) of a function that runs
// `tail_call_us` or more go only to idle workers: queued behind a running call, one of them
// could keep its worker busy for a whole call longer while another worker has nothing left.
// (For shorter calls, the wait for a worker to be idle costs about as much as it saves.)
constexpr std::size_t max_queue = 64;
constexpr double refill_us = 2'000;
constexpr double long_call_us = 20'000;
constexpr double tail_call_us = 1'000;
// Waiting for a call that runs this long, a thread sleeps at once rather than spin first.
constexpr double long_wait_us = 1'000;
// Done callbacks that wait on the collector thread each nest a frame over the one before
// (collect_while_waiting); past this many, a wait is refused rather than risk the stack.
constexpr int max_nested_waits = 64;

// The pool whose collector this thread is, if it is one: its done callbacks run here, and a
// wait in one collects meanwhile (collect_while_waiting), as only this thread delivers the
// pool's results.
thread_local const WorkerPoolCore* current_collector = nullptr;

}  // namespace

struct Worker {
  int pid = -1;
  int fd = -1;
  std::unique_ptr<detail::FrameReader> reader;
  detail::FrameWriter writer;
  std::deque<std::unique_ptr<PendingCall>> in_flight;
  std::size_t sent = 0;
  bool retiring = false;  // reached max_tasks_per_child: gets no more calls
  // When the worker last started on a call or finished one (a result came in).
  Clock::time_point last_event{};
  // Its stream ended, or could not be followed, while a waiting thread read it
  // (help_waiter): the collector's next round ends it, with this error if it is set.
  bool ended = false;
  std::exception_ptr ended_unreadable;
};

class WorkerPoolCore : public std::enable_shared_from_this<WorkerPoolCore> {
  using Completions = std::vector<std::pair<std::unique_ptr<PendingCall>, Message>>;
  using Failures = std::vector<std::pair<std::unique_ptr<PendingCall>, std::exception_ptr>>;

 public:
  explicit WorkerPoolCore(WorkerPoolOptions options) : options_(std::move(options)) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  }
  // The last reference goes with the owner, once it has joined the collector, or with the
  // collector itself, when the owner was destroyed on it (from a done callback).
  ~WorkerPoolCore() {
    if (collector_.joinable()) collector_.detach();  // this is the collector, at its end
    detail::close_fd(wake_fd_);
  }

  bool on_collector_thread() const noexcept { return current_collector == this; }

  // See internal::help_waiter. Reads only when the lock is free and `waited` is the only call
  // out, so what it reads is that call's result (or its worker's end). A worker's end is left
  // to the collector, woken for it, which ends the worker as if it had read the end itself.
  bool help_waiter(const spindle::detail::FutureCore* waited) noexcept {
    if (on_collector_thread()) return false;
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock() || !pending_.empty() || broken_) return false;
    Worker* holder = nullptr;
    for (auto& worker : workers_) {
      if (worker->in_flight.empty()) continue;
      if (holder != nullptr || worker->in_flight.size() != 1 || worker->ended) return false;
      holder = worker.get();
    }
    if (holder == nullptr || holder->in_flight.front()->future_core() != waited) return false;
    Completions completions;
    Failures failures;
    std::exception_ptr unreadable;
    try {
      completions.reserve(1);
    } catch (...) {
      return false;  // no memory: the collector reads it
    }
    const bool alive = read_worker_locked(*holder, completions, failures, unreadable);
    if (broken_) {
      wake_locked();  // broken while reading (a failed initializer): the workers are gone
    } else if (!alive) {
      holder->ended = true;
      holder->ended_unreadable = unreadable;
      wake_locked();
    }
    lock.unlock();
    for (auto& [call, result] : completions)
      call->complete(std::move(result));
    for (auto& [call, error] : failures)
      call->fail(error);
    return !completions.empty() || !failures.empty();
  }

  // Queues calls[0, count) (all, or none when it throws; taken ones are left empty) and
  // writes what the sockets take. A call that cannot be written fails alone.
  void submit(std::unique_ptr<PendingCall>* calls, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      calls[i]->target_hash =
          std::hash<std::string_view>{}(detail::call_target(calls[i]->call.bytes));
    }
    Failures failures;
    {
      std::unique_lock lock(mutex_);
      if (shutdown_) {
        throw std::logic_error("cannot schedule new calls after shutdown (" + options_.kind + ")");
      }
      if (broken_) throw BrokenProcessPool(*broken_);
      if (!started_) start_locked();
      for (std::size_t i = 0; i < count; ++i) {
        const auto timed = timings_.find(calls[i]->target_hash);
        if (timed != timings_.end() && timed->second.microseconds >= long_wait_us) {
          calls[i]->expect_long_wait();
        }
        pending_.push_back(std::move(calls[i]));
      }
      try {
        if (dispatch_locked(failures)) wake_locked();
      } catch (...) {
        // No memory to hand calls out: they are queued, and the collector tries again.
        wake_locked();
      }
    }
    for (auto& [call, error] : failures)
      call->fail(error);
  }

  // On the collector thread, in a done callback that waits (for anything: this is its
  // futures Helper): results already read are delivered first, else one round of collection
  // runs in the callback's frame, polling for up to a millisecond, so that results of this
  // pool keep arriving, and a wait for something else looks again that often. True if it
  // delivered results. std::runtime_error past max_nested_waits waits nested in each other.
  bool collect_while_waiting() {
    if (nested_waits_ == max_nested_waits) {
      throw std::runtime_error("more than " + std::to_string(max_nested_waits) +
                               " done callbacks of a " + options_.kind +
                               " wait nested in each other on its collector thread");
    }
    ++nested_waits_;
    const struct Unnest {
      int& depth;
      ~Unnest() { --depth; }
    } unnest{nested_waits_};
    if (deliver_queued(false)) return true;
    const std::uint64_t delivered_before = delivered_;
    std::unique_lock lock(mutex_);
    RoundScratch scratch;
    bool going = true;
    try {
      going = round_locked(lock, scratch, 1);
    } catch (...) {
      fail_collector_locked(lock, scratch, std::current_exception());
      return true;
    }
    lock.unlock();
    if (delivered_ != delivered_before) return true;
    // Nothing more comes from an ended pool: the wait is for something else. Look every ms.
    if (!going) ::poll(nullptr, 0, 1);
    return false;
  }

  // shutdown(true, ...) on the collector thread is std::logic_error: it would wait for itself.
  void shutdown(bool wait, bool cancel_futures) {
    if (wait && on_collector_thread()) {
      throw std::logic_error("shutdown(wait=true) of a " + options_.kind +
                             " in a done callback of its own calls would wait for ever (the "
                             "callback runs on the thread that finishes them)");
    }
    std::vector<std::unique_ptr<PendingCall>> cancelled;
    {
      std::lock_guard lock(mutex_);
      shutdown_ = true;
      if (cancel_futures) {
        // A started call (one a dead worker had, waiting to run again) cannot be cancelled:
        // it runs, or fails, as any other; so does one that cannot be cancelled at all.
        cancelled.reserve(pending_.size());
        for (auto& call : pending_) {
          if (!call->started && call->cancellable()) cancelled.push_back(std::move(call));
        }
        std::erase(pending_, nullptr);
      }
      wake_locked();
    }
    // Outside the lock: cancelling runs the futures' done callbacks, which may use the pool.
    for (auto& call : cancelled)
      call->cancel();  // false: completed by hand already, and not the pool's to run
    if (wait) join_collector();
  }

  // For the owner's destructor: shutdown(true, false), except on the collector thread (the
  // owner destroyed from a done callback), where it does not wait: the collector finishes
  // the calls, then frees this core.
  void shutdown_on_owner_destruction() noexcept {
    {
      std::lock_guard lock(mutex_);
      shutdown_ = true;
      wake_locked();
    }
    if (!on_collector_thread()) join_collector();
  }

  // Copies every byte that calls not yet written borrow (Message::borrowed) into the pool's
  // own storage, so that the caller may free what they borrowed. Without memory for the
  // copies, the pool breaks instead: nothing borrowed is written after this returns.
  void own_borrowed() noexcept {
    Failures failures;
    {
      std::lock_guard lock(mutex_);
      try {
        // Frames first: they may view the calls' messages, which own() may move.
        for (auto& worker : workers_)
          worker->writer.own_borrowed();
        for (auto& worker : workers_) {
          for (auto& call : worker->in_flight)
            call->call.own();
        }
        for (auto& call : pending_)
          call->call.own();
      } catch (const std::bad_alloc&) {
        if (!broken_) break_locked("out of memory for the calls of a map", failures);
        wake_locked();
      }
    }
    for (auto& [call, error] : failures)
      call->fail(error);
  }

  // On the collector thread (a done callback), does not wait, as Python's Pool does not join
  // its own thread: the collector stops the workers once the callback returns.
  void terminate() {
    {
      std::lock_guard lock(mutex_);
      shutdown_ = true;
      terminating_ = true;
      wake_locked();
    }
    if (!on_collector_thread()) join_collector();
  }

 private:
  void join_collector() {
    std::lock_guard join_lock(join_mutex_);
    if (collector_.joinable()) collector_.join();
  }

  void wake_locked() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = ::write(wake_fd_, &one, sizeof one);
  }

  void start_locked() {
    try {
      for (std::size_t i = 0; i < options_.workers; ++i) {
        spawn_locked();
      }
    } catch (const std::exception& error) {
      // No collector runs yet: stop the workers started so far here.
      for (auto& worker : workers_) {
        ::kill(worker->pid, SIGKILL);
      }
      close_all_locked();
      broken_ = "cannot start the worker processes of the " + options_.kind + ": " + error.what();
      throw BrokenProcessPool(*broken_);
    }
    started_ = true;
    // The collector keeps the core alive: its owner may be destroyed on it (in a callback).
    collector_ = std::thread([core = shared_from_this()] {
      current_collector = core.get();
      core->collect();
    });
  }

  void spawn_locked() {
    // Whatever may fail comes before the child starts, or undoes the start: a child left
    // behind would wait for its first frame for ever.
    auto worker = std::make_unique<Worker>();
    Message boot;
    {
      detail::Encoder out(boot);
      detail::write(out, static_cast<std::uint8_t>(detail::ChildKind::pool_worker));
      detail::write(out, options_.daemon_workers);
      detail::write(out, options_.worker_name_prefix + "-" + std::to_string(++worker_counter_));
      detail::write(out, static_cast<std::uint64_t>(options_.max_tasks_per_child));
      detail::write(out, options_.initializer != nullptr);
    }
    worker->writer.push(std::move(boot));
    if (options_.initializer) worker->writer.push(copy_message(*options_.initializer));
    workers_.reserve(std::max(options_.workers, workers_.size() + 1));
    const detail::Child child = detail::start_child();
    try {
      detail::set_nonblocking(child.fd);
      worker->reader = std::make_unique<detail::FrameReader>(child.fd);
    } catch (...) {
      ::kill(child.pid, SIGKILL);
      detail::close_parent_end(child.fd);
      reap(child.pid);
      throw;
    }
    worker->pid = child.pid;
    worker->fd = child.fd;
    workers_.push_back(std::move(worker));
  }

  // Starts a worker in place of one that ended; if that fails, the pool is broken.
  void replace_locked(Failures& failures) {
    try {
      spawn_locked();
    } catch (const std::exception& error) {
      break_locked("cannot start a worker process of the " + options_.kind + ": " + error.what(),
                   failures);
    }
  }

  // How many calls a worker may hold when the next is a call of `target_hash`.
  std::size_t queue_limit(std::size_t target_hash) const {
    const auto timed = timings_.find(target_hash);
    if (timed == timings_.end()) return 2;
    const double microseconds = timed->second.microseconds;
    if (microseconds >= long_call_us) return 1;
    if (microseconds >= tail_call_us && pending_.size() <= workers_.size()) return 1;
    if (microseconds * static_cast<double>(max_queue) <= refill_us) return max_queue;
    return std::max<std::size_t>(2, 1 + static_cast<std::size_t>(refill_us / microseconds));
  }

  // Hands pending calls to workers with room and writes what the sockets take. True when
  // some bytes wait for room (the collector must watch for it). A call that cannot be
  // written (too many descriptors, none left to copy them) goes to `failures`.
  bool dispatch_locked(Failures& failures) {
    while (!pending_.empty()) {
      const std::size_t limit = queue_limit(pending_.front()->target_hash);
      // The worker with the fewest calls. Of idle ones, the one idle the shortest (it may
      // still be looking for work rather than asleep); of busy ones, the one on its current
      // call the longest (likely the first to be free).
      Worker* best = nullptr;
      for (auto& worker : workers_) {
        if (worker->retiring || worker->in_flight.size() >= limit) continue;
        if (best == nullptr || worker->in_flight.size() < best->in_flight.size() ||
            (worker->in_flight.size() == best->in_flight.size() &&
             (worker->in_flight.empty() ? worker->last_event > best->last_event
                                        : worker->last_event < best->last_event))) {
          best = worker.get();
        }
      }
      if (best == nullptr) break;
      std::unique_ptr<PendingCall> call = std::move(pending_.front());
      pending_.pop_front();
      if (!call->started) {
        bool run = false;
        try {
          run = call->start();
        } catch (const std::logic_error&) {
          continue;  // completed or claimed through a copy of its future: not ours to run
        }
        if (!run) continue;  // cancelled
        call->started = true;
      }
      // In in_flight before its frame is queued: results are matched to calls by their order.
      PendingCall& handed_out = *call;
      best->in_flight.push_back(std::move(call));
      try {
        if (options_.on_worker_crash == OnWorkerCrash::replace_worker) {
          // The call keeps its message, to run again elsewhere if the worker dies before it
          // ran; the frame refers to it until written (the call stays in in_flight as long).
          best->writer.push_view(handed_out.call, copy_fds(handed_out.call.fds));
        } else {
          best->writer.push(std::move(handed_out.call));
        }
      } catch (...) {
        std::unique_ptr<PendingCall> unsent = std::move(best->in_flight.back());
        best->in_flight.pop_back();
        failures.emplace_back(std::move(unsent), std::current_exception());
        continue;
      }
      if (best->in_flight.size() == 1) best->last_event = Clock::now();
      if (trace::enabled()) handed_out.traced_since = trace::Clock::now();
      if (options_.max_tasks_per_child != 0 && ++best->sent == options_.max_tasks_per_child) {
        best->retiring = true;
      }
    }
    bool waiting = false;
    for (auto& worker : workers_) {
      if (worker->writer.empty()) continue;
      try {
        if (!worker->writer.flush(worker->fd)) waiting = true;
      } catch (const std::system_error&) {
        // The worker is gone; the collector sees its end of stream.
      }
    }
    return waiting;
  }

  // Everything not finished fails with `error`; the workers are killed.
  void fail_everything_locked(const std::exception_ptr& error, Failures& failures) {
    for (auto& worker : workers_) {
      for (auto& call : worker->in_flight)
        failures.emplace_back(std::move(call), error);
      worker->in_flight.clear();
      ::kill(worker->pid, SIGKILL);
    }
    for (auto& call : pending_)
      failures.emplace_back(std::move(call), error);
    pending_.clear();
    close_all_locked();
  }

  void close_all_locked() {
    for (auto& worker : workers_) {
      worker->reader.reset();
      detail::close_parent_end(worker->fd);
      reap(worker->pid);
    }
    workers_.clear();
  }

  void break_locked(const std::string& reason, Failures& failures) {
    broken_ = reason;
    fail_everything_locked(std::make_exception_ptr(BrokenProcessPool(reason)), failures);
  }

  // A worker's stream ended, or could not be followed any more (`unreadable`: a corrupt
  // frame, or no memory for one). Removes the worker; replaces it when needed.
  void worker_ended_locked(std::size_t index, const std::exception_ptr& unreadable,
                           Failures& failures) {
    std::unique_ptr<Worker> worker = std::move(workers_[index]);
    workers_.erase(workers_.begin() + static_cast<std::ptrdiff_t>(index));
    worker->reader.reset();
    if (unreadable) ::kill(worker->pid, SIGKILL);
    detail::close_parent_end(worker->fd);
    const int status = reap(worker->pid);
    const bool clean_exit =
        !unreadable && WIFEXITED(status) && WEXITSTATUS(status) == 0 && worker->in_flight.empty();
    if (clean_exit && (worker->retiring || shutdown_)) {
      if (!shutdown_ || !pending_.empty()) replace_locked(failures);  // max_tasks_per_child
      return;
    }
    if (unreadable) {
      unreadable_worker_locked(*worker, unreadable, failures);
    } else {
      const std::string what = "a worker process (pid " + std::to_string(worker->pid) +
                               ") of the " + options_.kind + " " + describe_status(status) +
                               (worker->in_flight.empty() ? "" : " while running a call");
      if (options_.on_worker_crash == OnWorkerCrash::break_pool) {
        for (auto& call : worker->in_flight)
          pending_.push_front(std::move(call));
        break_locked(what + "; the pool is not usable any more", failures);
        return;
      }
      if (!worker->in_flight.empty()) {
        failures.emplace_back(std::move(worker->in_flight.front()),
                              std::make_exception_ptr(BrokenProcessPool(what)));
        worker->in_flight.pop_front();
        // The calls queued behind it have not run: they go first to the other workers.
        requeue_locked(*worker, worker->in_flight.size());
      }
    }
    if (!broken_ && (!shutdown_ || !pending_.empty())) replace_locked(failures);
  }

  // The last `count` calls of `worker` go back to the front of the queue, in order.
  void requeue_locked(Worker& worker, std::size_t count) {
    for (; count > 0; --count) {
      pending_.push_front(std::move(worker.in_flight.back()));
      worker.in_flight.pop_back();
    }
  }

  // The calls of a worker killed because its stream could not be followed (`error`). It ran
  // on past the frame it could not read, so any call it received may have run.
  //  break_pool: the pool breaks, naming the cause (the calls' messages went to the worker).
  //  replace_worker: the call the frame belonged to fails with `error`; the others the
  //    worker received fail too, as they may have run; only those it never received run
  //    again, elsewhere (their messages are kept).
  void unreadable_worker_locked(Worker& worker, const std::exception_ptr& error,
                                Failures& failures) {
    const std::string what = "a worker process (pid " + std::to_string(worker.pid) + ") of the " +
                             options_.kind + " was killed: its results could not be read (" +
                             spindle::detail::format_exception(error) + ")";
    if (options_.on_worker_crash == OnWorkerCrash::break_pool) {
      for (auto& call : worker.in_flight)
        pending_.push_front(std::move(call));
      break_locked(what + "; the pool is not usable any more", failures);
      return;
    }
    if (worker.in_flight.empty()) return;
    const std::size_t never_received =
        std::min(worker.writer.unsent_frames(), worker.in_flight.size() - 1);
    requeue_locked(worker, never_received);
    failures.emplace_back(std::move(worker.in_flight.front()), error);
    worker.in_flight.pop_front();
    if (worker.in_flight.empty()) return;
    const auto may_have_run = std::make_exception_ptr(
        BrokenProcessPool(what + " before this call's result came; it may have run"));
    for (auto& call : worker.in_flight)
      failures.emplace_back(std::move(call), may_have_run);
    worker.in_flight.clear();
  }

  // Records a traced call's span, from its sending to its result, on the worker's lane.
  void trace_call(const Worker& worker, const PendingCall& call) const {
    if (call.traced_since == trace::Clock::time_point{}) return;
    trace::record({"pid " + std::to_string(worker.pid), "call", options_.kind, call.traced_since,
                   trace::Clock::now()});
  }

  // Reads what a worker sent; false when its stream ended, or could not be followed any more
  // (then `unreadable` says why: a corrupt frame, or no memory for one).
  bool read_worker_locked(Worker& worker, Completions& completions, Failures& failures,
                          std::exception_ptr& unreadable) {
    bool alive = true;
    try {
      alive = worker.reader->fill(false);
      Message message;
      while (worker.reader->pop(message)) {
        if (message.bytes.size() < detail::call_time_size + 1) {
          throw detail::CorruptMessage("corrupt frame: a worker of the " + options_.kind +
                                       " sent a result of " + std::to_string(message.bytes.size()) +
                                       " bytes");
        }
        std::uint64_t nanoseconds = 0;
        const std::size_t result_size = message.bytes.size() - detail::call_time_size;
        std::memcpy(&nanoseconds, message.bytes.data() + result_size, sizeof nanoseconds);
        message.bytes.resize(result_size);
        if (message.bytes[0] == static_cast<char>(detail::ResultStatus::initializer_failed)) {
          detail::Decoder in(std::string_view(message.bytes).substr(1));
          const detail::ExceptionRecord record = detail::read_exception(in);
          break_locked("a worker process of the " + options_.kind +
                           " failed to initialise: " + record.type_name + ": " + record.message,
                       failures);
          return false;
        }
        if (worker.in_flight.empty()) {
          throw detail::CorruptMessage("corrupt frame: a worker of the " + options_.kind +
                                       " sent a result nobody asked for");
        }
        worker.last_event = Clock::now();
        const double took = static_cast<double>(nanoseconds) / 1000;
        const std::size_t target_hash = worker.in_flight.front()->target_hash;
        const auto [timed, first] = timings_.try_emplace(target_hash, Timing{took, false});
        Timing& timing = timed->second;
        if (!first) timing.microseconds = timing.microseconds * 0.8 + took * 0.2;
        if (!timing.marked_long && timing.microseconds >= long_wait_us) {
          timing.marked_long = true;  // once: later calls learn it when submitted
          expect_long_waits_locked(target_hash);
        }
        trace_call(worker, *worker.in_flight.front());
        completions.emplace_back(std::move(worker.in_flight.front()), std::move(message));
        worker.in_flight.pop_front();
      }
    } catch (const std::system_error&) {
      return false;  // the worker is gone: its end of stream tells the rest
    } catch (...) {
      unreadable = std::current_exception();
      return false;
    }
    return alive;
  }

  // The calls of a function just found to run long, submitted before that was known: a
  // thread waiting for one sleeps at once (see long_wait_us).
  void expect_long_waits_locked(std::size_t target_hash) {
    for (auto& call : pending_) {
      if (call->target_hash == target_hash) call->expect_long_wait();
    }
    for (auto& worker : workers_) {
      for (auto& call : worker->in_flight) {
        if (call->target_hash == target_hash) call->expect_long_wait();
      }
    }
  }

  bool holds_calls_locked() const {
    if (!pending_.empty()) return true;
    for (const auto& worker : workers_) {
      if (!worker->in_flight.empty()) return true;
    }
    return false;
  }

  bool finished_locked() const { return shutdown_ && !holds_calls_locked(); }

  void collect() {
    spindle::detail::current_helper() = &collector_helper_;
    std::unique_lock lock(mutex_);
    RoundScratch scratch;
    try {
      while (round_locked(lock, scratch, -1)) {
      }
    } catch (...) {
      // A worker's own errors fail only its calls (read_worker_locked, dispatch_locked); this
      // is the collector's own bookkeeping out of memory: the pool cannot go on.
      fail_collector_locked(lock, scratch, std::current_exception());
    }
    spindle::detail::current_helper() = nullptr;
  }

  // What a round works in, kept by the caller so that rounds do not allocate.
  struct RoundScratch {
    Completions completions;
    Failures failures;
    std::vector<pollfd> polled;
    std::vector<Worker*> polled_workers;
  };

  // One round of the collector: polls the workers' sockets (and the wake-up eventfd) for up
  // to timeout_ms (-1: no limit), reads results, notices ended workers, hands out calls and
  // delivers what came in (nested in a callback that waits, only the first: the callback
  // looks again after each). False once the pool has ended: every call finished or failed,
  // the workers closed. Called with the lock held; returns with it held.
  bool round_locked(std::unique_lock<std::mutex>& lock, RoundScratch& scratch, int timeout_ms) {
    auto& [completions, failures, polled, polled_workers] = scratch;
    if (terminating_) {
      fail_everything_locked(
          std::make_exception_ptr(BrokenProcessPool("the " + options_.kind + " was terminated")),
          failures);
      broken_ = "the " + options_.kind + " was terminated";
    }
    if (broken_ || finished_locked()) {
      // Calls still held here (only while abandon_locked fails them one by one, and a done
      // callback waits in between) fail now: the workers and their calls go below.
      if (broken_ && holds_calls_locked()) {
        fail_everything_locked(
            abandon_error_ ? abandon_error_ : std::make_exception_ptr(BrokenProcessPool(*broken_)),
            failures);
      }
      close_all_locked();  // idle workers read the end of stream and exit
      lock.unlock();
      deliver(completions, failures, /*all=*/nested_waits_ == 0);
      lock.lock();
      return false;
    }
    polled.assign(1, pollfd{wake_fd_, POLLIN, 0});
    polled_workers.assign(1, nullptr);
    for (auto& worker : workers_) {
      const short events = static_cast<short>(POLLIN | (worker->writer.empty() ? 0 : POLLOUT));
      polled.push_back(pollfd{worker->fd, events, 0});
      polled_workers.push_back(worker.get());
    }
    lock.unlock();
    while (::poll(polled.data(), polled.size(), timeout_ms) < 0 && errno == EINTR) {
    }
    lock.lock();
    if (polled[0].revents != 0) {
      std::uint64_t count;
      [[maybe_unused]] const ssize_t got = ::read(wake_fd_, &count, sizeof count);
    }
    // Workers whose end a waiting thread read (help_waiter). Before the sockets below: their
    // end reads again as a plain end of stream, without the error the waiter saw.
    for (std::size_t i = 0; i < workers_.size() && !broken_;) {
      if (!workers_[i]->ended) {
        ++i;
        continue;
      }
      const std::exception_ptr unreadable = workers_[i]->ended_unreadable;
      worker_ended_locked(i, unreadable, failures);  // removes it (a replacement goes last)
    }
    for (std::size_t i = 1; i < polled.size(); ++i) {
      if (polled[i].revents == 0 || broken_) continue;
      Worker* worker = polled_workers[i];
      const auto position = std::find_if(workers_.begin(), workers_.end(),
                                         [&](const auto& w) { return w.get() == worker; });
      if (position == workers_.end()) continue;
      std::exception_ptr unreadable;
      bool alive = true;
      if (polled[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        alive = read_worker_locked(*worker, completions, failures, unreadable);
      }
      if (broken_) break;
      if (!alive) {
        worker_ended_locked(static_cast<std::size_t>(position - workers_.begin()), unreadable,
                            failures);
      }
    }
    if (!broken_) dispatch_locked(failures);
    if (completions.empty() && failures.empty()) return true;
    lock.unlock();
    deliver(completions, failures, /*all=*/nested_waits_ == 0);
    lock.lock();
    return true;
  }

  // The collector's own bookkeeping failed (`error`, out of memory): what was read is
  // delivered, then the pool breaks. Called with `lock` held or not; returns with it held.
  void fail_collector_locked(std::unique_lock<std::mutex>& lock, RoundScratch& scratch,
                             const std::exception_ptr& error) noexcept {
    if (lock.owns_lock()) lock.unlock();
    deliver(scratch.completions, scratch.failures);
    lock.lock();
    abandon_locked(lock, error);
  }

  // Completes and fails calls (outside the lock: their done callbacks may use the pool), in
  // order, on the collector thread. They go through `delivering_` one at a time, so that a
  // done callback that waits (collect_while_waiting) delivers the rest of the batch first:
  // the result it waits for may be among them.
  // Delivers them all, or (`all` false, for a callback that waits) only the first.
  void deliver(Completions& completions, Failures& failures, bool all = true) noexcept {
    try {
      // emplace_back moves a call only once there is room for it.
      for (auto& [call, result] : completions)
        delivering_.emplace_back(std::move(call), std::move(result), nullptr);
      for (auto& [call, error] : failures)
        delivering_.emplace_back(std::move(call), Message{}, error);
    } catch (const std::bad_alloc&) {
      // No room to queue them: delivered straight from here (moved ones are empty).
      deliver_queued(true);
      for (auto& [call, result] : completions) {
        if (call) call->complete(std::move(result));
        delivered_ += call ? 1 : 0;
      }
      for (auto& [call, error] : failures) {
        if (call) call->fail(error);
        delivered_ += call ? 1 : 0;
      }
    }
    completions.clear();
    failures.clear();
    deliver_queued(all);
  }

  // Delivers what `delivering_` holds, or only its first (`all` false: for a callback that
  // waits, which looks again after each); true if it held anything.
  bool deliver_queued(bool all) noexcept {
    bool any = false;
    while (!delivering_.empty()) {
      Delivery delivery = std::move(delivering_.front());
      delivering_.pop_front();
      any = true;
      ++delivered_;
      if (delivery.error) {
        delivery.call->fail(delivery.error);
      } else {
        delivery.call->complete(std::move(delivery.result));
      }
      if (!all) break;
    }
    return any;
  }

  // The pool breaks without needing memory to do so: every call fails, one at a time outside
  // the lock, with BrokenProcessPool if there is memory for it, else with `error`.
  void abandon_locked(std::unique_lock<std::mutex>& lock,
                      const std::exception_ptr& error) noexcept {
    std::exception_ptr failure = error;
    try {
      broken_ = "the collector thread of the " + options_.kind + " failed (" +
                spindle::detail::format_exception(error) + "); the pool is not usable any more";
      failure = std::make_exception_ptr(BrokenProcessPool(*broken_));
    } catch (...) {
      if (!broken_) broken_.emplace();
    }
    abandon_error_ = failure;
    for (auto& worker : workers_)
      ::kill(worker->pid, SIGKILL);
    for (std::unique_ptr<PendingCall> call = take_any_call_locked(); call;
         call = take_any_call_locked()) {
      lock.unlock();
      call->fail(failure);
      call.reset();
      lock.lock();
    }
    close_all_locked();
  }

  std::unique_ptr<PendingCall> take_any_call_locked() noexcept {
    std::unique_ptr<PendingCall> call;
    if (!pending_.empty()) {
      call = std::move(pending_.back());
      pending_.pop_back();
      return call;
    }
    for (auto& worker : workers_) {
      if (!worker->in_flight.empty()) {
        call = std::move(worker->in_flight.back());
        worker->in_flight.pop_back();
        return call;
      }
    }
    return call;
  }

  WorkerPoolOptions options_;
  std::mutex mutex_;
  std::mutex join_mutex_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::deque<std::unique_ptr<PendingCall>> pending_;
  bool started_ = false;
  bool shutdown_ = false;
  bool terminating_ = false;
  std::optional<std::string> broken_;
  // What abandon_locked fails calls with (see round_locked).
  std::exception_ptr abandon_error_;
  int wake_fd_ = -1;
  int worker_counter_ = 0;
  // Per function (PendingCall::target_hash): how long one call runs in a worker, as an
  // exponential average, and whether the calls submitted before it was known to run long
  // have been marked (expect_long_waits_locked, done once per function).
  struct Timing {
    double microseconds;
    bool marked_long = false;
  };
  std::unordered_map<std::size_t, Timing> timings_;
  std::thread collector_;

  // The collector thread's own (nothing else touches these).
  // Calls completed or failed, waiting to be delivered (see deliver()).
  struct Delivery {
    Delivery(std::unique_ptr<PendingCall>&& call, Message&& result, std::exception_ptr error)
        : call(std::move(call)), result(std::move(result)), error(std::move(error)) {}
    std::unique_ptr<PendingCall> call;
    Message result;
    std::exception_ptr error;  // set: the call fails with it
  };
  std::deque<Delivery> delivering_;
  // How many done callbacks wait nested in each other (collect_while_waiting).
  int nested_waits_ = 0;
  // How many calls have been delivered (a waiting callback's round tells whether it did).
  std::uint64_t delivered_ = 0;
  // Installed as the collector thread's futures Helper: a done callback waiting for a
  // future (result(), wait(), as_completed) collects meanwhile instead of sleeping, as the
  // results it may wait for come in on this very thread.
  class CollectorHelper final : public spindle::detail::Helper {
   public:
    explicit CollectorHelper(WorkerPoolCore& core) : core_(core) {}
    bool run_one_queued() override { return core_.collect_while_waiting(); }
    // Never sleeps in the wait: nothing would wake it for this pool's results.
    bool set_waiting(bool waiting) override { return !waiting; }

   private:
    WorkerPoolCore& core_;
  };
  CollectorHelper collector_helper_{*this};
};

bool is_collector_thread(const WorkerPoolCore* pool) noexcept {
  return pool != nullptr && current_collector == pool;
}

bool collect_while_waiting(const WorkerPoolCore* pool) {
  if (!is_collector_thread(pool)) return false;
  // The collector thread is the core's own, and the core outlives it.
  return const_cast<WorkerPoolCore*>(pool)->collect_while_waiting();
}

WorkerPool::WorkerPool(WorkerPoolOptions options)
    : workers_(options.workers), core_(std::make_shared<WorkerPoolCore>(std::move(options))) {}

WorkerPool::~WorkerPool() {
  core_->shutdown_on_owner_destruction();
}

const WorkerPoolCore* WorkerPool::identity() const noexcept {
  return core_.get();
}

void WorkerPool::submit(std::unique_ptr<PendingCall> call) {
  core_->submit(&call, 1);
}

void WorkerPool::submit(std::vector<std::unique_ptr<PendingCall>>& calls) {
  core_->submit(calls.data(), calls.size());
  calls.clear();
}

bool help_waiter(WorkerPoolCore& pool, const spindle::detail::FutureCore* waited) noexcept {
  return pool.help_waiter(waited);
}

void own_borrowed(WorkerPoolCore& pool) noexcept {
  pool.own_borrowed();
}

void WorkerPool::shutdown(bool wait, bool cancel_futures) {
  core_->shutdown(wait, cancel_futures);
}

void WorkerPool::terminate() {
  core_->terminate();
}

}  // namespace spindle::multiprocessing::internal

namespace spindle::multiprocessing {

namespace {
internal::WorkerPoolOptions executor_pool_options(ProcessPoolOptions options) {
  if (detail::current_is_daemon()) {
    throw std::logic_error("daemonic processes are not allowed to have children");
  }
  if (options.max_workers &&
      (*options.max_workers == 0 || internal::wrapped_negative(*options.max_workers))) {
    throw std::invalid_argument("max_workers must be greater than 0");
  }
  if (options.max_tasks_per_child) {
    if (*options.max_tasks_per_child == 0 ||
        internal::wrapped_negative(*options.max_tasks_per_child)) {
      throw std::invalid_argument("max_tasks_per_child must be >= 1");
    }
    if (detail::start_method() == detail::StartMethod::fork) {
      // Python's rule: the workers that replace retired ones would be forked while the
      // pool's threads run, and could inherit a lock one of them held.
      throw std::invalid_argument(
          "max_tasks_per_child is incompatible with the 'fork' start method; use "
          "set_start_method(\"spawn\")");
    }
  }
  internal::WorkerPoolOptions pool;
  pool.workers = options.max_workers.value_or(cpu_count());
  pool.initializer = options.initializer.call();
  pool.max_tasks_per_child = options.max_tasks_per_child.value_or(0);
  pool.on_worker_crash = options.on_worker_crash;
  pool.worker_name_prefix =
      detail::start_method() == detail::StartMethod::spawn ? "SpawnProcess" : "ForkProcess";
  pool.kind = "ProcessPoolExecutor";
  pool.daemon_workers = false;
  return pool;
}
}  // namespace

ProcessPoolExecutor::ProcessPoolExecutor(ProcessPoolOptions options)
    : futures::Executor(true), pool_(executor_pool_options(std::move(options))) {}

// pool_'s destructor shuts it down and waits (except on its collector thread, see there).
ProcessPoolExecutor::~ProcessPoolExecutor() = default;

void ProcessPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  pool_.shutdown(wait, cancel_futures);
}

void ProcessPoolExecutor::enqueue(spindle::detail::FutureCore*) {
  throw std::invalid_argument(
      "ProcessPoolExecutor runs calls in other processes: submit a plain function or a lambda "
      "without captures, with serializable arguments and result");
}

}  // namespace spindle::multiprocessing
