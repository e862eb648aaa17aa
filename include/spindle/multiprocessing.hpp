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

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
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
    core_.send(detail::encode(value));
  }

  // Blocks until a value arrives and returns it. EOFError when the other end is closed and
  // nothing is left; std::logic_error on a write-only end or after close().
  T recv() {
    check_open("recv");
    if (!core_.readable()) throw std::logic_error("recv on a write-only Connection");
    return detail::decode<T>(core_.recv());
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

}  // namespace spindle::multiprocessing

#if __has_include("spindle/detail/multiprocessing_shared.hpp")
#include "spindle/detail/multiprocessing_shared.hpp"
#endif
