// Test helpers: a tiny HTTP/1.1 server on 127.0.0.1 (one request per connection, a thread per
// connection), a listener that never answers, and a port nothing listens on.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace spindle_test {

// A request as the server received it.
struct ReceivedRequest {
  std::string method;
  std::string target;
  std::string head;  // request line and header fields
  std::string body;
};

// Returns the whole raw response (status line, headers, body) for a request.
using Handler = std::function<std::string(const ReceivedRequest&)>;

// A response with Content-Length and Connection: close.
inline std::string http_response(int status, const std::string& body,
                                 const std::string& extra_headers = {}) {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n" +
         extra_headers + "\r\n" + body;
}

// A socket bound to 127.0.0.1 on a free port; listening when `listen_now`.
inline int bound_loopback_socket(int& port, bool listen_now) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      (listen_now && ::listen(fd, 64) != 0)) {
    ::close(fd);
    throw std::runtime_error("bind/listen failed");
  }
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  port = ntohs(address.sin_port);
  return fd;
}

// A loopback port with nothing listening on it (bound, never listened: connect is refused,
// and no other socket can take the port while this object lives).
class RefusingPort {
 public:
  RefusingPort() { fd_ = bound_loopback_socket(port_, false); }
  ~RefusingPort() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A listener that never accepts: connections complete in the kernel's backlog and then no
// byte ever comes back, so a client times out.
class SilentListener {
 public:
  SilentListener() { fd_ = bound_loopback_socket(port_, true); }
  ~SilentListener() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Serves each connection on its own thread with `handler`. The destructor stops accepting and
// joins every connection thread (blocking until the handlers return).
class LoopbackServer {
 public:
  explicit LoopbackServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = bound_loopback_socket(port_, true);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~LoopbackServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    ::close(listen_fd_);
    for (auto& connection : connections_)
      connection.join();
  }
  int port() const { return port_; }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  void accept_loop() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      connections_.emplace_back([this, fd] { serve(fd); });
    }
  }
  void serve(int fd) {
    std::string data;
    char buffer[65536];
    std::size_t head_end = std::string::npos;
    while (head_end == std::string::npos) {
      const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
      if (got <= 0) {
        ::close(fd);
        return;
      }
      data.append(buffer, static_cast<std::size_t>(got));
      if (data[0] == '\x16') {  // a TLS ClientHello: answer in plain HTTP, as a plain server does
        const std::string refusal = http_response(400, "");
        ::send(fd, refusal.data(), refusal.size(), MSG_NOSIGNAL);
        ::close(fd);
        return;
      }
      head_end = data.find("\r\n\r\n");
    }
    ReceivedRequest request;
    request.head = data.substr(0, head_end);
    request.method = request.head.substr(0, request.head.find(' '));
    const auto target_start = request.head.find(' ') + 1;
    request.target =
        request.head.substr(target_start, request.head.find(' ', target_start) - target_start);
    std::size_t content_length = 0;
    for (const char* name : {"Content-Length: ", "content-length: "})
      if (auto at = request.head.find(name); at != std::string::npos)
        content_length = std::stoul(request.head.substr(at + std::strlen(name)));
    request.body = data.substr(head_end + 4);
    while (request.body.size() < content_length) {
      const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
      if (got <= 0) break;
      request.body.append(buffer, static_cast<std::size_t>(got));
    }
    const std::string response = handler_(request);
    std::size_t sent = 0;
    while (sent < response.size()) {
      const ssize_t put = ::send(fd, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
      if (put <= 0) break;
      sent += static_cast<std::size_t>(put);
    }
    ::shutdown(fd, SHUT_WR);
    while (::recv(fd, buffer, sizeof buffer, 0) > 0) {
    }
    ::close(fd);
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> connections_;  // touched by the acceptor thread only until joined
};

}  // namespace spindle_test
