// asyncio streams on libuv TCP handles: open_connection, start_server, StreamReader,
// StreamWriter, Server. See docs/design/asyncio.md, "Streams and subprocesses".
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "streams_internal.hpp"

namespace spindle::asyncio {

IncompleteReadError::IncompleteReadError(std::string partial, std::optional<std::size_t> expected)
    : Error(std::to_string(partial.size()) + " bytes read on a total of " +
            (expected ? std::to_string(*expected) : std::string("undefined")) + " expected bytes"),
      partial_(std::move(partial)),
      expected_(expected) {}

std::string SocketAddress::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

namespace internal {

namespace {

// getaddrinfo's errors (UV_EAI_*) are not errnos: they get their own category.
class ResolverCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "getaddrinfo"; }
  std::string message(int code) const override { return uv_strerror(-code); }
};

const ResolverCategory resolver_category;

std::string host_port(const std::string& host, int port) {
  return SocketAddress{host, port}.to_string();
}

}  // namespace

std::system_error uv_system_error(int code, const std::string& what) {
  if (code <= UV_EAI_ADDRFAMILY && code >= UV_EAI_SOCKTYPE - 10)
    return std::system_error(std::error_code(-code, resolver_category), what);
  return std::system_error(std::error_code(-code, std::system_category()), what);
}

bool close_or_adopt(uv_handle_t* handle, uv_close_cb callback) noexcept {
  if (!uv_is_closing(handle)) {
    uv_close(handle, callback);
    return false;
  }
  if ((handle->flags & uv_handle_closed_flag) != 0) return true;
  handle->close_cb = callback;
  return false;
}

void adopt_close(uv_handle_t* handle, uv_close_cb callback) noexcept {
  if (!uv_is_closing(handle))
    uv_close(handle, callback);
  else
    handle->close_cb = callback;
}

// ---- parking ----

void ParkingList::wake_all() noexcept {
  while (head != nullptr) {
    Parked* parked = head;
    parked->unlink();
    parked->wake(parked);
  }
}

void Parked::link() noexcept {
  next_ = list_->head;
  if (next_ != nullptr) next_->previous_ = this;
  previous_ = nullptr;
  list_->head = this;
  linked_ = true;
}

void Parked::unlink() noexcept {
  if (!linked_) return;
  if (previous_ != nullptr)
    previous_->next_ = next_;
  else
    list_->head = next_;
  if (next_ != nullptr) next_->previous_ = previous_;
  previous_ = next_ = nullptr;
  linked_ = false;
}

void Parked::await_suspend(std::coroutine_handle<> frame) {
  link();
  try {
    suspend(this, frame);
  } catch (...) {
    unlink();
    throw;
  }
}

void Parked::await_resume() {
  unlink();
  deliver_pending_cancel();
  if (cancelled_) throw CancelledError(task_->cancel_message());
}

bool Parked::cancel_wait(const std::string&) {
  unlink();
  cancelled_ = true;
  wake(this);
  return true;
}

// ---- Stream ----

namespace {

constexpr std::size_t read_chunk = 64 * 1024;

struct WriteRequest {
  uv_write_t request;
  std::string data;
};

Stream* stream_of(const uv_stream_t* handle) {
  return static_cast<Stream*>(handle->data);
}

void on_write(uv_write_t* request, int status) {
  Stream* stream = stream_of(request->handle);
  delete reinterpret_cast<WriteRequest*>(request);
  --stream->pending_writes;
  stream->after_write(status);
}

void on_shutdown(uv_shutdown_t* request, int status) {
  Stream* stream = stream_of(request->handle);
  delete request;
  --stream->pending_writes;
  stream->after_write(status == UV_ENOTCONN ? 0 : status);
}

void on_connect(uv_connect_t* request, int status) {
  Stream* stream = stream_of(request->handle);
  stream->connect_status = status;
  if (status == UV_ECANCELED) stream->close_handle(true);
  stream->connect_waiters.wake_all();
}

}  // namespace

