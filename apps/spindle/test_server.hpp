// The test HTTP/1.1 server behind `spindle serve`, usable in-process (by `spindle compare` and
// by tests): the stand-in for the public test services the tutorials call.
//
//   spindle_cli::TestServer server({.port = 0});           // listening when this returns
//   std::string url = server.url("/delay/100");            // "http://127.0.0.1:PORT/delay/100"
//   ...
//   server.stop();                                         // or let the destructor do it
//
// Routes (GET and HEAD):
//   /status/{code}  an empty response with that status (200..599)
//   /delay/{ms}     200 after ms milliseconds (0..60000), JSON {"delay_ms": ms}
//   /bytes/{n}      n pseudo-random bytes (0..100 MiB), application/octet-stream
//   /users/{id}     JSON {"id","name","username","email"} for 1..1000000, else 404
//   /files/PATH     the file PATH under the served folder; 404 for anything outside it
//                   (".." segments, encoded or not, symlinks leading out), folders and
//                   missing files
// Connections are kept alive (HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with
// "Connection: keep-alive"). A request line over max_request_line gets 414, a header block over
// max_header_bytes 431, a malformed request 400; after those the connection is closed.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>

namespace spindle_cli {

// Keyword arguments of TestServer.
struct TestServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: a free port
  // The folder /files/ serves; empty: /files/ answers 404.
  std::optional<std::filesystem::path> files{};
  std::size_t max_request_line = 8 * 1024;   // bytes, CRLF included
  std::size_t max_header_bytes = 16 * 1024;  // bytes of the header lines together
  std::size_t max_body_bytes = 1024 * 1024;  // a request body is read and discarded
};

// The server, running an asyncio event loop on a thread of its own. Not copyable or movable.
// Members are safe from any thread.
class TestServer {
 public:
  // Binds and starts listening; blocks until it does. Throws std::system_error naming
  // host:port if it cannot listen (EADDRINUSE...), std::invalid_argument if `files` is given
  // and is not a folder.
  explicit TestServer(TestServerOptions options = {});
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;
  // Stops the server (see stop()). Blocks.
  ~TestServer();

  // The bound port (the free port chosen for port 0).
  int port() const noexcept { return port_; }
  const std::string& host() const noexcept { return host_; }
  // "http://HOST:PORT" followed by `path`.
  std::string url(const std::string& path = "") const;
  // Stops listening, closes every connection (requests in progress are abandoned), and waits
  // for the server's thread to end. Blocks; idempotent.
  void stop();

  // What the server's thread and stop() share (defined in test_server.cpp).
  struct Shared;

 private:
  std::string host_;
  int port_ = 0;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace spindle_cli
