// asyncio streams on TCP and subprocesses (Python's asyncio.open_connection, start_server,
// StreamReader, StreamWriter, create_subprocess_exec), on libuv handles of the running loop.
// Included by <spindle/asyncio.hpp>; do not include directly.
//
//   asyncio::Task<> client() {
//     auto [reader, writer] = co_await asyncio::open_connection("localhost", 8888);
//     writer.write("hello\n");
//     co_await writer.drain();
//     std::string line = co_await reader.readline();
//     writer.close();
//     co_await writer.wait_closed();
//   }
//
// Bytes are std::string (Python's bytes). Everything here is used on the loop's thread;
// nothing blocks the thread; a cancelled task stops waiting at once and releases what it
// held. Connection failures are std::system_error carrying the errno (Python's OSError
// family: ConnectionRefusedError is ECONNREFUSED...), naming the host and port at fault.
// As Python does at startup, the first stream made sets SIGPIPE to SIG_IGN (unless the
// program installed a handler), so that a write to a vanished peer fails with EPIPE instead
// of killing the process.
// docs/design/asyncio.md ("Streams and subprocesses") describes who owns the libuv handles.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spindle::asyncio {

// The default buffer limit of a StreamReader (Python's 64 KiB): readuntil/readline fail
// with LimitOverrunError beyond it, and reading from the socket pauses at twice as much.
inline constexpr std::size_t default_stream_limit = 64 * 1024;

// readexactly/readuntil reached the end of the stream first (asyncio.IncompleteReadError).
class IncompleteReadError : public spindle::Error {
 public:
  IncompleteReadError(std::string partial, std::optional<std::size_t> expected);
  // The bytes read before the end of the stream.
  const std::string& partial() const noexcept { return partial_; }
  // How many bytes were wanted; empty for readuntil (Python: None).
  std::optional<std::size_t> expected() const noexcept { return expected_; }

 private:
  std::string partial_;
  std::optional<std::size_t> expected_;
};

// readuntil/readline found no separator within the reader's limit (asyncio.LimitOverrunError).
// The data stays in the buffer (readline drops it, as Python's does).
class LimitOverrunError : public spindle::Error {
 public:
  LimitOverrunError(const std::string& message, std::size_t consumed)
      : Error(message), consumed_(consumed) {}
  // How many bytes may be consumed before the limit is hit.
  std::size_t consumed() const noexcept { return consumed_; }

 private:
  std::size_t consumed_;
};

// A socket address (Python's (host, port) tuple).
struct SocketAddress {
  std::string host;  // numeric: "127.0.0.1", "::1"
  int port = 0;
  // "127.0.0.1:8888", "[::1]:8888".
  std::string to_string() const;
  friend bool operator==(const SocketAddress&, const SocketAddress&) = default;
};

// Keyword arguments of open_connection.
struct StreamOptions {
  std::size_t limit = default_stream_limit;  // the StreamReader's buffer limit
};

// Keyword arguments of start_server.
struct ServerOptions {
  std::size_t limit = default_stream_limit;  // each client's StreamReader's buffer limit
  int backlog = 100;                         // listen() backlog
};

namespace internal {
class Stream;
struct ServerState;
struct ProcessState;
struct StreamAccess;

// A counted reference to a Stream (the state a StreamReader and its StreamWriter share).
// The last reference closes the libuv handle.
class StreamRef {
 public:
  StreamRef() noexcept = default;
  explicit StreamRef(Stream* adopted) noexcept : stream_(adopted) {}
  StreamRef(const StreamRef& other) noexcept;
  StreamRef(StreamRef&& other) noexcept : stream_(std::exchange(other.stream_, nullptr)) {}
  StreamRef& operator=(StreamRef other) noexcept {
    std::swap(stream_, other.stream_);
    return *this;
  }
  ~StreamRef();
  Stream* get() const noexcept { return stream_; }
  Stream* operator->() const noexcept { return stream_; }
  Stream& operator*() const noexcept { return *stream_; }
  explicit operator bool() const noexcept { return stream_ != nullptr; }

 private:
  Stream* stream_ = nullptr;
};
}  // namespace internal