// Writing to a socket or pipe whose peer is gone raises SIGPIPE, which kills the process by
// default; the error should come back as EPIPE instead. Python ignores SIGPIPE at startup; we
// do the same the first time a stream is made, unless the program installed its own handler.
void ignore_sigpipe_once() noexcept {
  static const bool ignored = [] {
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL)
      std::signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  static_cast<void>(ignored);
}

Stream* Stream::create_tcp(EventLoop& loop, std::size_t limit) {
  ignore_sigpipe_once();
  auto* stream = new Stream(limit);
  if (int rc = uv_tcp_init(uv_loop(loop), &stream->uv.tcp); rc != 0) {
    delete stream;
    throw uv_system_error(rc, "asyncio: cannot create a TCP socket");
  }
  stream->kind = Kind::tcp;
  stream->uv.handle.data = stream;
  return stream;
}

Stream* Stream::create_pipe(EventLoop& loop, std::size_t limit) {
  ignore_sigpipe_once();
  auto* stream = new Stream(limit);
  if (int rc = uv_pipe_init(uv_loop(loop), &stream->uv.pipe, 0); rc != 0) {
    delete stream;
    throw uv_system_error(rc, "asyncio: cannot create a pipe");
  }
  stream->kind = Kind::pipe;
  stream->uv.handle.data = stream;
  return stream;
}

void Stream::release() noexcept {
  if (--references > 0) return;
  if (kind == Kind::none || closed) {
    delete this;
    return;
  }
  if (close_requested) return;  // on_close frees it
  begin_close();
}

void Stream::start_reading() noexcept {
  if (kind == Kind::none || reading || closing || eof) return;
  if (!scratch) scratch = std::make_unique<char[]>(read_chunk);
  int rc = uv_read_start(
      &uv.stream,
      [](uv_handle_t* handle, std::size_t, uv_buf_t* buffer) {
        auto* self = static_cast<Stream*>(handle->data);
        *buffer = uv_buf_init(self->scratch.get(), read_chunk);
      },
      [](uv_stream_t* handle, ssize_t count, const uv_buf_t* buffer) {
        Stream* self = stream_of(handle);
        if (count > 0) {
          self->feed(buffer->base, static_cast<std::size_t>(count));
        } else if (count == UV_EOF) {
          uv_read_stop(handle);
          self->reading = false;
          self->set_eof();
        } else if (count < 0) {
          self->connection_lost(static_cast<int>(count));
        }
      });
  if (rc != 0) {
    connection_lost(rc);
    return;
  }
  reading = true;
}

void Stream::feed(const char* data, std::size_t size) {
  buffer.append(data, size);
  if (reading && buffer.size() > 2 * limit) {
    uv_read_stop(&uv.stream);
    reading = false;
    paused = true;
  }
  read_waiters.wake_all();
}

void Stream::set_eof() noexcept {
  eof = true;
  read_waiters.wake_all();
}

std::string Stream::consume(std::size_t count) {
  std::string out;
  if (count >= buffer.size()) {
    out.swap(buffer);
  } else {
    out.assign(buffer, 0, count);
    buffer.erase(0, count);
  }
  if (paused && buffer.size() <= limit) {
    paused = false;
    start_reading();
  }
  return out;
}

void Stream::write(std::string_view data) {
  if (kind == Kind::none) throw std::logic_error("StreamWriter: not connected");
  if (eof_written) throw std::logic_error("StreamWriter::write() after write_eof()");
  if (closing || lost != 0 || data.empty()) return;
  if (pending_writes == 0 && uv.stream.write_queue_size == 0) {
    uv_buf_t direct = uv_buf_init(const_cast<char*>(data.data()), data.size());
    int written = uv_try_write(&uv.stream, &direct, 1);
    if (written == static_cast<int>(data.size())) return;
    if (written < 0 && written != UV_EAGAIN) {
      connection_lost(written);
      return;
    }
    if (written > 0) data.remove_prefix(static_cast<std::size_t>(written));
  }
  auto* request = new WriteRequest{{}, std::string(data)};
  uv_buf_t queued = uv_buf_init(request->data.data(), request->data.size());
  if (int rc = uv_write(&request->request, &uv.stream, &queued, 1, &on_write); rc != 0) {
    delete request;
    connection_lost(rc);
    return;
  }
  ++pending_writes;
  if (uv.stream.write_queue_size > high_water) write_paused = true;
}

