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
#include <mutex>
#include <thread>
#include <unordered_map>

#include "process_internal.hpp"
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
};

class WorkerPoolCore {
  using Completions = std::vector<std::pair<std::unique_ptr<PendingCall>, Message>>;
  using Failures = std::vector<std::pair<std::unique_ptr<PendingCall>, std::exception_ptr>>;

 public:
  explicit WorkerPoolCore(WorkerPoolOptions options) : options_(std::move(options)) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  }
  ~WorkerPoolCore() {
    shutdown(true, false);
    detail::close_fd(wake_fd_);
  }

  // Queues calls[0, count) (all, or none when it throws; taken ones are left empty) and
  // writes what the sockets take.
  void submit(std::unique_ptr<PendingCall>* calls, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      calls[i]->target_hash =
          std::hash<std::string_view>{}(detail::call_target(calls[i]->call.bytes));
    }
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
    if (dispatch_locked()) wake_locked();
  }

  void shutdown(bool wait, bool cancel_futures) {
    std::vector<std::unique_ptr<PendingCall>> cancelled;
    {
      std::lock_guard lock(mutex_);
      shutdown_ = true;
      if (cancel_futures) {
        for (auto& call : pending_) {
          if (!call->started) call->cancel();
        }
        pending_.clear();
      }
      wake_locked();
    }
    if (wait) join_collector();
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

  void terminate() {
    {
      std::lock_guard lock(mutex_);
      shutdown_ = true;
      terminating_ = true;
      wake_locked();
    }
    join_collector();
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
    collector_ = std::thread([this] { collect(); });
  }

  void spawn_locked() {
    const detail::Child child = detail::start_child();
    auto worker = std::make_unique<Worker>();
    worker->pid = child.pid;
    worker->fd = child.fd;
    detail::set_nonblocking(child.fd);
    worker->reader = std::make_unique<detail::FrameReader>(child.fd);
    Message boot;
    {
      detail::Encoder out(boot);
      detail::write(out, static_cast<std::uint8_t>(detail::ChildKind::pool_worker));
      detail::write(out, true);  // daemon, as Python's pool workers
      detail::write(out, options_.worker_name_prefix + "-" + std::to_string(++worker_counter_));
      detail::write(out, static_cast<std::uint64_t>(options_.max_tasks_per_child));
      detail::write(out, options_.initializer != nullptr);
    }
    worker->writer.push(std::move(boot));
    if (options_.initializer) worker->writer.push(copy_message(*options_.initializer));
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
  // some bytes wait for room (the collector must watch for it).
  bool dispatch_locked() {
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
        if (!call->start()) continue;  // cancelled
        call->started = true;
      }
      if (options_.on_worker_crash == OnWorkerCrash::replace_worker) {
        // The call keeps its message, to run again elsewhere if the worker dies before it
        // ran; the frame refers to it until written (the call stays in in_flight as long).
        best->writer.push_view(call->call, copy_fds(call->call.fds));
      } else {
        best->writer.push(std::move(call->call));
      }
      if (best->in_flight.empty()) best->last_event = Clock::now();
      if (trace::enabled()) call->traced_since = trace::Clock::now();
      best->in_flight.push_back(std::move(call));
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

  // A worker's stream ended (or went out of step). Removes it; replaces it when needed.
  void worker_ended_locked(std::size_t index, std::exception_ptr corrupt, Failures& failures) {
    std::unique_ptr<Worker> worker = std::move(workers_[index]);
    workers_.erase(workers_.begin() + static_cast<std::ptrdiff_t>(index));
    worker->reader.reset();
    if (corrupt) ::kill(worker->pid, SIGKILL);
    detail::close_parent_end(worker->fd);
    const int status = reap(worker->pid);
    const bool clean_exit =
        !corrupt && WIFEXITED(status) && WEXITSTATUS(status) == 0 && worker->in_flight.empty();
    if (clean_exit && (worker->retiring || shutdown_)) {
      if (!shutdown_ || !pending_.empty()) replace_locked(failures);  // max_tasks_per_child
      return;
    }
    const std::string what = "a worker process (pid " + std::to_string(worker->pid) + ") of the " +
                             options_.kind + " " + describe_status(status) +
                             (worker->in_flight.empty() ? "" : " while running a call");
    if (!corrupt && options_.on_worker_crash == OnWorkerCrash::break_pool) {
      for (auto& call : worker->in_flight)
        pending_.push_front(std::move(call));
      break_locked(what + "; the pool is not usable any more", failures);
      return;
    }
    if (!worker->in_flight.empty()) {
      failures.emplace_back(std::move(worker->in_flight.front()),
                            corrupt ? corrupt : std::make_exception_ptr(BrokenProcessPool(what)));
      worker->in_flight.pop_front();
      // The calls queued behind it have not run: they go first to the other workers.
      while (!worker->in_flight.empty()) {
        pending_.push_front(std::move(worker->in_flight.back()));
        worker->in_flight.pop_back();
      }
    }
    if (!shutdown_ || !pending_.empty()) replace_locked(failures);
  }

  // Reads what a worker sent; false when its stream ended.
  // Records a traced call's span, from its sending to its result, on the worker's lane.
  void trace_call(const Worker& worker, const PendingCall& call) const {
    if (call.traced_since == trace::Clock::time_point{}) return;
    trace::record({"pid " + std::to_string(worker.pid), "call", options_.kind, call.traced_since,
                   trace::Clock::now()});
  }

  bool read_worker_locked(Worker& worker, Completions& completions, Failures& failures,
                          std::exception_ptr& corrupt) {
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
    } catch (const detail::CorruptMessage&) {
      corrupt = std::current_exception();
      return false;
    } catch (const std::system_error&) {
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

  bool finished_locked() const {
    if (!shutdown_ || !pending_.empty()) return false;
    for (const auto& worker : workers_) {
      if (!worker->in_flight.empty()) return false;
    }
    return true;
  }

  void collect() {
    std::unique_lock lock(mutex_);
    std::vector<pollfd> polled;
    std::vector<Worker*> polled_workers;
    for (;;) {
      Completions completions;
      Failures failures;
      if (terminating_) {
        fail_everything_locked(
            std::make_exception_ptr(BrokenProcessPool("the " + options_.kind + " was terminated")),
            failures);
        broken_ = "the " + options_.kind + " was terminated";
      }
      if (broken_ || finished_locked()) {
        close_all_locked();  // idle workers read the end of stream and exit
        lock.unlock();
        for (auto& [call, error] : failures)
          call->fail(error);
        return;
      }
      polled.assign(1, pollfd{wake_fd_, POLLIN, 0});
      polled_workers.assign(1, nullptr);
      for (auto& worker : workers_) {
        const short events = static_cast<short>(POLLIN | (worker->writer.empty() ? 0 : POLLOUT));
        polled.push_back(pollfd{worker->fd, events, 0});
        polled_workers.push_back(worker.get());
      }
      lock.unlock();
      while (::poll(polled.data(), polled.size(), -1) < 0 && errno == EINTR) {
      }
      lock.lock();
      if (polled[0].revents != 0) {
        std::uint64_t count;
        [[maybe_unused]] const ssize_t got = ::read(wake_fd_, &count, sizeof count);
      }
      for (std::size_t i = 1; i < polled.size(); ++i) {
        if (polled[i].revents == 0 || broken_) continue;
        Worker* worker = polled_workers[i];
        const auto position = std::find_if(workers_.begin(), workers_.end(),
                                           [&](const auto& w) { return w.get() == worker; });
        if (position == workers_.end()) continue;
        std::exception_ptr corrupt;
        bool alive = true;
        if (polled[i].revents & (POLLIN | POLLHUP | POLLERR)) {
          alive = read_worker_locked(*worker, completions, failures, corrupt);
        }
        if (broken_) break;
        if (!alive) {
          worker_ended_locked(static_cast<std::size_t>(position - workers_.begin()), corrupt,
                              failures);
        }
      }
      if (!broken_) dispatch_locked();
      if (!completions.empty() || !failures.empty()) {
        lock.unlock();
        for (auto& [call, result] : completions)
          call->complete(std::move(result));
        for (auto& [call, error] : failures)
          call->fail(error);
        completions.clear();
        failures.clear();
        lock.lock();
      }
    }
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
};

WorkerPool::WorkerPool(WorkerPoolOptions options)
    : workers_(options.workers), core_(std::make_unique<WorkerPoolCore>(std::move(options))) {}

WorkerPool::~WorkerPool() = default;

void WorkerPool::submit(std::unique_ptr<PendingCall> call) {
  core_->submit(&call, 1);
}

void WorkerPool::submit(std::vector<std::unique_ptr<PendingCall>>& calls) {
  core_->submit(calls.data(), calls.size());
  calls.clear();
}

void WorkerPool::own_borrowed() {
  core_->own_borrowed();
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
  if (options.max_workers && *options.max_workers == 0) {
    throw std::invalid_argument("max_workers must be greater than 0");
  }
  if (options.max_tasks_per_child && *options.max_tasks_per_child == 0) {
    throw std::invalid_argument("max_tasks_per_child must be >= 1");
  }
  internal::WorkerPoolOptions pool;
  pool.workers = options.max_workers.value_or(cpu_count());
  pool.initializer = options.initializer.call();
  pool.max_tasks_per_child = options.max_tasks_per_child.value_or(0);
  pool.on_worker_crash = options.on_worker_crash;
  pool.worker_name_prefix =
      detail::start_method() == detail::StartMethod::spawn ? "SpawnProcess" : "ForkProcess";
  pool.kind = "ProcessPoolExecutor";
  return pool;
}
}  // namespace

ProcessPoolExecutor::ProcessPoolExecutor(ProcessPoolOptions options)
    : futures::Executor(true), pool_(executor_pool_options(std::move(options))) {}

ProcessPoolExecutor::~ProcessPoolExecutor() {
  pool_.shutdown(true, false);
}

void ProcessPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  pool_.shutdown(wait, cancel_futures);
}

void ProcessPoolExecutor::enqueue(spindle::detail::FutureCore*) {
  throw std::invalid_argument(
      "ProcessPoolExecutor runs calls in other processes: submit a plain function or a lambda "
      "without captures, with serializable arguments and result");
}

}  // namespace spindle::multiprocessing
