// spindle::multiprocessing — Python's `multiprocessing` (and
// concurrent.futures.ProcessPoolExecutor) for C++: processes of the same program running
// plain functions, pipes between them, and pools of worker processes.
//
// What crosses a process boundary (arguments, results, messages) is serialized with cereal
// (see spindle/detail/serialization.hpp for the rules); a target is a plain function or a
// lambda without captures, found again in the other process's copy of the program. Workers
// start with "spawn" (re-executing this program, which enters worker mode before main) or
// "fork". docs/design/processes.md explains the design; docs/python-mapping.md the names.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spindle/detail/process_call.hpp"
#include "spindle/detail/process_channel.hpp"
#include "spindle/detail/serialization.hpp"
#include "spindle/detail/timeout.hpp"
#include "spindle/errors.hpp"
#include "spindle/futures.hpp"

namespace spindle {

// recv() on a connection whose other end is closed and whose data is drained (Python's
// EOFError).
class EOFError : public Error {
 public:
  EOFError() : Error("the other end of the connection is closed") {}
  using Error::Error;
};

// An exception raised in another process whose type cannot be rebuilt here: what() is the
// original what(), type_name() the original (demangled) type.
class RemoteError : public Error {
 public:
  RemoteError(std::string type_name, const std::string& message)
      : Error(message), type_name_(std::move(type_name)) {}
  const std::string& type_name() const noexcept { return type_name_; }

 private:
  std::string type_name_;
};

}  // namespace spindle

namespace spindle::futures {
// A worker process of a ProcessPoolExecutor or Pool ended abruptly, or failed to start
// (concurrent.futures.process.BrokenProcessPool).
class BrokenProcessPool : public BrokenExecutor {
 public:
  using BrokenExecutor::BrokenExecutor;
};
}  // namespace spindle::futures

namespace spindle::multiprocessing {

using spindle::EOFError;
using spindle::RemoteError;
using spindle::futures::BrokenProcessPool;

// The number of CPUs in the system (os.cpu_count()). Non-blocking, thread-safe.
std::size_t cpu_count();

// ---------------------------------------------------------------------------------------
// Pipe and Connection
// ---------------------------------------------------------------------------------------

namespace internal {
// The untyped part of a Connection: one end of a socket pair and what it may do.
class ConnectionCore {
 public:
  ConnectionCore() = default;
  ConnectionCore(int fd, bool readable, bool writable) noexcept
      : fd_(fd), readable_(readable), writable_(writable) {}
  ConnectionCore(ConnectionCore&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), readable_(other.readable_), writable_(other.writable_) {}
  ConnectionCore& operator=(ConnectionCore&& other) noexcept;
  ~ConnectionCore() { close(); }

  void send(const detail::Message& message);
  detail::Message recv();
  // recv() of a string or vector of raw elements, straight into `value`. EOFError at end of
  // stream.
  template <class T>
  requires detail::contiguous_raw_v<T>
  void recv_into(T& value) {
    const auto make_room = [](void* context, std::size_t count) {
      T& target = *static_cast<T*>(context);
      target.resize(count);
      return reinterpret_cast<char*>(target.data());
    };
    recv_counted(sizeof(typename T::value_type), make_room, &value);
  }
  bool poll(const spindle::detail::Clock::time_point* deadline);
  void close() noexcept;
  bool closed() const noexcept { return fd_ < 0; }
  bool readable() const noexcept { return readable_; }
  bool writable() const noexcept { return writable_; }
  int fileno() const;

  // For cereal: the descriptor travels with the message (the sender keeps its own).
  void save(cereal::BinaryOutputArchive& archive) const;
  void load(cereal::BinaryInputArchive& archive);

 private:
  void recv_counted(std::size_t element_size, char* (*make_room)(void*, std::size_t),
                    void* context);
  int fd_ = -1;
  bool readable_ = false;
  bool writable_ = false;
};
}  // namespace internal

// One end of a Pipe carrying values of type T (Python's multiprocessing.connection
// .Connection). Move-only; it can be passed as an argument to a Process or a pool task, and
// the other process gets its own handle to the same channel. send() and recv() may run at
// once from two threads; otherwise one thread at a time.
template <class T>
class Connection {
  static_assert(detail::serializable_v<T>, SPINDLE_MP_UNSERIALIZABLE_MESSAGE);

 public:
  // A closed connection (what a moved-from one is).
  Connection() = default;

  // Sends `value`. Blocks while the channel is full (a value larger than the pipe's buffer
  // is sent in pieces as the reader takes them). std::logic_error on a read-only end or
  // after close(); std::system_error (EPIPE) when the other end is gone.
  void send(const T& value) {
    check_open("send");
    if (!core_.writable()) throw std::logic_error("send on a read-only Connection");
    // A string or vector of raw elements is sent straight from `value`, which outlives
    // the (blocking) send.
    if constexpr (detail::contiguous_raw_v<T>) {
      core_.send(detail::encode_borrowing(value));
    } else {
      core_.send(detail::encode(value));
    }
  }

  // Blocks until a value arrives and returns it (looking for it for up to 20 us before it
  // sleeps: an answer that comes at once is taken without a wake-up). A string or vector of
  // raw elements is read straight into the value returned. EOFError when the other end is
  // closed and nothing is left; std::logic_error on a write-only end or after close().
  T recv() {
    check_open("recv");
    if (!core_.readable()) throw std::logic_error("recv on a write-only Connection");
    if constexpr (detail::contiguous_raw_v<T>) {
      T value;
      core_.recv_into(value);
      return value;
    } else {
      return detail::decode<T>(core_.recv());
    }
  }

  // Whether recv() would not block (data, or the other end closed). Waits up to `timeout`
  // (zero: just looks). std::invalid_argument for a negative timeout.
  template <class Rep = std::int64_t, class Period = std::milli>
  bool poll(
      std::chrono::duration<Rep, Period> timeout = std::chrono::duration<Rep, Period>::zero()) {
    check_open("poll");
    if (!core_.readable()) throw std::logic_error("poll on a write-only Connection");
    const auto deadline = spindle::detail::deadline_after(timeout);
    return core_.poll(&deadline);
  }
  // poll(None): blocks until recv() would not block.
  bool poll_forever() {
    check_open("poll");
    return core_.poll(nullptr);
  }

  // Closes this end. Safe to call again.
  void close() noexcept { core_.close(); }
  // Whether this end is closed, may recv() and may send() (Python's closed, readable,
  // writable). Non-blocking.
  bool closed() const noexcept { return core_.closed(); }
  bool readable() const noexcept { return core_.readable(); }
  bool writable() const noexcept { return core_.writable(); }
  // The descriptor (std::logic_error when closed).
  int fileno() const { return core_.fileno(); }

  // cereal: passes the connection to another process.
  template <class Archive>
  void save(Archive& archive) const {
    core_.save(archive);
  }
  template <class Archive>
  void load(Archive& archive) {
    core_.load(archive);
  }