void Stream::write_eof() {
  if (kind == Kind::none) throw std::logic_error("StreamWriter: not connected");
  if (closing || eof_written) return;
  eof_written = true;
  auto* request = new uv_shutdown_t;
  if (int rc = uv_shutdown(request, &uv.stream, &on_shutdown); rc != 0) {
    delete request;
    if (rc != UV_ENOTCONN) connection_lost(rc);
    return;
  }
  ++pending_writes;
}

void Stream::after_write(int status) noexcept {
  if (status == UV_ECANCELED) {
    close_handle(true);  // the handle is closing: by us, or by EventLoop::close
  } else if (status < 0) {
    connection_lost(status);
  }
  if (write_paused && (write_buffer_size() <= low_water || lost != 0)) {
    write_paused = false;
    drain_waiters.wake_all();
  }
  if (close_after_flush && pending_writes == 0) close_handle();
}

void Stream::connection_lost(int code) noexcept {
  if (lost == 0) lost = code;
  if (!error) {
    try {
      error = std::make_exception_ptr(uv_system_error(code, "asyncio: connection lost"));
    } catch (...) {
      error = std::current_exception();
    }
  }
  closing = true;
  if (reading) {
    uv_read_stop(&uv.stream);
    reading = false;
  }
  eof = true;
  read_waiters.wake_all();
  drain_waiters.wake_all();
  close_handle();
}

void Stream::begin_close() noexcept {
  if (kind == Kind::none) {
    closing = true;
    set_eof();
    return;
  }
  if (closing) {
    if (!close_requested && !close_after_flush) close_handle();
    return;
  }
  closing = true;
  if (reading) {
    uv_read_stop(&uv.stream);
    reading = false;
  }
  set_eof();
  if (pending_writes > 0) {
    close_after_flush = true;
    return;
  }
  close_handle();
}

void Stream::close_handle(bool from_cancelled_request) noexcept {
  if (close_requested || kind == Kind::none) return;
  close_requested = true;
  if (from_cancelled_request)
    adopt_close(&uv.handle, &on_close);
  else if (close_or_adopt(&uv.handle, &on_close))
    on_close(&uv.handle);
}

void Stream::on_close(uv_handle_t* handle) {
  auto* self = static_cast<Stream*>(handle->data);
  self->closed = true;
  self->closing = true;
  self->reading = false;
  self->eof = true;
  self->read_waiters.wake_all();
  self->drain_waiters.wake_all();
  self->closed_waiters.wake_all();
  if (self->server) {
    std::shared_ptr<ServerState> server = std::move(self->server);
    server->detach(self);
  }
  if (self->references == 0) delete self;
}

StreamRef::StreamRef(const StreamRef& other) noexcept : stream_(other.stream_) {
  if (stream_ != nullptr) stream_->add_ref();
}

StreamRef::~StreamRef() {
  if (stream_ != nullptr) stream_->release();
}

// ---- reading ----

