// The state behind StreamReader/StreamWriter, Server and Process, shared by streams.cpp and
// subprocess.cpp. Loop thread only.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <system_error>
#include <unordered_set>

#include "spindle/asyncio.hpp"
#include "spindle/detail/asyncio_uv.hpp"

namespace spindle::asyncio::internal {

// std::system_error for a libuv error code (a negative errno on Unix; getaddrinfo's own
// codes get the "getaddrinfo" category).
std::system_error uv_system_error(int code, const std::string& what);

// libuv's UV_HANDLE_CLOSED (uv-common.h, unchanged since libuv 1.0; not exported): set once
// a handle's close has completed and its memory is no longer used by libuv.
inline constexpr unsigned uv_handle_closed_flag = 0x2;

// Closes `handle` so that `callback` runs when libuv is done with it. EventLoop::close closes
// every open handle without a callback; if that close is still under way, `callback` takes
// its place; if it is over, returns true: the caller frees the handle's memory now.
// Outside libuv's callbacks only. Inside the callback of a request cancelled by a close
// (UV_ECANCELED), libuv has already marked the handle closed but not yet called its close
// callback: adopt_close then always takes the callback's place.
bool close_or_adopt(uv_handle_t* handle, uv_close_cb callback) noexcept;
void adopt_close(uv_handle_t* handle, uv_close_cb callback) noexcept;

class Parked;

// The tasks parked until something happens to a stream, server or process.
struct ParkingList {
  Parked* head = nullptr;
  // Wakes every parked task (each re-checks what it waits for).
  void wake_all() noexcept;
};

// Parks the current task on a ParkingList until wake_all() (co_await Parked(list)). A
// cancellation unparks it and throws CancelledError at the co_await.
class Parked final : Waiter, TaskSuspension {
 public:
  explicit Parked(ParkingList& list) noexcept : list_(&list) {}
  Parked(const Parked&) = delete;
  Parked& operator=(const Parked&) = delete;
  ~Parked() { unlink(); }
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> frame);
  void await_resume();

 private:
  friend struct ParkingList;
  bool cancel_wait(const std::string&) override;
  void link() noexcept;
  void unlink() noexcept;

  ParkingList* list_;
  Parked* previous_ = nullptr;
  Parked* next_ = nullptr;
  bool linked_ = false;
  bool cancelled_ = false;
};

// One TCP connection or pipe: the libuv handle, the read buffer, the write queue.
//
// Closing, over the flags `closing`, `close_after_flush`, `close_requested`, `closed`:
// clang-format off
//   state     flags                       event                             next
//   open      -                           close() / last ref, writes due    flushing
//   open      -                           close() / last ref, none due      closing
//   open      -                           read/write error, reset           closing
//   flushing  closing, close_after_flush  last write called back, or error  closing
//   any       -                           EventLoop::close closes handle    closing
//   closing   closing, close_requested    close callback                    closed
//   closed    all                         last reference                    freed
// clang-format on
// Readers see the end of the stream from `closing` on; drain and wait_closed wake at `closed`.
//
// Lifetime: counted by StreamRef (readers, writers, the coroutines working on it). The last
// reference closes the handle once the queued writes are done; the close callback frees the
// Stream. If the loop closed the handle itself (EventLoop::close), whoever comes last frees
// it: a cancelled request's callback adopts the loop's close, and a release after the loop
// is gone deletes at once.
class Stream {
 public:
  enum class Kind { none, tcp, pipe };

  // A reader fed by hand: no handle.
  explicit Stream(std::size_t limit) : limit(limit) {}
  static Stream* create_tcp(EventLoop& loop, std::size_t limit);
  static Stream* create_pipe(EventLoop& loop, std::size_t limit);

  void add_ref() noexcept { ++references; }
  void release() noexcept;

  // Reading.
  void start_reading() noexcept;
  void feed(const char* data, std::size_t size);
  void set_eof() noexcept;
  // Takes `count` bytes from the front of the buffer, resuming a paused socket read.
  std::string consume(std::size_t count);
  void check_error() const {
    if (error) std::rethrow_exception(error);
  }

  // Writing.
  void write(std::string_view data);
  void write_eof();
  void begin_close() noexcept;
  // A write or shutdown request was called back with `status`.
  void after_write(int status) noexcept;
  std::size_t write_buffer_size() const noexcept {
    return kind == Kind::none ? 0 : uv.stream.write_queue_size;
  }
  void connection_lost(int code) noexcept;

  union Handle {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } uv;
  Kind kind = Kind::none;
  int references = 1;
  std::size_t limit;

  std::string buffer;
  std::unique_ptr<char[]> scratch;
  std::exception_ptr error;  // rethrown by reads (the connection was reset)
  bool eof = false;
  bool reading = false;
  bool paused = false;
  ParkingList read_waiters;

  std::size_t high_water = 64 * 1024;
  std::size_t low_water = 16 * 1024;
  std::size_t pending_writes = 0;  // uv_write / uv_shutdown requests not yet called back
  int lost = 0;                    // the error that lost the connection (negative), or 0
  bool eof_written = false;
  bool write_paused = false;       // above the high-water mark, not yet back at the low one
  bool closing = false;            // close() called, or the connection is lost
  bool close_after_flush = false;  // close the handle when pending_writes reaches 0
  bool close_requested = false;    // uv_close called (by us, or adopted from the loop's)
  bool closed = false;             // the close callback ran
  ParkingList drain_waiters;
  ParkingList closed_waiters;

  uv_connect_t connect_request;
  int connect_status = 1;  // 1: pending
  ParkingList connect_waiters;

  std::shared_ptr<ServerState> server;  // the server that accepted it, if any

  // Closes the handle now (pending writes are cancelled), or takes over the close that
  // EventLoop::close started, so that on_close frees the Stream. `from_cancelled_request`:
  // called from a request's UV_ECANCELED callback (see adopt_close).
  void close_handle(bool from_cancelled_request = false) noexcept;
  static void on_close(uv_handle_t* handle);

 private:
  ~Stream() = default;
};

struct Listener;

// The state behind a Server: its listening sockets and the connections it accepted.
struct ServerState : std::enable_shared_from_this<ServerState> {
  EventLoop* loop = nullptr;
  ClientConnected callback;
  std::size_t limit = default_stream_limit;
  std::vector<Listener*> listeners;
  std::unordered_set<Stream*> clients;
  int bound_port = 0;
  bool closed = false;
  bool serving_forever = false;
  ParkingList closed_waiters;  // wait_closed
  ParkingList serve_waiters;   // serve_forever

  ServerState() = default;
  ServerState(const ServerState&) = delete;
  ServerState& operator=(const ServerState&) = delete;
  ~ServerState() { close(); }
  // Stops listening. Idempotent.
  void close() noexcept;
  // A connection of this server closed.
  void detach(Stream* client) noexcept;
  void wake_if_closed() noexcept;
  // A client is waiting in `listener`'s backlog: accept it, schedule the callback's task.
  void accept(uv_stream_t* listener) noexcept;
};

// Builds the public handles from internal state.
struct StreamAccess {
  static StreamReader reader(StreamRef stream) { return StreamReader(std::move(stream)); }
  static StreamWriter writer(StreamRef stream) { return StreamWriter(std::move(stream)); }
  static const StreamRef& ref(const StreamReader& reader) { return reader.stream_; }
  static const StreamRef& ref(const StreamWriter& writer) { return writer.stream_; }
  static Server server(std::shared_ptr<ServerState> state) { return Server(std::move(state)); }
  static Process process(std::shared_ptr<ProcessState> state) { return Process(std::move(state)); }
};

}  // namespace spindle::asyncio::internal