 private:
  template <class U>
  friend std::pair<Connection<U>, Connection<U>> Pipe(bool duplex);
  explicit Connection(internal::ConnectionCore core) : core_(std::move(core)) {}
  void check_open(const char* operation) const {
    if (core_.closed()) {
      throw std::logic_error(std::string(operation) + " on a closed Connection");
    }
  }
  internal::ConnectionCore core_;
};

namespace internal {
std::pair<ConnectionCore, ConnectionCore> make_pipe(bool duplex);
}

// A pair of connected ends (multiprocessing.Pipe). duplex: both ends send and receive;
// otherwise the first only receives and the second only sends. std::system_error when the
// system has no descriptors left.
template <class T>
std::pair<Connection<T>, Connection<T>> Pipe(bool duplex = true) {
  auto [first, second] = internal::make_pipe(duplex);
  return {Connection<T>(std::move(first)), Connection<T>(std::move(second))};
}

// ---------------------------------------------------------------------------------------
// Start methods
// ---------------------------------------------------------------------------------------

// How new processes start (multiprocessing.set_start_method):
//  "spawn" (default): a fresh run of this program (/proc/self/exe) that enters worker mode
//    before main; safe when the parent runs threads.
//  "fork": a copy of the parent; only for programs that know they are single-threaded.
// std::invalid_argument for another name; std::logic_error when the method was already set
// and `force` is false (as Python). Thread-safe.
void set_start_method(std::string_view method, bool force = false);
// "spawn" or "fork". Thread-safe.
std::string get_start_method();
// The start methods this platform offers: {"spawn", "fork"}.
std::vector<std::string> get_all_start_methods();

// ---------------------------------------------------------------------------------------
// Process
// ---------------------------------------------------------------------------------------

// Keyword arguments of Process.
struct ProcessOptions {
  // Empty: "Process-N".
  std::string name{};
  // Empty: inherit current_process().daemon(), as Python. A daemon child is terminated when
  // its parent exits; the parent waits for the others at exit.
  std::optional<bool> daemon{};
};

namespace internal {
struct ProcessState;
}
namespace detail {
void set_current_identity(std::string name, bool daemon);
}

// A child process running target(args...) (multiprocessing.Process). The target is a plain
// function or a lambda without captures; the arguments are serialized when the Process is
// constructed and rebuilt in the child. An exception escaping the target is printed on the
// child's stderr ("Process NAME:" and "TYPE: what()") and gives exit code 1.
//
// Whatever happens to the parent (exit, crash, SIGKILL), the child does not outlive it.
// Every method is thread-safe. Movable; destroying a started Process does not wait (the
// child is still joined at program exit, unless it is a daemon, which is terminated).
class Process {
 public:
  // A process that will run target(args...). The call is serialized now: the target must be
  // a plain function or a lambda without captures, the arguments serializable (compile-time
  // errors say so). Does not start it.
  template <class F, class... A>
  requires(!std::is_same_v<std::remove_cvref_t<F>, ProcessOptions>) explicit Process(F&& target,
                                                                                     A&&... args)
      : Process(ProcessOptions{}, std::forward<F>(target), std::forward<A>(args)...) {}
  template <class F, class... A>
  Process(ProcessOptions options, F&& target, A&&... args)
      : Process(std::move(options), detail::encode_call<false>(target, std::forward<A>(args)...)) {}
  // Moving keeps the child with the new object; every method of the moved-from one is
  // std::logic_error.
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  // Does not wait for the child.
  ~Process();

  // Starts the child. Blocks until it is running (about a millisecond with "spawn").
  // std::logic_error if started before, or when called in a daemon process (daemons may not
  // have children); std::system_error when the system cannot start a process.
  void start();
  // Blocks until the child has ended. std::logic_error before start().
  void join();
  // As join(), giving up after `timeout`; true when the child has ended.
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = spindle::detail::deadline_after(timeout);
    return join_until(&deadline);
  }
  // Started and not ended. Non-blocking.
  bool is_alive() const;
  // Empty while not started or running; the exit status once ended, negative -N when signal
  // N ended it. Non-blocking.
  std::optional<int> exitcode() const;
  // The child's process id; 0 before start().
  int pid() const;
  // Sends SIGTERM (terminate) or SIGKILL (kill). Nothing when the child has ended.
  void terminate();
  void kill();
  // The name (default Process-N), which the child also sees in current_process(). Non-blocking.
  std::string name() const;
  void set_name(std::string name);
  // Whether the child is a daemon: terminated when this process exits, and not allowed
  // children of its own. Defaults to the current process's flag. Non-blocking.
  bool daemon() const;
  // std::logic_error after start().
  void set_daemon(bool daemon);

 private:
  friend Process& current_process();
  friend std::vector<Process*> active_children();
  friend void detail::set_current_identity(std::string name, bool daemon);
  Process(ProcessOptions options, detail::Message call);
  explicit Process(std::shared_ptr<internal::ProcessState> state);
  bool join_until(const spindle::detail::Clock::time_point* deadline);

  std::shared_ptr<internal::ProcessState> state_;
};

// The Process object of this process: "MainProcess" in the parent, the child's own Process
// (name, daemon, pid) in a child. Thread-safe.
Process& current_process();
// The live children started by this process, reaping those that ended (Python's
// active_children()). Only children whose Process object still exists are listed; a pointer
// is valid while that object lives (another thread destroying it is the caller's race).
// Non-blocking; thread-safe.
std::vector<Process*> active_children();

// ---------------------------------------------------------------------------------------
// Worker pools: the machinery shared by ProcessPoolExecutor and Pool
// ---------------------------------------------------------------------------------------

// What a pool does when a worker process dies while it has work (abort, segfault, SIGKILL):
//  break_pool (Python's rule): the pool is broken; every pending call fails with
//    BrokenProcessPool and new submissions throw it.
//  replace_worker: only the call that was running fails (BrokenProcessPool); the calls queued
//    behind it run on a fresh worker that replaces the dead one.
enum class OnWorkerCrash { break_pool, replace_worker };
inline constexpr OnWorkerCrash break_pool = OnWorkerCrash::break_pool;
inline constexpr OnWorkerCrash replace_worker = OnWorkerCrash::replace_worker;

// A function run first in every worker, with its arguments: `.initializer = {function,
// arg...}` (Python's initializer= and initargs= together), or `.initializer = function`.
// The arguments are serialized when the Initializer is made. Copyable.
class Initializer {
 public:
  Initializer() = default;
  template <class F, class... A>
  requires(!std::is_same_v<std::remove_cvref_t<F>, Initializer>)
      Initializer(F&& function, A&&... args)  // NOLINT: converting, for designated initializers
      : call_(std::make_shared<const detail::Message>(
            detail::encode_call<false>(function, std::forward<A>(args)...))) {}
  explicit operator bool() const noexcept { return call_ != nullptr; }
  const std::shared_ptr<const detail::Message>& call() const noexcept { return call_; }

 private:
  std::shared_ptr<const detail::Message> call_;
};

namespace internal {

// A call waiting for, or running on, a worker; completed by the pool's collector thread.
class PendingCall {
 public:
  explicit PendingCall(detail::Message call) : call(std::move(call)) {}
  virtual ~PendingCall() = default;
  // Marks the call running; false if it was cancelled (it is then dropped).
  virtual bool start() = 0;
  // The worker's result message.
  virtual void complete(detail::Message&& result) noexcept = 0;
  virtual void fail(std::exception_ptr error) noexcept = 0;
  // Cancels a call not yet started; true if it is now cancelled. It runs the future's done
  // callbacks, so the pool calls it outside its lock.
  virtual bool cancel() = 0;
  // Whether cancel() can succeed at all (a map chunk cannot be cancelled: it runs).
  virtual bool cancellable() const noexcept { return true; }
  // The pool expects the call to run a millisecond or more (FutureCore::expect_long_wait).
  virtual void expect_long_wait() noexcept {}
  // The future the call completes, if it is one (a waiting thread asks help_waiter by it).
  virtual const spindle::detail::FutureCore* future_core() const noexcept { return nullptr; }