namespace {

Parked wait_for_data(Stream& stream, const char* function) {
  if (stream.read_waiters.head != nullptr)
    throw std::logic_error(std::string("StreamReader::") + function +
                           "() called while another task is already waiting for incoming data");
  if (stream.paused) {
    stream.paused = false;
    stream.start_reading();
  }
  return Parked(stream.read_waiters);
}

Task<std::string> read_stream(StreamRef stream, std::ptrdiff_t n) {
  stream->check_error();
  if (n == 0) co_return std::string();
  if (n < 0) {
    while (!stream->eof) {
      co_await wait_for_data(*stream, "read");
      stream->check_error();
    }
    co_return stream->consume(stream->buffer.size());
  }
  if (stream->buffer.empty() && !stream->eof) {
    co_await wait_for_data(*stream, "read");
    stream->check_error();
  }
  co_return stream->consume(std::min(stream->buffer.size(), static_cast<std::size_t>(n)));
}

Task<std::string> readexactly_stream(StreamRef stream, std::size_t n) {
  stream->check_error();
  while (stream->buffer.size() < n) {
    if (stream->eof) throw IncompleteReadError(stream->consume(stream->buffer.size()), n);
    co_await wait_for_data(*stream, "readexactly");
    stream->check_error();
  }
  co_return stream->consume(n);
}

Task<std::string> readuntil_stream(StreamRef stream, std::string separator) {
  if (separator.empty()) throw std::invalid_argument("StreamReader::readuntil: empty separator");
  stream->check_error();
  std::size_t offset = 0;
  for (;;) {
    std::size_t found = stream->buffer.find(separator, offset);
    if (found != std::string::npos) {
      if (found > stream->limit)
        throw LimitOverrunError("Separator is found, but chunk is longer than limit", found);
      co_return stream->consume(found + separator.size());
    }
    if (stream->buffer.size() + 1 > separator.size())
      offset = stream->buffer.size() + 1 - separator.size();
    if (offset > stream->limit)
      throw LimitOverrunError("Separator is not found, and chunk exceed the limit", offset);
    if (stream->eof)
      throw IncompleteReadError(stream->consume(stream->buffer.size()), std::nullopt);
    co_await wait_for_data(*stream, "readuntil");
    stream->check_error();
  }
}

Task<std::string> readline_stream(StreamRef stream) {
  try {
    co_return co_await readuntil_stream(stream, "\n");
  } catch (const IncompleteReadError& error) {
    co_return error.partial();
  } catch (const LimitOverrunError& error) {
    if (stream->buffer.compare(error.consumed(), 1, "\n") == 0)
      stream->consume(error.consumed() + 1);
    else
      stream->consume(stream->buffer.size());
    throw;
  }
}

}  // namespace
}  // namespace internal

StreamReader::StreamReader(StreamOptions options) : stream_(new internal::Stream(options.limit)) {
  if (options.limit == 0) throw std::invalid_argument("StreamReader: the limit must be positive");
}

Task<std::string> StreamReader::read(std::ptrdiff_t n) {
  return internal::read_stream(stream_, n);
}
Task<std::string> StreamReader::readline() {
  return internal::readline_stream(stream_);
}
Task<std::string> StreamReader::readexactly(std::size_t n) {
  return internal::readexactly_stream(stream_, n);
}
Task<std::string> StreamReader::readuntil(std::string separator) {
  return internal::readuntil_stream(stream_, std::move(separator));
}
bool StreamReader::at_eof() const {
  return stream_->eof && stream_->buffer.empty();
}
void StreamReader::feed_data(std::string_view data) {
  if (stream_->eof) throw std::logic_error("StreamReader::feed_data after feed_eof");
  stream_->feed(data.data(), data.size());
}
void StreamReader::feed_eof() {
  stream_->set_eof();
}
std::size_t StreamReader::limit() const {
  return stream_->limit;
}

// ---- writing ----

namespace internal {
namespace {

std::system_error connection_reset(const char* what) {
  return std::system_error(std::make_error_code(std::errc::connection_reset), what);
}

Task<> drain_stream(StreamRef stream) {
  if (stream->kind == Stream::Kind::none) co_return;
  if (stream->lost != 0) throw uv_system_error(stream->lost, "StreamWriter::drain");
  if (stream->closing) throw connection_reset("StreamWriter::drain: Connection lost");
  while (stream->write_paused && stream->lost == 0 && !stream->closed)
    co_await Parked(stream->drain_waiters);
  if (stream->lost != 0) throw uv_system_error(stream->lost, "StreamWriter::drain");
  if (stream->closed) throw connection_reset("StreamWriter::drain: Connection lost");
}

Task<> wait_stream_closed(StreamRef stream) {
  while (stream->kind != Stream::Kind::none && !stream->closed)
    co_await Parked(stream->closed_waiters);
}

std::optional<SocketAddress> address_of(const sockaddr_storage& storage) {
  char name[64] = {};
  if (storage.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(storage);
    uv_ip4_name(&in, name, sizeof name);
    return SocketAddress{name, ntohs(in.sin_port)};
  }
  if (storage.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(storage);
    uv_ip6_name(&in6, name, sizeof name);
    return SocketAddress{name, ntohs(in6.sin6_port)};
  }
  return std::nullopt;
}

}  // namespace
}  // namespace internal