// The reading half of a connection or pipe (asyncio.StreamReader). A copyable handle: copies
// share one buffer. At most one task may wait for data at a time (std::logic_error, as
// Python's RuntimeError). Loop thread only; the reads suspend the calling task, never the
// thread. A connection error (reset by the peer) is rethrown by every read after it.
class StreamReader {
 public:
  // A reader fed by hand (feed_data/feed_eof), not connected to anything.
  explicit StreamReader(StreamOptions options = {});

  // Up to n bytes, at least one unless the stream is at its end ("" then). n < 0: everything
  // up to the end of the stream. n == 0: "" at once.
  Task<std::string> read(std::ptrdiff_t n = -1);
  // A line, "\n" included; at the end of the stream, the partial last line or "".
  // LimitOverrunError when no "\n" comes within the limit (the buffered data is dropped;
  // Python raises ValueError there).
  Task<std::string> readline();
  // Exactly n bytes; IncompleteReadError (with the bytes read) if the stream ends first.
  Task<std::string> readexactly(std::size_t n);
  // The data up to and including `separator`; IncompleteReadError at the end of the stream,
  // LimitOverrunError if the separator is not within the limit. std::invalid_argument if
  // `separator` is empty.
  Task<std::string> readuntil(std::string separator = "\n");
  // True once the end of the stream was received and the buffer is empty.
  bool at_eof() const;
  // For a reader built by hand: appends data / marks the end of the stream.
  void feed_data(std::string_view data);
  void feed_eof();
  std::size_t limit() const;

 private:
  explicit StreamReader(internal::StreamRef stream) noexcept : stream_(std::move(stream)) {}
  internal::StreamRef stream_;
  friend struct internal::StreamAccess;
};

// The writing half of a connection or pipe (asyncio.StreamWriter). A copyable handle. Loop
// thread only. write() never blocks: data the socket does not take at once is queued, and
// drain() waits while the queue is above the high-water mark (64 KiB by default) until it is
// back at the low-water mark (16 KiB).
class StreamWriter {
 public:
  // Queues data for sending. Ignored once the writer is closing or the connection is lost
  // (as Python's transport does; drain() reports the loss). std::logic_error after
  // write_eof().
  void write(std::string_view data);
  void writelines(const std::vector<std::string>& lines);
  // Sends the end of the stream (shutdown of the write side) once the queue is written.
  void write_eof();
  bool can_write_eof() const noexcept { return true; }
  // Waits until the write queue is below the low-water mark (at once if it is not above the
  // high-water mark). Throws the connection's error (std::system_error, ECONNRESET / EPIPE)
  // if it was lost, or ECONNRESET ("Connection lost") once the writer is closing.
  Task<> drain();
  // Closes the connection once the queued data is written. Idempotent; does not block.
  void close();
  bool is_closing() const;
  // Waits until the connection is closed. Never throws the connection's error.
  Task<> wait_closed();
  // "peername" / "sockname" of a TCP connection; empty for any other name or a pipe
  // (Python: None).
  std::optional<SocketAddress> get_extra_info(std::string_view name) const;
  // The transport's write-buffer limits: high defaults to 64 KiB, low to high / 4.
  // std::invalid_argument unless high >= low.
  void set_write_buffer_limits(std::optional<std::size_t> high = {},
                               std::optional<std::size_t> low = {});
  // Bytes queued and not yet taken by the kernel.
  std::size_t get_write_buffer_size() const;

 private:
  explicit StreamWriter(internal::StreamRef stream) noexcept : stream_(std::move(stream)) {}
  internal::StreamRef stream_;
  friend struct internal::StreamAccess;
};

// Connects to host:port over TCP (asyncio.open_connection). `host` is resolved through
// libuv's getaddrinfo ("localhost" works), each address tried in turn. Throws
// std::system_error with the errno (ECONNREFUSED...) and "host:port" in its message.
Task<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, int port,
                                                            StreamOptions options = {});

// What start_server calls for each client, as a new task (Python's client_connected_cb).
// The connection is closed when both handles are dropped, i.e. when the task finishes
// unless it kept them.
using ClientConnected = std::function<Task<>(StreamReader, StreamWriter)>;