  detail::Message call;
  bool started = false;
  // Which function the call runs (a hash of detail::call_target), set by the pool, which
  // learns how long each function's calls take.
  std::size_t target_hash = 0;
  // When the call was sent to a worker, if tracing was on then (spindle/trace.hpp).
  std::chrono::steady_clock::time_point traced_since{};
};

class WorkerPoolCore;

// On a thread waiting for `waited` (spinning in its wait): if that is the pool's only call
// out, reads its worker's answer and completes it here, rather than leave it to the
// collector thread, whose wake-up costs more than the whole call on a busy machine. Done
// callbacks of the call then run on this thread. True if it completed a call.
bool help_waiter(WorkerPoolCore& pool, const spindle::detail::FutureCore* waited) noexcept;

// The state of a Future<R> for a call of a pool: a thread waiting on it may fetch the
// result itself (help_waiter). The pool is held weakly: a future may outlive its pool.
template <class R>
class PoolFutureState final : public futures::internal::FutureState<R> {
 public:
  explicit PoolFutureState(std::weak_ptr<WorkerPoolCore> pool) noexcept : pool_(std::move(pool)) {}
  bool help_waiter() const noexcept override {
    const std::shared_ptr<WorkerPoolCore> pool = pool_.lock();
    return pool != nullptr && internal::help_waiter(*pool, this);
  }

 private:
  std::weak_ptr<WorkerPoolCore> pool_;
};

// A call whose result goes to a Future<R>.
template <class R>
class FutureCall final : public PendingCall {
 public:
  using PendingCall::PendingCall;
  // A call of `pool` whose waiter may fetch its result itself (PoolFutureState).
  FutureCall(detail::Message call, std::weak_ptr<WorkerPoolCore> pool)
      : PendingCall(std::move(call)),
        future(futures::internal::adopt_future<R>(new PoolFutureState<R>(std::move(pool)))) {}
  bool start() override { return future.set_running_or_notify_cancel(); }
  void complete(detail::Message&& result) noexcept override {
    try {
      if constexpr (std::is_void_v<R>) {
        detail::decode_result<void>(std::move(result));
        future.set_result();
      } else {
        future.set_result(detail::decode_result<R>(std::move(result)));
      }
    } catch (...) {
      fail(std::current_exception());
    }
  }
  void fail(std::exception_ptr error) noexcept override {
    try {
      future.set_exception(std::move(error));
    } catch (...) {  // completed by hand already: that result stands
    }
  }
  bool cancel() override { return future.cancel(); }
  void expect_long_wait() noexcept override {
    futures::internal::state_of(future)->expect_long_wait();
  }
  const spindle::detail::FutureCore* future_core() const noexcept override {
    return futures::internal::state_of(future);
  }

  futures::Future<R> future;
};

// The shared result of one Pool.map: every chunk's results are decoded straight into their
// place in `joined`, so the elements are copied once after they arrive. The submitting thread
// allocates `joined` only after it has handed out every chunk (faulting in a large result
// vector's pages takes a while, and the workers can start meanwhile); results that arrive
// before that wait in `early`. `done` completes when the last chunk is in, or with the first
// failure.
template <class R>
struct MapGather {
  // Whether results can go straight into a preallocated vector (else each chunk's vector is
  // kept and the parts are joined at the end).
  static constexpr bool in_place = std::is_default_constructible_v<R> &&
                                   std::is_move_assignable_v<R> && !std::is_same_v<R, bool>;
  struct Chunk {
    std::size_t index;
    std::size_t offset;
    std::size_t count;
  };

  std::mutex mutex;
  std::vector<R> joined;
  std::vector<std::vector<R>> parts;  // when !in_place
  std::vector<std::pair<Chunk, detail::Message>> early;
  bool allocated = false;
  std::size_t left = 0;
  bool failed = false;
  futures::Future<void> done;

  // A chunk's result message (collector thread).
  void arrive(Chunk chunk, detail::Message&& result) noexcept {
    bool place_now;
    {
      std::lock_guard lock(mutex);
      if (failed) return;
      place_now = allocated;
      if (!place_now) {
        try {
          early.emplace_back(chunk, std::move(result));
          return;
        } catch (...) {  // no room to keep it: the map fails below
        }
      }
    }
    if (!place_now) {
      fail(std::make_exception_ptr(std::bad_alloc()));
      return;
    }
    place_and_count(chunk, std::move(result));
  }
  // Makes room for `size` results in `chunks` chunks, then places those that came already.
  void allocate(std::size_t size, std::size_t chunks) {
    std::vector<R> storage;
    std::vector<std::vector<R>> storage_parts;
    if constexpr (in_place) {
      storage.reserve(size);
      detail::advise_huge_pages(storage.data(), size * sizeof(R));
      storage.resize(size);
    } else {
      storage_parts.resize(chunks);
    }
    std::vector<std::pair<Chunk, detail::Message>> arrived;
    {
      std::lock_guard lock(mutex);
      joined = std::move(storage);
      parts = std::move(storage_parts);
      allocated = true;
      arrived.swap(early);
    }
    for (auto& [chunk, result] : arrived)
      place_and_count(chunk, std::move(result));
  }
  // The results, once `done` succeeded; called once.
  std::vector<R> take() {
    if constexpr (!in_place) {
      for (auto& part : parts)
        std::move(part.begin(), part.end(), std::back_inserter(joined));
      parts.clear();
    }
    return std::move(joined);
  }
  void fail(std::exception_ptr error) noexcept {
    {
      std::lock_guard lock(mutex);
      if (failed) return;
      failed = true;
      early.clear();
    }
    try {
      done.set_exception(std::move(error));
    } catch (...) {
    }
  }

 private:
  void place_and_count(Chunk chunk, detail::Message&& result) noexcept {
    try {
      place(chunk, std::move(result));
    } catch (...) {
      fail(std::current_exception());
      return;
    }
    {
      std::lock_guard lock(mutex);
      if (failed || --left != 0) return;
    }
    done.set_result();
  }
  void place(Chunk chunk, detail::Message&& result) {
    const auto wrong_length = [&] {
      return detail::CorruptMessage("corrupt result message: a map chunk of " +
                                    std::to_string(chunk.count) + " elements has another length");
    };
    if constexpr (in_place && detail::raw_copyable_v<R>) {
      if (result.bytes.empty() ||
          result.bytes[0] != static_cast<char>(detail::ResultStatus::value)) {
        // An exception (rethrown here) or a corrupt message.
        (void)detail::decode_result<std::vector<R>>(std::move(result));
        throw detail::CorruptMessage("corrupt result message: a map chunk without results");
      }
      detail::Decoder in(std::string_view(result.bytes).substr(1), std::exchange(result.fds, {}));
      if (in.size(sizeof(R)) != chunk.count || in.remaining() != chunk.count * sizeof(R))
        throw wrong_length();
      in.raw(joined.data() + chunk.offset, chunk.count * sizeof(R));
      detail::recycle_buffer(std::move(result.bytes));
    } else {
      std::vector<R> part = detail::decode_result<std::vector<R>>(std::move(result));
      if (part.size() != chunk.count) throw wrong_length();
      if constexpr (in_place) {
        std::move(part.begin(), part.end(),
                  joined.begin() + static_cast<std::ptrdiff_t>(chunk.offset));
      } else {
        parts[chunk.index] = std::move(part);
      }
    }
  }
};

// One chunk of a Pool.map.
template <class R>
class MapChunkCall final : public PendingCall {
 public:
  MapChunkCall(detail::Message call, std::shared_ptr<MapGather<R>> gather,
               typename MapGather<R>::Chunk chunk)
      : PendingCall(std::move(call)), gather_(std::move(gather)), chunk_(chunk) {}
  bool start() override { return true; }
  void complete(detail::Message&& result) noexcept override {
    gather_->arrive(chunk_, std::move(result));
  }
  void fail(std::exception_ptr error) noexcept override { gather_->fail(std::move(error)); }
  bool cancel() override { return false; }
  bool cancellable() const noexcept override { return false; }