void StreamWriter::write(std::string_view data) {
  stream_->write(data);
}
void StreamWriter::writelines(const std::vector<std::string>& lines) {
  for (const std::string& line : lines)
    stream_->write(line);
}
void StreamWriter::write_eof() {
  stream_->write_eof();
}
Task<> StreamWriter::drain() {
  return internal::drain_stream(stream_);
}
void StreamWriter::close() {
  stream_->begin_close();
}
bool StreamWriter::is_closing() const {
  return stream_->closing;
}
Task<> StreamWriter::wait_closed() {
  return internal::wait_stream_closed(stream_);
}

std::optional<SocketAddress> StreamWriter::get_extra_info(std::string_view name) const {
  if (stream_->kind != internal::Stream::Kind::tcp || stream_->closed) return std::nullopt;
  sockaddr_storage storage{};
  int length = sizeof storage;
  int rc = 1;
  if (name == "peername")
    rc = uv_tcp_getpeername(&stream_->uv.tcp, reinterpret_cast<sockaddr*>(&storage), &length);
  else if (name == "sockname")
    rc = uv_tcp_getsockname(&stream_->uv.tcp, reinterpret_cast<sockaddr*>(&storage), &length);
  if (rc != 0) return std::nullopt;
  return internal::address_of(storage);
}

void StreamWriter::set_write_buffer_limits(std::optional<std::size_t> high,
                                           std::optional<std::size_t> low) {
  std::size_t new_high = high ? *high : (low ? 4 * *low : 64 * 1024);
  std::size_t new_low = low ? *low : new_high / 4;
  if (new_high < new_low)
    throw std::invalid_argument("StreamWriter::set_write_buffer_limits: high (" +
                                std::to_string(new_high) + ") must be >= low (" +
                                std::to_string(new_low) + ")");
  stream_->high_water = new_high;
  stream_->low_water = new_low;
  if (stream_->write_buffer_size() > new_high) stream_->write_paused = true;
}

std::size_t StreamWriter::get_write_buffer_size() const {
  return stream_->write_buffer_size();
}

// ---- name resolution and connecting ----

namespace internal {
namespace {

// A getaddrinfo request. If the waiting task goes away first (cancelled, or its frame
// destroyed), the request is cancelled and frees itself in its callback.
struct Resolution {
  uv_getaddrinfo_t request;
  addrinfo* result = nullptr;
  int status = 1;  // 1: pending
  bool abandoned = false;
  ParkingList waiters;
};

struct ResolutionOwner {
  Resolution* resolution;
  ~ResolutionOwner() {
    if (resolution->status == 1) {
      resolution->abandoned = true;
      uv_cancel(reinterpret_cast<uv_req_t*>(&resolution->request));
      return;
    }
    if (resolution->result != nullptr) uv_freeaddrinfo(resolution->result);
    delete resolution;
  }
};

Task<std::vector<sockaddr_storage>> resolve(EventLoop& loop, const std::string& host, int port,
                                            bool passive, const char* function) {
  if (port < 0 || port > 65535)
    throw std::invalid_argument(std::string("asyncio::") + function + ": port " +
                                std::to_string(port) + " is out of range 0-65535");
  std::vector<sockaddr_storage> addresses;
  sockaddr_storage numeric{};
  if (!host.empty() &&
      (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&numeric)) == 0 ||
       uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&numeric)) == 0)) {
    addresses.push_back(numeric);
    co_return addresses;
  }
  ResolutionOwner owner{new Resolution};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  if (passive) hints.ai_flags = AI_PASSIVE;
  const std::string service = std::to_string(port);
  int rc = uv_getaddrinfo(
      uv_loop(loop), &owner.resolution->request,
      [](uv_getaddrinfo_t* request, int status, addrinfo* result) {
        auto* resolution = reinterpret_cast<Resolution*>(request);
        resolution->status = status;
        resolution->result = result;
        if (resolution->abandoned) {
          if (result != nullptr) uv_freeaddrinfo(result);
          delete resolution;
          return;
        }
        resolution->waiters.wake_all();
      },
      host.empty() ? nullptr : host.c_str(), service.c_str(), &hints);
  if (rc != 0) {
    owner.resolution->status = rc;
    throw uv_system_error(rc, std::string("asyncio::") + function + "(" + host_port(host, port) +
                                  "): cannot resolve the host");
  }
  while (owner.resolution->status == 1)
    co_await Parked(owner.resolution->waiters);
  if (owner.resolution->status != 0)
    throw uv_system_error(owner.resolution->status, std::string("asyncio::") + function + "(" +
                                                        host_port(host, port) +
                                                        "): cannot resolve the host");
  for (addrinfo* info = owner.resolution->result; info != nullptr; info = info->ai_next) {
    if (info->ai_family != AF_INET && info->ai_family != AF_INET6) continue;
    sockaddr_storage storage{};
    std::memcpy(&storage, info->ai_addr, info->ai_addrlen);
    addresses.push_back(storage);
  }
  if (addresses.empty())
    throw uv_system_error(UV_EAI_NONAME, std::string("asyncio::") + function + "(" +
                                             host_port(host, port) + "): no address");
  co_return addresses;
}

}  // namespace
}  // namespace internal