// A listening TCP server (asyncio.Server). A copyable handle; dropping the last handle
// closes the listening sockets (not the connections). Loop thread only.
class Server {
 public:
  // The bound port of the first socket (the free port chosen for port 0).
  int port() const;
  // The addresses listened on.
  std::vector<SocketAddress> sockets() const;
  bool is_serving() const;
  // Stops listening; connections already accepted go on. Idempotent.
  void close();
  // Closes every accepted connection (Python 3.13's close_clients).
  void close_clients();
  // Waits until the server is closed and every accepted connection is closed.
  Task<> wait_closed();
  // Serves until cancelled or close(): then closes the server, waits as wait_closed() does
  // and throws CancelledError. std::logic_error if already serving forever or closed.
  Task<> serve_forever();

 private:
  explicit Server(std::shared_ptr<internal::ServerState> state) noexcept
      : state_(std::move(state)) {}
  std::shared_ptr<internal::ServerState> state_;
  friend struct internal::StreamAccess;
};

// Listens on host:port (asyncio.start_server) and serves at once: each client runs
// `client_connected(reader, writer)` as a task. Port 0 picks a free port (Server::port()).
// An empty host listens on every interface. Throws std::system_error (EADDRINUSE...) naming
// host:port.
Task<Server> start_server(ClientConnected client_connected, std::string host, int port,
                          ServerOptions options = {});

// ---- subprocesses ----

namespace subprocess {
// Where a child's standard stream goes.
enum class Redirect {
  inherit,  // the parent's own stream (Python: None)
  pipe,     // a pipe: Process::in() / out() / err()
  devnull,  // /dev/null
  stdout_,  // stderr only: wherever stdout goes
};
inline constexpr Redirect inherit = Redirect::inherit;
inline constexpr Redirect PIPE = Redirect::pipe;
inline constexpr Redirect DEVNULL = Redirect::devnull;
inline constexpr Redirect STDOUT = Redirect::stdout_;
}  // namespace subprocess

// Keyword arguments of create_subprocess_exec.
struct SubprocessOptions {
  subprocess::Redirect in = subprocess::inherit;
  subprocess::Redirect out = subprocess::inherit;
  subprocess::Redirect err = subprocess::inherit;
  std::optional<std::string> cwd{};               // empty: the parent's
  std::optional<std::vector<std::string>> env{};  // "NAME=value" each; empty: the parent's
  std::size_t limit = default_stream_limit;       // of the out()/err() readers
};

// What Process::communicate returns; a stream that is not a pipe gives "".
struct Communicated {
  std::string out;
  std::string err;
};

// A child process started by create_subprocess_exec (asyncio.subprocess.Process). Move-only.
// Loop thread only. Dropping the last handle of a running child kills it (SIGKILL) and
// reaps it, as Python does when the transport is closed.
class Process {
 public:
  int pid() const;
  // The pipes (std::logic_error if that stream is not subprocess::PIPE).
  StreamWriter& in();
  StreamReader& out();
  StreamReader& err();
  // Writes `input` to stdin (if given) and closes it, reads stdout and stderr to their end,
  // and waits for the child to exit. A broken stdin pipe is ignored (as Python does).
  // std::logic_error if input is given and stdin is not a pipe.
  Task<Communicated> communicate(std::optional<std::string> input = {});
  // Waits for the child to exit; its return code (-N if signal N ended it).
  Task<int> wait();
  // The return code once the child has exited, else empty (Python: None).
  std::optional<int> returncode() const;
  // Sends a signal (no effect once the child has exited); terminate = SIGTERM, kill = SIGKILL.
  void send_signal(int signal);
  void terminate();
  void kill();

 private:
  explicit Process(std::shared_ptr<internal::ProcessState> state) noexcept
      : state_(std::move(state)) {}
  std::shared_ptr<internal::ProcessState> state_;
  friend struct internal::StreamAccess;
};

// Starts `program` (looked up on PATH) with `args` (argv[1:]) (asyncio.create_subprocess_exec).
// std::system_error (ENOENT...) naming the program if it cannot be started.
Task<Process> create_subprocess_exec(std::string program, std::vector<std::string> args = {},
                                     SubprocessOptions options = {});
// Runs `command` with /bin/sh -c (asyncio.create_subprocess_shell).
Task<Process> create_subprocess_shell(std::string command, SubprocessOptions options = {});

}  // namespace spindle::asyncio