 private:
  std::shared_ptr<MapGather<R>> gather_;
  typename MapGather<R>::Chunk chunk_;
};

// A count given as a negative number, wrapped around to a huge one.
constexpr bool wrapped_negative(std::size_t count) noexcept {
  return count > static_cast<std::size_t>(PTRDIFF_MAX);
}

struct WorkerPoolOptions {
  std::size_t workers = 1;
  std::shared_ptr<const detail::Message> initializer;
  std::size_t max_tasks_per_child = 0;  // 0: no limit
  OnWorkerCrash on_worker_crash = OnWorkerCrash::break_pool;
  std::string worker_name_prefix;  // workers are PREFIX-N
  std::string kind;                // "ProcessPoolExecutor" or "Pool", for messages
  // As in Python: a Pool's workers are daemons (they may not start children); a
  // ProcessPoolExecutor's are not, so its calls may start processes of their own.
  bool daemon_workers = true;
};

class WorkerPoolCore;

// True on the collector thread of `pool` (a WorkerPool::identity(); nullptr: none), that
// is, in a done callback of one of its calls.
bool is_collector_thread(const WorkerPoolCore* pool) noexcept;
// On the collector thread of `pool`, for a done callback that waits: one round of the
// collector's work (results delivered, calls handed out), polling for up to a millisecond;
// true if it delivered results. Elsewhere false at once. A wait through futures does this
// by itself (the collector is its thread's futures Helper); a wait on anything else (a
// condition variable) must, or it could wait for ever for a result only this thread delivers.
bool collect_while_waiting(const WorkerPoolCore* pool);

// Worker processes and the thread that feeds them and collects their results (the collector;
// it runs the calls' done callbacks).
class WorkerPool {
 public:
  explicit WorkerPool(WorkerPoolOptions options);
  // Blocks: shutdown(true). Destroyed on its collector thread (by a done callback), it does
  // not wait: the collector finishes the calls, then the workers exit and it ends.
  ~WorkerPool();
  // Queues a call. std::logic_error after shutdown; BrokenProcessPool when broken. A call
  // that cannot be sent (more than detail::max_frame_fds descriptors, none left to copy
  // them) fails alone, through its future.
  void submit(std::unique_ptr<PendingCall> call);
  // Queues several calls at once (one lock, fewer system calls), emptying `calls`; when it
  // throws, none was queued.
  void submit(std::vector<std::unique_ptr<PendingCall>>& calls);
  // Stops accepting calls; cancel_futures cancels those not started (a call a dead worker
  // had, waiting to run again, has started); wait blocks until every call has finished and
  // the workers have exited: std::logic_error on the collector thread, which it would wait for.
  void shutdown(bool wait, bool cancel_futures);
  // Kills the workers now; calls not finished fail with BrokenProcessPool. Blocks until the
  // workers are gone, except on the collector thread (as Python's Pool, which does not join
  // its own thread): there the collector stops them once the callback returns.
  void terminate();
  // The pool's core, shared: it outlives this WorkerPool as long as a caller holds it. A map
  // that waits on the collector thread holds it, as a done callback run during that wait
  // may destroy the Pool that owns this WorkerPool.
  std::shared_ptr<WorkerPoolCore> share() const noexcept { return core_; }
  std::size_t workers() const noexcept { return workers_; }
  // Identifies the pool to is_collector_thread and collect_while_waiting.
  const WorkerPoolCore* identity() const noexcept;

 private:
  std::size_t workers_;
  // Shared with the collector thread, which may outlive this (see ~WorkerPool).
  std::shared_ptr<WorkerPoolCore> core_;
};

// Copies the borrowed bytes (detail::Message::borrowed) of every call of `pool` not yet
// written to a worker, so that their owner may free them. Blocks on the pool's lock only.
void own_borrowed(WorkerPoolCore& pool) noexcept;

}  // namespace internal

// ---------------------------------------------------------------------------------------
// Pool
// ---------------------------------------------------------------------------------------

// Keyword arguments of Pool.
struct PoolOptions {
  // Empty: cpu_count(). 0 or negative: std::invalid_argument.
  std::optional<std::size_t> processes{};
  // Runs first in every worker, with its arguments: {.initializer = {function, arg...}}.
  Initializer initializer{};
  // A worker exits after this many tasks (a task is one chunk) and a fresh one replaces it.
  // Empty: no limit. 0 or negative: std::invalid_argument.
  std::optional<std::size_t> maxtasksperchild{};
  // Python's Pool replaces a worker that dies and waits forever for its task; here the task
  // fails with BrokenProcessPool (replace_worker), or the pool breaks (break_pool).
  OnWorkerCrash on_worker_crash = OnWorkerCrash::replace_worker;
};

// The result of an asynchronous Pool call (multiprocessing.pool.AsyncResult). Copyable
// handle; every method is thread-safe. Its waits may be used in a done callback of the same
// pool (where Python's would wait for ever): the pool's results keep coming meanwhile.
template <class R>
class AsyncResult {
 public:
  explicit AsyncResult(futures::Future<R> future) : future_(std::move(future)) {}
  // Blocks until ready; the value, or rethrows the call's exception.
  R get() const { return future_.result(); }
  // As get(); TimeoutError when not ready within `timeout`.
  template <class Rep, class Period>
  R get(std::chrono::duration<Rep, Period> timeout) const {
    return future_.result(timeout);
  }
  // Blocks until ready.
  void wait() const { future_.exception(); }
  // Blocks until ready or `timeout` passed; true when ready.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) const {
    try {
      future_.exception(timeout);
      return true;
    } catch (const spindle::TimeoutError&) {
      return false;
    }
  }
  // Whether the result (or an exception) is in. Non-blocking.
  bool ready() const { return future_.done(); }
  // Whether the call returned without an exception. std::invalid_argument when not ready
  // (Python's ValueError).
  bool successful() const {
    if (!ready()) throw std::invalid_argument("the result is not ready");
    return future_.exception() == nullptr;
  }
  // The underlying future (for as_completed, wait, add_done_callback).
  const futures::Future<R>& future() const noexcept { return future_; }

 private:
  futures::Future<R> future_;
};