Task<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, int port,
                                                            StreamOptions options) {
  using internal::Stream;
  using internal::StreamRef;
  if (options.limit == 0)
    throw std::invalid_argument("open_connection: the limit must be positive");
  EventLoop& loop = get_running_loop();
  std::vector<sockaddr_storage> addresses =
      co_await internal::resolve(loop, host, port, false, "open_connection");
  int last_error = 0;
  for (const sockaddr_storage& address : addresses) {
    StreamRef stream(Stream::create_tcp(loop, options.limit));
    int rc = uv_tcp_connect(&stream->connect_request, &stream->uv.tcp,
                            reinterpret_cast<const sockaddr*>(&address), &internal::on_connect);
    if (rc == 0) {
      while (stream->connect_status == 1)
        co_await internal::Parked(stream->connect_waiters);
      rc = stream->connect_status;
    }
    if (rc == 0) {
      uv_tcp_nodelay(&stream->uv.tcp, 1);
      stream->start_reading();
      co_return std::pair<StreamReader, StreamWriter>(internal::StreamAccess::reader(stream),
                                                      internal::StreamAccess::writer(stream));
    }
    last_error = rc;
  }
  throw internal::uv_system_error(
      last_error, "asyncio::open_connection(" + internal::host_port(host, port) + ")");
}

// ---- servers ----

namespace internal {

// One listening socket. Freed by its close callback; `server` is cleared when the server
// lets go of it.
struct Listener {
  uv_tcp_t tcp;
  ServerState* server = nullptr;
  static void on_close(uv_handle_t* handle) { delete static_cast<Listener*>(handle->data); }
};

void ServerState::close() noexcept {
  if (closed) return;
  closed = true;
  for (Listener* listener : listeners) {
    listener->server = nullptr;
    if (close_or_adopt(reinterpret_cast<uv_handle_t*>(&listener->tcp), &Listener::on_close))
      delete listener;
  }
  listeners.clear();
  serve_waiters.wake_all();
  wake_if_closed();
}

void ServerState::wake_if_closed() noexcept {
  if (closed && clients.empty()) closed_waiters.wake_all();
}

void ServerState::detach(Stream* client) noexcept {
  clients.erase(client);
  wake_if_closed();
}

void ServerState::accept(uv_stream_t* listener) noexcept {
  Stream* client = nullptr;
  try {
    client = Stream::create_tcp(*loop, limit);
  } catch (...) {
    return;  // no memory or no socket: the connection stays in the backlog
  }
  StreamRef stream(client);
  if (uv_accept(listener, &client->uv.stream) != 0) return;
  uv_tcp_nodelay(&client->uv.tcp, 1);
  try {
    client->server = shared_from_this();
    clients.insert(client);
    client->start_reading();
    loop->call_soon([state = shared_from_this(), reader = StreamAccess::reader(stream),
                     writer = StreamAccess::writer(stream)]() mutable {
      Task<> handler = state->loop->create_task(
          state->callback(std::move(reader), std::move(writer)), {"client_connected"});
    });
  } catch (...) {
    // no memory, or the loop is closing: the connection is dropped with `stream`
  }
}

namespace {

Task<> wait_server_closed(std::shared_ptr<ServerState> state) {
  while (!state->closed || !state->clients.empty())
    co_await Parked(state->closed_waiters);
}

Task<> serve_forever_on(std::shared_ptr<ServerState> state) {
  if (state->serving_forever)
    throw std::logic_error("Server::serve_forever: the server is already being served forever");
  if (state->closed) throw std::logic_error("Server::serve_forever: the server is closed");
  state->serving_forever = true;
  std::string message;
  try {
    while (!state->closed)
      co_await Parked(state->serve_waiters);
  } catch (const CancelledError& cancelled) {
    message = cancelled.what();
  }
  state->serving_forever = false;
  state->close();
  co_await wait_server_closed(state);
  throw CancelledError(message);
}

}  // namespace
}  // namespace internal