namespace detail {

// What a map over F yields for elements E (std::monostate for a void function).
template <class F, class E, bool star>
struct MapRaw {
  using type = std::invoke_result_t<F&, E&>;
};
template <class F, class... P>
struct MapRaw<F, std::tuple<P...>, true> {
  using type = std::invoke_result_t<F&, P&...>;
};
template <class F, class A, class B>
struct MapRaw<F, std::pair<A, B>, true> {
  using type = std::invoke_result_t<F&, A&, B&>;
};
template <class F, class E, bool star>
struct MapResult {
  using Raw = typename MapRaw<F, E, star>::type;
  using type = std::conditional_t<std::is_void_v<Raw>, std::monostate, std::remove_cvref_t<Raw>>;
};

// Runs F over a chunk of elements in a worker; the results as one vector.
template <class F, class E, bool star>
void chunk_thunk(std::uintptr_t address, Decoder& in, Encoder& out) {
  auto target = target_from<F>(address);
  using R = typename MapResult<F, E, star>::type;
  if constexpr (raw_copyable_v<E> && !std::is_same_v<E, bool> && raw_copyable_v<R> &&
                !std::is_same_v<R, bool> && !std::is_same_v<R, std::monostate>) {
    // Raw elements in, raw results out: read in place, and write each result where
    // write(std::vector<R>) would put it (a size, then the elements), with no vector between.
    const std::size_t count = in.size(sizeof(E));
    const char* bytes = in.view(count * sizeof(E));
    out.size(count);
    char* place = out.extend(count * sizeof(R));
    for (std::size_t i = 0; i < count; ++i) {
      E item;
      std::memcpy(&item, bytes + i * sizeof(E), sizeof(E));
      const R result = [&]() -> R {
        if constexpr (star) {
          return std::apply(target, item);
        } else {
          return std::invoke(target, item);
        }
      }();
      std::memcpy(place + i * sizeof(R), &result, sizeof(R));
    }
    return;
  }
  std::vector<R> results;
  auto run = [&](E& item) {
    auto call = [&]() -> decltype(auto) {
      if constexpr (star) {
        return std::apply(target, item);
      } else {
        return std::invoke(target, item);
      }
    };
    if constexpr (std::is_void_v<decltype(call())>) {
      call();
      results.emplace_back();
    } else {
      results.push_back(call());
    }
  };
  if constexpr (raw_copyable_v<E> && !std::is_same_v<E, bool>) {
    // Straight from the message's bytes: no vector of the elements first.
    const std::size_t count = in.size(sizeof(E));
    const char* bytes = in.view(count * sizeof(E));
    results.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      E item;
      std::memcpy(&item, bytes + i * sizeof(E), sizeof(E));
      run(item);
    }
  } else {
    std::vector<E> items;
    read(in, items);
    results.reserve(items.size());
    for (auto& item : items)
      run(item);
  }
  write(out, results);
}

// The element type that travels for map(F, range of V): the function's parameter for a
// plain function, the value otherwise.
template <class F, class V, bool star>
struct ElementOf {
  using type = Shipped<V>;
};
template <class F, class V>
requires is_plain_function_v<F>
struct ElementOf<F, V, false> {
  using type = std::tuple_element_t<0, typename Signature<F>::Parameters>;
};
template <class F, class V>
requires is_plain_function_v<F>
struct ElementOf<F, V, true> {
  using type = typename Signature<F>::Parameters;
};

template <class F, class E, bool star>
constexpr bool check_mappable() {
  static_assert(shippable_target_v<F>, SPINDLE_MP_TARGET_MESSAGE);
  static_assert(serializable_v<E>,
                "spindle::multiprocessing: the elements must be "
                "serializable. " SPINDLE_MP_UNSERIALIZABLE_MESSAGE);
  if constexpr (shippable_target_v<F> && serializable_v<E>) {
    static_assert(
        requires { typename MapRaw<F, E, star>::type; },
        "spindle::multiprocessing: the function cannot be called with an element "
        "(starmap: with the elements of a tuple)");
  }
  return true;
}

// Whether a chunk of [first, last) can borrow its elements' bytes (Message::borrowed).
template <class E, class It>
inline constexpr bool borrowable_chunk_v = (std::contiguous_iterator<It> &&
                                            std::is_same_v<std::iter_value_t<It>, E> &&
                                            raw_copyable_v<E>);

// One chunk of a map as a call message. With `borrow`, elements that are raw bytes in a
// contiguous range are not copied: the message borrows them (the caller keeps the range
// alive until the chunk is written, see WorkerPool::own_borrowed).
template <class F, class E, bool star, class It>
Message encode_chunk(const F& target, It first, It last, bool borrow) {
  Message message;
  if constexpr (borrowable_chunk_v<E, It>) {
    if (!borrow) {
      message.bytes =
          recycled_buffer(static_cast<std::size_t>(std::distance(first, last)) * sizeof(E) + 256);
    }
  }
  Encoder out(message);
  static const FunctionRef thunk =
      locate_function(reinterpret_cast<std::uintptr_t>(&chunk_thunk<F, E, star>));
  write_function_ref(out, thunk);
  if constexpr (is_plain_function_v<F>) {
    write_function_ref(out, locate_function(reinterpret_cast<std::uintptr_t>(target)));
  } else {
    write_function_ref(out, FunctionRef{});
  }
  const auto count = static_cast<std::size_t>(std::distance(first, last));
  if constexpr (borrowable_chunk_v<E, It>) {
    out.size(count);  // what write(std::vector<E>) writes, without the copy
    if (borrow) {
      message.borrowed = {reinterpret_cast<const char*>(std::to_address(first)), count * sizeof(E)};
    } else {
      out.raw(std::to_address(first), count * sizeof(E));
    }
  } else {
    std::vector<E> items;
    items.reserve(count);
    for (; first != last; ++first) {
      items.push_back(static_cast<E>(*first));
    }
    write(out, items);
  }
  return message;
}

// The automatic chunk size: Python's (about four chunks per worker), but no more than about
// 64 KiB of elements, so that large maps stream: workers start on the first chunks while
// later ones are still being encoded, and every buffer stays small enough to be reused.
inline constexpr std::size_t automatic_chunk_bytes = 64 * 1024;
inline std::size_t automatic_chunksize(std::size_t items, std::size_t workers,
                                       std::size_t element_size) {
  if (items == 0) return 1;
  const std::size_t per = workers * 4;
  const std::size_t python = items / per + (items % per != 0 ? 1 : 0);
  return std::max<std::size_t>(1, std::min(python, automatic_chunk_bytes / element_size));
}

// Splits `items` into chunks and calls on_chunk(call message, first element's index, element
// count, total element count) for each, in order; nothing for no elements. The total is known
// before the first chunk: a range that is only an input range is copied first. With
// `borrow`, messages may borrow the bytes of `items` (see encode_chunk).
template <bool star, class F, class Range, class OnChunk>
void for_each_chunk(std::size_t workers, const F& function, Range& items,
                    std::optional<std::size_t> chunksize, bool automatic, bool borrow,
                    OnChunk&& on_chunk) {
  using Target = std::decay_t<F>;
  using E = typename ElementOf<Target, std::ranges::range_value_t<Range>, star>::type;
  static_assert(check_mappable<Target, E, star>());
  if (chunksize && (*chunksize == 0 || internal::wrapped_negative(*chunksize))) {
    throw std::invalid_argument("chunksize must be >= 1");
  }
  const Target target = function;
  auto run = [&](auto first, auto last, bool borrow_items) {
    const std::size_t size = static_cast<std::size_t>(std::distance(first, last));
    const std::size_t step =
        chunksize ? *chunksize : (automatic ? automatic_chunksize(size, workers, sizeof(E)) : 1);
    std::size_t offset = 0;
    while (first != last) {
      const std::size_t count = std::min(step, size - offset);
      auto stop = std::next(first, static_cast<std::ptrdiff_t>(count));
      on_chunk(encode_chunk<Target, E, star>(target, first, stop, borrow_items), offset, count,
               size);
      offset += count;
      first = stop;
    }
  };
  if constexpr (std::ranges::forward_range<Range>) {
    run(std::ranges::begin(items), std::ranges::end(items), borrow);
  } else {
    std::vector<std::ranges::range_value_t<Range>> copy(std::ranges::begin(items),
                                                        std::ranges::end(items));
    run(copy.begin(), copy.end(), false);  // the copy is gone when this returns
  }
}

template <bool star, class F, class Range>
using ChunkResult = typename MapResult<
    std::decay_t<F>,
    typename ElementOf<std::decay_t<F>, std::ranges::range_value_t<Range>, star>::type, star>::type;

// Submits `items` in chunks, one call of F over each chunk's elements; the futures of the
// chunks' result vectors, in order.
template <bool star, class F, class Range, class Submit>
auto submit_chunks(Submit&& submit, std::size_t workers, const F& function, Range& items,
                   std::optional<std::size_t> chunksize, bool automatic) {
  using R = ChunkResult<star, F, Range>;
  std::vector<futures::Future<std::vector<R>>> chunks;
  for_each_chunk<star>(
      workers, function, items, chunksize, automatic, false,
      [&](Message call, std::size_t, std::size_t, std::size_t) {
        auto pending = std::make_unique<internal::FutureCall<std::vector<R>>>(std::move(call));
        chunks.push_back(pending->future);
        submit(std::move(pending));
      });
  return chunks;
}

// Submits `items` in chunks whose results are gathered into one vector (Pool.map). Chunks
// are handed to the pool a few at a time: one lock and one write for several of them. With
// `borrow`, chunks may borrow the bytes of `items` (see encode_chunk).
template <bool star, class F, class Range, class SubmitMany>
auto submit_map(SubmitMany&& submit_many, std::size_t workers, const F& function, Range& items,
                std::optional<std::size_t> chunksize, bool borrow) {
  using R = ChunkResult<star, F, Range>;
  constexpr std::size_t chunks_per_submit = 4;
  auto gather = std::make_shared<internal::MapGather<R>>();
  gather->done.set_running_or_notify_cancel();
  // On an error the chunks already submitted still run and their results are dropped; the
  // error reaches the caller from here, not through `done`.
  auto give_up = [&] {
    gather->fail(std::current_exception());
    (void)gather->done.exception();
  };
  std::vector<std::unique_ptr<internal::PendingCall>> batch;
  auto submit = [&] {
    try {
      submit_many(batch);
    } catch (...) {
      give_up();
      throw;
    }
  };
  std::size_t index = 0;
  std::size_t total = 0;
  for_each_chunk<star>(workers, function, items, chunksize, true, borrow,
                       [&](Message call, std::size_t offset, std::size_t count, std::size_t size) {
                         if (offset == 0) {
                           total = size;
                           gather->left = size / count + (size % count != 0 ? 1 : 0);
                         }
                         batch.push_back(std::make_unique<internal::MapChunkCall<R>>(
                             std::move(call), gather,
                             typename internal::MapGather<R>::Chunk{index++, offset, count}));
                         if (batch.size() == chunks_per_submit || offset + count == size) submit();
                       });
  if (total == 0) {
    gather->done.set_result();
  } else {
    try {
      gather->allocate(total, index);
    } catch (...) {
      give_up();
      throw;
    }
  }
  return gather;
}

}  // namespace detail

// The results of imap / imap_unordered: an input range yielding each result as it is
// needed, blocking for it (rethrowing its exception). Move-only; one thread at a time
// iterates it (as a Python iterator), and its iterators are invalidated by a move.
template <class R>
class IMapResults {
 public:
  // `pool`: the WorkerPool::identity() of the pool running the chunks.
  IMapResults(std::vector<futures::Future<std::vector<R>>> chunks, bool ordered,
              const internal::WorkerPoolCore* pool,
              std::optional<spindle::detail::Clock::time_point> deadline = {})
      : chunks_(std::move(chunks)),
        ordered_(ordered),
        pool_(pool),
        deadline_(deadline),
        order_(std::make_shared<Order>()) {
    if (!ordered_) {
      for (std::size_t i = 0; i < chunks_.size(); ++i) {
        chunks_[i].add_done_callback([order = order_, i](const futures::Future<std::vector<R>>&) {
          std::lock_guard lock(order->mutex);
          order->done.push_back(i);
          order->ready.notify_one();
        });
      }
    }
  }

  IMapResults(IMapResults&&) noexcept = default;
  IMapResults& operator=(IMapResults&&) noexcept = default;
  // Cancels the chunks not started, last to first.
  ~IMapResults() {
    for (std::size_t i = chunks_.size(); i > taken_; --i) {
      chunks_[i - 1].cancel();
    }
  }

  // The next result; blocks until it is ready. std::out_of_range when there is none left
  // (Python's StopIteration). TimeoutError past the deadline (ProcessPoolExecutor::map):
  // then, as Python's, the iteration is over (next() is std::out_of_range) and the chunks
  // not started are cancelled. May be used in a done callback of the same pool.
  R next() { return next_until(nullptr); }
  // As next(), waiting at most `timeout` (IMapIterator.next(timeout)): TimeoutError when the
  // next result is not in by then, and the iteration goes on (call again). A negative
  // timeout is std::invalid_argument.
  template <class Rep, class Period>
  R next(std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = spindle::detail::deadline_after(timeout);
    return next_until(&deadline);
  }
  // True once every result has been taken. Non-blocking.
  bool exhausted() { return position_ >= current_.size() && taken_ == chunks_.size(); }

  class iterator {
   public:
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(IMapResults* owner) : owner_(owner) { advance(); }
    const R& operator*() const { return *value_; }
    iterator& operator++() {
      advance();
      return *this;
    }
    void operator++(int) { advance(); }
    friend bool operator==(const iterator& it, std::default_sentinel_t) {
      return it.owner_ == nullptr;
    }

   private:
    void advance() {
      if (owner_->exhausted()) {
        owner_ = nullptr;
        return;
      }
      value_ = owner_->next();
    }
    IMapResults* owner_ = nullptr;
    std::optional<R> value_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() { return {}; }

 private:
  // next(), waiting until `wait_deadline` if given (a TimeoutError then takes nothing).
  R next_until(const spindle::detail::Clock::time_point* wait_deadline) {
    const auto timed_out = [] {
      return spindle::TimeoutError("the next result did not come within the timeout");
    };
    while (position_ >= current_.size()) {
      if (taken_ == chunks_.size()) throw std::out_of_range("no more results");
      std::size_t index = taken_;
      if (!ordered_) {
        std::unique_lock lock(order_->mutex);
        const auto ready = [&] { return !order_->done.empty(); };
        // On the pool's collector thread, nobody else would deliver the chunk awaited.
        while (!ready() && internal::is_collector_thread(pool_)) {
          if (wait_deadline && spindle::detail::Clock::now() >= *wait_deadline) throw timed_out();
          lock.unlock();
          internal::collect_while_waiting(pool_);
          lock.lock();
        }
        if (wait_deadline == nullptr) {
          order_->ready.wait(lock, ready);
        } else if (!order_->ready.wait_until(lock, *wait_deadline, ready)) {
          throw timed_out();
        }
        index = order_->done.front();
        order_->done.pop_front();
      } else if (wait_deadline != nullptr && (!deadline_ || *wait_deadline < *deadline_)) {
        // (With the map's own deadline first, wait_until_deadline below waits, as next().)
        const auto left = *wait_deadline - spindle::detail::Clock::now();
        try {
          (void)chunks_[index].exception(std::max(left, decltype(left)::zero()));
        } catch (const spindle::TimeoutError&) {
          throw timed_out();
        } catch (const futures::CancelledError&) {
          // Done: result() below says so, as next() does.
        }
      }
      ++taken_;
      if (deadline_) wait_until_deadline(index);
      current_ = chunks_[index].result();
      position_ = 0;
    }
    return std::move(current_[position_++]);
  }