int Server::port() const {
  return state_->bound_port;
}

std::vector<SocketAddress> Server::sockets() const {
  std::vector<SocketAddress> out;
  for (internal::Listener* listener : state_->listeners) {
    sockaddr_storage storage{};
    int length = sizeof storage;
    if (uv_tcp_getsockname(&listener->tcp, reinterpret_cast<sockaddr*>(&storage), &length) == 0)
      if (auto address = internal::address_of(storage)) out.push_back(*address);
  }
  return out;
}

bool Server::is_serving() const {
  return !state_->closed;
}
void Server::close() {
  state_->close();
}

void Server::close_clients() {
  std::vector<internal::StreamRef> clients;
  for (internal::Stream* client : state_->clients) {
    client->add_ref();
    clients.emplace_back(client);
  }
  for (internal::StreamRef& client : clients)
    client->begin_close();
}

Task<> Server::wait_closed() {
  return internal::wait_server_closed(state_);
}
Task<> Server::serve_forever() {
  return internal::serve_forever_on(state_);
}

Task<Server> start_server(ClientConnected client_connected, std::string host, int port,
                          ServerOptions options) {
  if (!client_connected) throw std::invalid_argument("start_server: empty client_connected");
  if (options.limit == 0) throw std::invalid_argument("start_server: the limit must be positive");
  EventLoop& loop = get_running_loop();
  std::vector<sockaddr_storage> addresses =
      co_await internal::resolve(loop, host, port, true, "start_server");
  auto state = std::make_shared<internal::ServerState>();
  state->loop = &loop;
  state->callback = std::move(client_connected);
  state->limit = options.limit;
  const std::string where = "asyncio::start_server(" + internal::host_port(host, port) + ")";
  for (sockaddr_storage& address : addresses) {
    if (state->bound_port != 0) {  // port 0: every socket on the port the first one got
      if (address.ss_family == AF_INET)
        reinterpret_cast<sockaddr_in&>(address).sin_port = htons(state->bound_port);
      else
        reinterpret_cast<sockaddr_in6&>(address).sin6_port = htons(state->bound_port);
    }
    auto* listener = new internal::Listener;
    if (int rc = uv_tcp_init(internal::uv_loop(loop), &listener->tcp); rc != 0) {
      delete listener;
      throw internal::uv_system_error(rc, where);
    }
    listener->tcp.data = listener;
    listener->server = state.get();
    state->listeners.push_back(listener);
    unsigned flags = address.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
    int rc = uv_tcp_bind(&listener->tcp, reinterpret_cast<const sockaddr*>(&address), flags);
    if (rc == 0)
      rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener->tcp), options.backlog,
                     [](uv_stream_t* handle, int status) {
                       auto* self = static_cast<internal::Listener*>(handle->data);
                       if (status == 0 && self->server != nullptr) self->server->accept(handle);
                     });
    if (rc != 0) throw internal::uv_system_error(rc, where);
    if (state->bound_port == 0) {
      sockaddr_storage bound{};
      int length = sizeof bound;
      uv_tcp_getsockname(&listener->tcp, reinterpret_cast<sockaddr*>(&bound), &length);
      if (auto name = internal::address_of(bound)) state->bound_port = name->port;
    }
  }
  co_return internal::StreamAccess::server(std::move(state));
}

}  // namespace spindle::asyncio