  // Waits for chunk `index` until the deadline. Past it, the iteration is over, as Python's:
  // TimeoutError, and the chunks from `index` on are cancelled. (A TimeoutError the call
  // itself threw is its result, rethrown by result() as any exception.)
  void wait_until_deadline(std::size_t index) {
    const auto left = *deadline_ - spindle::detail::Clock::now();
    try {
      (void)chunks_[index].exception(std::max(left, decltype(left)::zero()));
    } catch (const spindle::TimeoutError&) {
      for (std::size_t i = chunks_.size(); i > index; --i)
        chunks_[i - 1].cancel();
      taken_ = chunks_.size();
      throw;
    }
  }

  struct Order {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<std::size_t> done;
  };
  std::vector<futures::Future<std::vector<R>>> chunks_;
  bool ordered_;
  const internal::WorkerPoolCore* pool_;
  std::optional<spindle::detail::Clock::time_point> deadline_;
  std::shared_ptr<Order> order_;
  std::size_t taken_ = 0;
  std::vector<R> current_;
  std::size_t position_ = 0;
};

// A pool of worker processes (multiprocessing.Pool). Every method is thread-safe. Functions
// are plain functions or lambdas without captures; elements and results serializable.
// Workers are scheduled as SCHED_BATCH (see ProcessPoolExecutor). Results are delivered on
// the pool's collector thread, which runs the done callbacks of their futures. A callback
// may still wait for a result of the same pool (apply, map, starmap, AsyncResult::get and
// wait, imap's next), where Python's would wait for ever: the collector goes on meanwhile.
// join() there, which would wait for that very thread, is std::logic_error.
class Pool {
 public:
  // std::invalid_argument for processes or maxtasksperchild 0 or negative (wrapped around).
  explicit Pool(PoolOptions options = {});
  // Blocks: terminate(), as Python's `with Pool() as pool:` does on exit. Destroyed in a done
  // callback of its own (on its collector thread), it does not wait: the workers are stopped
  // once the callback returns.
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // function(element) for every element, in chunks (chunksize empty: about four chunks per
  // worker, at most about 64 KiB of elements each); blocks for the results, in order. Rethrows the
  // first failed element's exception. std::invalid_argument after close() or terminate() (Python's
  // "Pool not running").
  template <class F, std::ranges::input_range Range>
  auto map(F&& function, Range&& items, std::optional<std::size_t> chunksize = {}) {
    return map_blocking<false>(function, items, chunksize);
  }
  // As map(), not blocking: an AsyncResult for the vector of results.
  template <class F, std::ranges::input_range Range>
  auto map_async(F&& function, Range&& items, std::optional<std::size_t> chunksize = {}) {
    return async_result(submit_map<false>(function, items, chunksize));
  }
  // function(a, b, ...) for every tuple (a, b, ...) in `items`, as map().
  template <class F, std::ranges::input_range Range>
  auto starmap(F&& function, Range&& items, std::optional<std::size_t> chunksize = {}) {
    return map_blocking<true>(function, items, chunksize);
  }
  // As starmap(), not blocking: an AsyncResult for the vector of results.
  template <class F, std::ranges::input_range Range>
  auto starmap_async(F&& function, Range&& items, std::optional<std::size_t> chunksize = {}) {
    return async_result(submit_map<true>(function, items, chunksize));
  }
  // Lazy results in input order (imap) or as they complete (imap_unordered); chunks of
  // `chunksize` elements (default 1).
  template <class F, std::ranges::input_range Range>
  auto imap(F&& function, Range&& items, std::size_t chunksize = 1) {
    auto chunks = submit_chunks<false>(function, items, chunksize, false);
    return IMapResults<typename decltype(chunks.front().result())::value_type>(
        std::move(chunks), true, pool_.identity());
  }
  template <class F, std::ranges::input_range Range>
  auto imap_unordered(F&& function, Range&& items, std::size_t chunksize = 1) {
    auto chunks = submit_chunks<false>(function, items, chunksize, false);
    return IMapResults<typename decltype(chunks.front().result())::value_type>(
        std::move(chunks), false, pool_.identity());
  }
  // function(args...) in a worker; blocks for the result.
  template <class F, class... A>
  auto apply(F&& function, A&&... args) {
    return apply_async(std::forward<F>(function), std::forward<A>(args)...).get();
  }
  // As apply(), not blocking: an AsyncResult. Its done callbacks (through future()) run on
  // the pool's collector thread, or on a thread waiting for it (see ProcessPoolExecutor).
  template <class F, class... A>
  auto apply_async(F&& function, A&&... args) {
    detail::Message call = detail::encode_call<true>(function, std::forward<A>(args)...);
    using R = typename ResultOf<detail::ShippableCall<true, F, A...>, F, A...>::type;
    auto pending = std::make_unique<internal::FutureCall<R>>(std::move(call), pool_.share());
    AsyncResult<R> result(pending->future);
    submit(std::move(pending));
    return result;
  }

  // No more tasks; the workers exit once the submitted ones are done. Non-blocking.
  void close();
  // Stops the workers now; unfinished results fail with BrokenProcessPool. Blocks until the
  // workers are gone, except in a done callback of its own (as Python's, which does not join
  // its own thread): there they are stopped once the callback returns.
  void terminate();
  // Blocks until the workers have exited. std::invalid_argument unless close() or
  // terminate() came first (Python's "Pool is still running"); std::logic_error in a done
  // callback of its own, where it would wait for ever.
  void join();
  // How many worker processes the pool keeps. Non-blocking.
  std::size_t processes() const noexcept { return pool_.workers(); }

 private:
  template <bool shippable, class F, class... A>
  struct ResultOf {
    using type = int;
  };
  template <class F, class... A>
  struct ResultOf<true, F, A...> {
    using type = detail::ShippedResult_t<F, A...>;
  };

  // std::invalid_argument after close() or terminate() (Python's "Pool not running").
  void check_running() const;
  void submit(std::unique_ptr<internal::PendingCall> call);
  void submit(std::vector<std::unique_ptr<internal::PendingCall>>& calls);

  template <bool star, class F, class Range>
  auto submit_chunks(const F& function, Range& items, std::optional<std::size_t> chunksize,
                     bool automatic) {
    return detail::submit_chunks<star>(
        [this](std::unique_ptr<internal::PendingCall> call) { submit(std::move(call)); },
        processes(), function, items, chunksize, automatic);
  }

  template <bool star, class F, class Range>
  auto submit_map(const F& function, Range& items, std::optional<std::size_t> chunksize,
                  bool borrow = false) {
    return detail::submit_map<star>(
        [this](std::vector<std::unique_ptr<internal::PendingCall>>& calls) { submit(calls); },
        processes(), function, items, chunksize, borrow);
  }

  // map and starmap. The caller's elements outlive this call, so chunks send them straight
  // from `items` (no copy). Success means every chunk was written and ran; on any other way
  // out, the pool first copies whatever it has not written yet.
  // Nothing of this Pool is touched after the wait: on the collector thread, a done callback
  // run during it may destroy the Pool (the core stays, held here).
  template <bool star, class F, class Range>
  auto map_blocking(const F& function, Range& items, std::optional<std::size_t> chunksize) {
    const std::shared_ptr<internal::WorkerPoolCore> core = pool_.share();
    try {
      auto gather = submit_map<star>(function, items, chunksize, true);
      gather->done.result();
      return gather->take();
    } catch (...) {
      internal::own_borrowed(*core);
      throw;
    }
  }

  // An AsyncResult for a map's gathered results.
  template <class R>
  AsyncResult<std::vector<R>> async_result(std::shared_ptr<internal::MapGather<R>> gather) const {
    futures::Future<std::vector<R>> all;
    all.set_running_or_notify_cancel();
    // Runs in the thread that completes the last chunk (or the first failure).
    gather->done.add_done_callback([gather, all](const futures::Future<void>& done) mutable {
      if (std::exception_ptr error = done.exception()) {
        all.set_exception(error);
      } else {
        all.set_result(gather->take());
      }
    });
    return AsyncResult<std::vector<R>>(all);
  }

  enum class State { running, closed, terminated };
  mutable std::mutex mutex_;
  State state_ = State::running;
  internal::WorkerPool pool_;
};

// ---------------------------------------------------------------------------------------
// ProcessPoolExecutor
// ---------------------------------------------------------------------------------------

// Keyword arguments of ProcessPoolExecutor.
struct ProcessPoolOptions {
  // Empty: cpu_count(). 0 or negative: std::invalid_argument.
  std::optional<std::size_t> max_workers{};
  // Runs first in every worker; if it throws, the pool is broken (BrokenProcessPool).
  Initializer initializer{};
  // A worker exits after this many calls and a fresh one replaces it. Empty: no limit.
  // 0 or negative: std::invalid_argument; so is any value with the "fork" start method.
  std::optional<std::size_t> max_tasks_per_child{};
  // What a worker dying mid-call does; see OnWorkerCrash.
  OnWorkerCrash on_worker_crash = OnWorkerCrash::break_pool;
};

// A pool of worker processes running submitted calls
// (concurrent.futures.ProcessPoolExecutor). Workers start at the first submit, up to
// max_workers, and run calls in the order they were submitted. submit() and map() are
// thread-safe and do not block (a very large argument may wait for room in a worker's pipe).
// Futures complete on the pool's collector thread, which runs their done callbacks. A done
// callback may wait for another future of the same pool (result(), wait(), as_completed,
// the map iterator): it goes on collecting results while it waits, where Python's would
// wait for ever. shutdown(wait=true) there, which would wait for that very thread, is
// std::logic_error. One exception: a thread waiting (result(), wait()) for the pool's only
// call out may read that call's result itself, which saves a wake-up of the collector, and
// the call's done callbacks then run on that thread (Python promises only a thread of the
// process).
// Workers are scheduled as SCHED_BATCH, so a worker woken with a call never preempts the
// thread still submitting; threads a call starts in a worker inherit that policy.
class ProcessPoolExecutor : public futures::Executor {
 public:
  // std::invalid_argument for max_workers or max_tasks_per_child 0 or negative (wrapped
  // around), and for max_tasks_per_child with the "fork" start method (as Python).
  explicit ProcessPoolExecutor(ProcessPoolOptions options = {});
  // Blocks: shutdown(true). Destroyed in a done callback of its own (on its collector thread),
  // it does not wait: the calls submitted still run, then the workers exit.
  ~ProcessPoolExecutor() override;

  // Schedules function(args...) in a worker; a Future for its result. The function is a plain
  // function or a lambda without captures, the arguments and result serializable (checked at
  // compile time). std::logic_error after shutdown; BrokenProcessPool when broken. Through
  // Executor&, a callable that cannot be shipped is std::invalid_argument instead.
  template <class F, class... A>
  auto submit(F&& function, A&&... args) {
    detail::Message call = detail::encode_call<true>(function, std::forward<A>(args)...);
    using R = typename ResultOf<detail::ShippableCall<true, F, A...>, F, A...>::type;
    auto pending = std::make_unique<internal::FutureCall<R>>(std::move(call), pool_.share());
    futures::Future<R> future = pending->future;
    pool_.submit(std::move(pending));
    return future;
  }

  // fn over one range, in chunks (chunksize empty: as Pool.map, about four chunks per worker
  // of at most about 64 KiB of elements; 0 or negative: std::invalid_argument): a lazy range of
  // the results in input order, which rethrows an element's exception when it is reached and
  // TimeoutError past `timeout` (counted from this call; the iteration then ends and the
  // chunks not started are cancelled, as Python's). Destroying it cancels the chunks not
  // started. Several ranges: Executor::map, one call per element.
  template <class F, std::ranges::input_range Range>
  auto map(F&& function, Range&& items) {
    return map(futures::MapOptions{}, std::forward<F>(function), std::forward<Range>(items));
  }
  template <class F, std::ranges::input_range Range>
  auto map(futures::MapOptions options, F&& function, Range&& items) {
    std::optional<spindle::detail::Clock::time_point> deadline;
    if (options.timeout) deadline = spindle::detail::deadline_after(*options.timeout);
    auto chunks = detail::submit_chunks<false>(
        [this](std::unique_ptr<internal::PendingCall> call) { pool_.submit(std::move(call)); },
        pool_.workers(), function, items, options.chunksize, true);
    return IMapResults<typename decltype(chunks.front().result())::value_type>(
        std::move(chunks), true, pool_.identity(), deadline);
  }
  using futures::Executor::map;

  // cancel_futures cancels the calls not started (a call that a worker which died had queued,
  // and that waits to run again, has started: it runs). wait=true in a done callback of its
  // own is std::logic_error (Python's RuntimeError): it would wait for ever.
  // Blocks (wait = true) until the calls submitted have run and the workers have exited.
  void shutdown(bool wait = true, bool cancel_futures = false) override;
  // How many worker processes the pool keeps. Non-blocking.
  std::size_t max_workers() const noexcept { return pool_.workers(); }

 protected:
  // Only closures reach this (Executor::submit sends shippable calls to submit()).
  void enqueue(spindle::detail::FutureCore* task) override;

 private:
  template <bool shippable, class F, class... A>
  struct ResultOf {
    using type = int;  // a compile-time error has been reported already
  };
  template <class F, class... A>
  struct ResultOf<true, F, A...> {
    using type = detail::ShippedResult_t<F, A...>;
  };

  internal::WorkerPool pool_;
};

}  // namespace spindle::multiprocessing

namespace spindle::futures {
using multiprocessing::ProcessPoolExecutor;
using multiprocessing::ProcessPoolOptions;

namespace internal {
// Executor::submit reaching a ProcessPoolExecutor through Executor&: ships the call when it
// can be shipped (the fallback in futures.hpp refuses the others).
template <class R, class F, class... A>
requires multiprocessing::detail::ShippableCall<true, F, A...> &&
    std::is_same_v<R, multiprocessing::detail::ShippedResult_t<F, A...>>
        Future<R> submit_elsewhere(ElsewhereTag, std::type_identity<R>, Executor& executor,
                                   F&& function, A&&... args) {
  auto* pool = dynamic_cast<multiprocessing::ProcessPoolExecutor*>(&executor);
  if (pool == nullptr) {
    throw std::invalid_argument(
        "this executor runs calls in other processes and is not a "
        "ProcessPoolExecutor: submit to it directly");
  }
  return pool->submit(std::forward<F>(function), std::forward<A>(args)...);
}
}  // namespace internal
}  // namespace spindle::futures

#include "spindle/detail/multiprocessing_shared.hpp"
