// spindle serve: every route and every bad input, checked with the real curl command and with
// raw sockets on 127.0.0.1, against the server started in-process and as `spindle serve`;
// and wrk against it for a while with no error and no growth in memory.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>

#include "command_runner.hpp"
#include "test_server.hpp"

using spindle_test::TemporaryFolder;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

// Runs a shell command line; its stdout.
std::string shell(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed: " + command);
  std::string out;
  char buffer[4096];
  while (const std::size_t got = std::fread(buffer, 1, sizeof buffer, pipe))
    out.append(buffer, got);
  ::pclose(pipe);
  return out;
}

struct CurlResult {
  int status = 0;
  std::string body;
  std::string headers;
};

// curl -sS --path-as-is URL (the path sent exactly as given), with `extra` options.
CurlResult curl(const std::string& url, const std::string& extra = "") {
  TemporaryFolder folder;
  const auto body = folder / "body";
  const auto headers = folder / "headers";
  const std::string out = shell("curl -sS --path-as-is " + extra + " -o '" + body.string() +
                                "' -D '" + headers.string() + "' -w '%{http_code}' '" + url + "'");
  return {std::atoi(out.c_str()), spindle_test::read_file(body), spindle_test::read_file(headers)};
}

// A connection to the server on 127.0.0.1:port, reads timing out after 5 s.
int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    throw std::runtime_error("connect failed");
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

void send_all(int fd, const std::string& data) {
  for (std::size_t sent = 0; sent < data.size();) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server closed early: what it answered is still readable
    sent += static_cast<std::size_t>(n);
  }
}

// Reads until the server closes the connection; `closed` tells whether it did (false: the
// read timed out).
std::string read_to_end(int fd, bool* closed) {
  std::string response;
  char buffer[65536];
  for (;;) {
    const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
    if (got <= 0) {
      if (closed != nullptr) *closed = got == 0 || errno == ECONNRESET;
      break;
    }
    response.append(buffer, static_cast<std::size_t>(got));
  }
  return response;
}

// Sends `request` on a new connection, ends the sending side, and reads until the server
// closes the connection.
std::string exchange(int port, const std::string& request, bool* closed = nullptr) {
  const int fd = connect_to(port);
  send_all(fd, request);
  ::shutdown(fd, SHUT_WR);
  std::string response = read_to_end(fd, closed);
  ::close(fd);
  return response;
}

// Sends `request`, reads the first bytes of the answer and leaves.
void abandon(int port, const std::string& request) {
  const int fd = connect_to(port);
  send_all(fd, request);
  char buffer[1024];
  (void)::recv(fd, buffer, sizeof buffer, 0);
  ::close(fd);
}

std::string status_line(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

long rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

class Serve : public ::testing::Test {
 protected:
  Serve() {
    site.write("root/a.txt", "alpha\n");
    site.write("root/sub/b.json", "{\"b\": 2}\n");
    site.write("secret.txt", "outside\n");
    std::filesystem::create_symlink(site / "secret.txt", site / "root/link_out");
    std::filesystem::create_symlink(site / "root", site / "root/sub/link_up");
    std::filesystem::create_symlink("a.txt", site / "root/link_in");
    server.emplace(spindle_cli::TestServerOptions{.files = site / "root"});
  }
  std::string url(const std::string& path) const { return server->url(path); }

  TemporaryFolder site;
  std::optional<spindle_cli::TestServer> server;
};

}  // namespace

TEST_F(Serve, StatusRouteAnswersTheCodeAsked) {
  for (int code : {200, 201, 204, 400, 404, 418, 500, 503, 599}) {
    const auto result = curl(url("/status/" + std::to_string(code)));
    EXPECT_EQ(result.status, code);
    EXPECT_EQ(result.body, "");
  }
}

TEST_F(Serve, StatusRouteRejectsCodesOutOfRange) {
  for (const char* code : {"99", "600", "abc", "", "200x", "-200"})
    EXPECT_EQ(curl(url(std::string("/status/") + code)).status, 400) << code;
}

TEST_F(Serve, DelayRouteAnswersAfterTheDelay) {
  const auto start = std::chrono::steady_clock::now();
  const auto result = curl(url("/delay/200"));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(nlohmann::json::parse(result.body)["delay_ms"], 200);
  EXPECT_GE(elapsed, std::chrono::milliseconds(200));
  EXPECT_EQ(curl(url("/delay/60001")).status, 400);
  EXPECT_EQ(curl(url("/delay/x")).status, 400);
}

TEST_F(Serve, DelayedRequestsOverlap) {
  // Ten requests of 500 ms in parallel would take 5 s one after another.
  const auto start = std::chrono::steady_clock::now();
  std::string urls;
  for (int i = 0; i < 10; ++i)
    urls += " -o /dev/null '" + url("/delay/500") + "'";
  const std::string codes = shell(
      "curl -sS --no-progress-meter --parallel --parallel-max 10 -w '%{http_code}\\n'" + urls);
  std::string expected;
  for (int i = 0; i < 10; ++i)
    expected += "200\n";
  EXPECT_EQ(codes, expected);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
}

TEST_F(Serve, BytesRouteSendsThatManyBytes) {
  for (long size : {0L, 1L, 65536L, 65537L, 3L << 20}) {
    const auto result = curl(url("/bytes/" + std::to_string(size)));
    EXPECT_EQ(result.status, 200);
    ASSERT_EQ(result.body.size(), static_cast<std::size_t>(size));
    for (std::size_t i = 0; i < result.body.size(); i += 4099)
      ASSERT_EQ(static_cast<unsigned char>(result.body[i]), (i * 7919) % 251) << i;
  }
  EXPECT_EQ(curl(url("/bytes/104857601")).status, 400);
  EXPECT_EQ(curl(url("/bytes/ten")).status, 400);
}

TEST_F(Serve, UsersRouteAnswersJson) {
  const auto result = curl(url("/users/42"));
  EXPECT_EQ(result.status, 200);
  EXPECT_NE(result.headers.find("Content-Type: application/json"), std::string::npos);
  const auto user = nlohmann::json::parse(result.body);
  EXPECT_EQ(user["id"], 42);
  EXPECT_EQ(user["name"], "User 42");
  EXPECT_EQ(user["username"], "user42");
  EXPECT_EQ(user["email"], "user42@example.com");
  EXPECT_EQ(curl(url("/users/0")).status, 404);
  EXPECT_EQ(curl(url("/users/1000001")).status, 404);
  EXPECT_EQ(curl(url("/users/bob")).status, 404);
}

TEST_F(Serve, FilesRouteServesTheFolder) {
  auto result = curl(url("/files/a.txt"));
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body, "alpha\n");
  EXPECT_NE(result.headers.find("Content-Type: text/plain"), std::string::npos);
  result = curl(url("/files/sub/b.json"));
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body, "{\"b\": 2}\n");
  EXPECT_EQ(curl(url("/files/%61.txt")).body, "alpha\n");
  EXPECT_EQ(curl(url("/files/link_in")).body, "alpha\n");    // a symlink inside is followed
  EXPECT_EQ(curl(url("/files/a.txt?x=1")).body, "alpha\n");  // the query is ignored
}

TEST_F(Serve, FilesRouteAnswers404ForFoldersAndMissingFiles) {
  EXPECT_EQ(curl(url("/files/missing.txt")).status, 404);
  EXPECT_EQ(curl(url("/files/sub")).status, 404);
  EXPECT_EQ(curl(url("/files/")).status, 404);
  EXPECT_EQ(curl(url("/nowhere")).status, 404);
}

TEST_F(Serve, FilesRouteNeverServesAnythingOutsideItsFolder) {
  for (const char* path :
       {"/files/../secret.txt", "/files/%2e%2e/secret.txt", "/files/%2E%2E/secret.txt",
        "/files/%2e%2e%2fsecret.txt", "/files/sub/../../secret.txt", "/files/.%2e/secret.txt",
        "/files/sub/%2e%2e/%2e%2e/secret.txt", "/files/link_out",
        "/files/sub/link_up/../secret.txt", "/files//etc/passwd", "/files/%2fetc%2fpasswd",
        "/files/a.txt%00", "/files/%zz"}) {
    const auto result = curl(url(path));
    EXPECT_TRUE(result.status == 404 || result.status == 400) << path << " " << result.status;
    EXPECT_EQ(result.body.find("outside"), std::string::npos) << path;
    EXPECT_EQ(result.body.find("root:"), std::string::npos) << path;
  }
  EXPECT_EQ(curl(url("/files/../secret.txt")).status, 404);
  EXPECT_EQ(curl(url("/files/%2e%2e/secret.txt")).status, 404);
  EXPECT_EQ(curl(url("/files/link_out")).status, 404);
}

TEST_F(Serve, KeepsTheConnectionAliveBetweenRequests) {
  // curl reuses the connection for the second URL: num_connects is 0 for it.
  const std::string out = shell(
      "curl -sS -o /dev/null -o /dev/null -o /dev/null -w '%{http_code} %{num_connects}\\n' '" +
      url("/users/1") + "' '" + url("/bytes/100000") + "' '" + url("/status/404") + "'");
  EXPECT_EQ(out, "200 1\n200 0\n404 0\n");
}

TEST_F(Serve, AnswersPipelinedRequestsInOrderAndClosesWhenAsked) {
  bool closed = false;
  const std::string response =
      exchange(server->port(),
               "GET /users/1 HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /status/201 HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /users/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
               &closed);
  EXPECT_TRUE(closed);
  const auto first = response.find("HTTP/1.1 200 OK");
  const auto second = response.find("HTTP/1.1 201 Created");
  const auto third = response.find("HTTP/1.1 200 OK", first + 1);
  EXPECT_LT(first, second);
  EXPECT_LT(second, third);
  EXPECT_NE(third, std::string::npos);
  EXPECT_NE(response.find("\"id\":2"), std::string::npos);
  EXPECT_NE(response.find("Connection: close"), std::string::npos);
}

TEST_F(Serve, Http10ClosesUnlessKeepAliveIsAsked) {
  bool closed = false;
  const std::string response = exchange(server->port(), "GET /users/3 HTTP/1.0\r\n\r\n", &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(status_line(response), "HTTP/1.1 200 OK");
  EXPECT_NE(response.find("Connection: close"), std::string::npos);
}

TEST_F(Serve, HeadSendsHeadersOnly) {
  const auto result = curl(url("/bytes/1000"), "--head");
  EXPECT_EQ(result.status, 200);
  EXPECT_NE(result.headers.find("Content-Length: 1000"), std::string::npos);
  const std::string response =
      exchange(server->port(), "HEAD /files/a.txt HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_line(response), "HTTP/1.1 200 OK");
  EXPECT_NE(response.find("Content-Length: 6\r\n"), std::string::npos);
  EXPECT_EQ(response.substr(response.size() - 4), "\r\n\r\n");
}

TEST_F(Serve, OtherMethodsGet405) {
  const auto result = curl(url("/users/1"), "-X DELETE");
  EXPECT_EQ(result.status, 405);
  EXPECT_NE(result.headers.find("Allow: GET, HEAD"), std::string::npos);
  // A body is read and skipped: the connection stays usable.
  const std::string out =
      shell("curl -sS -o /dev/null -o /dev/null -w '%{http_code} %{num_connects}\\n' -d hello '" +
            url("/users/1") + "' --next -o /dev/null -w '%{http_code} %{num_connects}\\n' '" +
            url("/users/1") + "'");
  EXPECT_EQ(out, "405 1\n200 0\n");
}

TEST_F(Serve, RequestLineOverTheBoundGets414AndTheConnectionCloses) {
  for (std::size_t length : {9000u, 20000u}) {
    bool closed = false;
    const std::string response =
        exchange(server->port(),
                 "GET /" + std::string(length, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", &closed);
    EXPECT_EQ(status_line(response), "HTTP/1.1 414 URI Too Long") << length;
    EXPECT_TRUE(closed);
  }
  EXPECT_EQ(curl(url("/" + std::string(9000, 'a'))).status, 414);
}

TEST_F(Serve, HeaderBlockOverTheBoundGets431AndTheConnectionCloses) {
  std::string many;
  for (int i = 0; i < 400; ++i)
    many += "X-Header-" + std::to_string(i) + ": " + std::string(40, 'v') + "\r\n";
  bool closed = false;
  std::string response = exchange(server->port(), "GET / HTTP/1.1\r\n" + many + "\r\n", &closed);
  EXPECT_EQ(status_line(response), "HTTP/1.1 431 Request Header Fields Too Large");
  EXPECT_TRUE(closed);
  response = exchange(server->port(),
                      "GET / HTTP/1.1\r\nX-Long: " + std::string(20000, 'v') + "\r\n\r\n", &closed);
  EXPECT_EQ(status_line(response), "HTTP/1.1 431 Request Header Fields Too Large");
  EXPECT_TRUE(closed);
  EXPECT_EQ(curl(url("/users/1"), "-H 'X-Long: " + std::string(17000, 'v') + "'").status, 431);
}

TEST_F(Serve, MalformedRequestsGet400AndTheConnectionCloses) {
  for (const char* request :
       {"garbage\r\n\r\n", "GET /\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1 x\r\n\r\n",
        "GET relative HTTP/1.1\r\n\r\n", "GET / FTP/1.1\r\n\r\n", "G(T / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nno colon\r\n\r\n", "GET / HTTP/1.1\r\n: empty name\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort", "GET / HT", "\r\n\r\n"}) {
    bool closed = false;
    const std::string response = exchange(server->port(), request, &closed);
    EXPECT_EQ(status_line(response), "HTTP/1.1 400 Bad Request") << request;
    EXPECT_NE(response.find("Connection: close"), std::string::npos) << request;
    EXPECT_TRUE(closed) << request;
  }
}

TEST_F(Serve, UnsupportedVersionsAndBodiesAreRefused) {
  EXPECT_EQ(status_line(exchange(server->port(), "GET / HTTP/2.0\r\n\r\n")),
            "HTTP/1.1 505 HTTP Version Not Supported");
  EXPECT_EQ(status_line(exchange(server->port(),
                                 "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")),
            "HTTP/1.1 501 Not Implemented");
  EXPECT_EQ(
      status_line(exchange(server->port(), "POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n")),
      "HTTP/1.1 413 Content Too Large");
}

TEST_F(Serve, SurvivesAHugeRequestAndClientsThatVanish) {
  abandon(server->port(), "GET /" + std::string(4 << 20, 'a'));
  abandon(server->port(), "GET / HTTP/1.1\r\nX: " + std::string(4 << 20, 'a'));
  abandon(server->port(), "GET /bytes/50000000 HTTP/1.1\r\n\r\n");
  abandon(server->port(), "GET /files/a.txt HTTP/1.1\r\n\r\n");
  {
    // A client that asks for a long answer and leaves at once.
    const std::string out = shell("curl -sS -m 0.2 -o /dev/null '" + url("/delay/2000") + "' 2>&1");
    EXPECT_NE(out.find("timed out"), std::string::npos) << out;
  }
  EXPECT_EQ(curl(url("/users/7")).status, 200);
}

TEST_F(Serve, StopsWithConnectionsOpenAndRequestsInProgress) {
  const int delayed = connect_to(server->port());
  send_all(delayed, "GET /delay/30000 HTTP/1.1\r\n\r\n");
  const int idle = connect_to(server->port());
  EXPECT_EQ(curl(url("/status/200")).status, 200);
  const auto start = std::chrono::steady_clock::now();
  server->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  bool closed = false;
  EXPECT_EQ(read_to_end(delayed, &closed), "");
  EXPECT_TRUE(closed);
  EXPECT_EQ(read_to_end(idle, &closed), "");
  EXPECT_TRUE(closed);
  ::close(delayed);
  ::close(idle);
  server->stop();  // idempotent
}

TEST(ServeOptions, NamesTheFolderThatIsNotOne) {
  try {
    spindle_cli::TestServer server({.files = "/nonexistent/folder"});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("/nonexistent/folder"), std::string::npos);
  }
}

TEST(ServeOptions, APortInUseIsASystemError) {
  spindle_cli::TestServer first;
  EXPECT_THROW(spindle_cli::TestServer({.port = first.port()}), std::system_error);
}

TEST(ServeCommand, PrintsTheBoundAddressFirstAndStopsOnSigterm) {
  TemporaryFolder site;
  site.write("f.txt", "file\n");
  int out_pipe[2];
  ASSERT_EQ(::pipe2(out_pipe, O_CLOEXEC), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::execl(SPINDLE_COMMAND, SPINDLE_COMMAND, "serve", "--port", "0", "--files",
            site.path().c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  std::string line;
  char c = 0;
  while (::read(out_pipe[0], &c, 1) == 1 && c != '\n')
    line += c;
  const std::string prefix = "http://127.0.0.1:";
  ASSERT_EQ(line.rfind(prefix, 0), 0u) << line;
  ASSERT_GT(std::atoi(line.c_str() + prefix.size()), 0) << line;
  const auto result = curl(line + "/files/f.txt");
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body, "file\n");
  EXPECT_EQ(curl(line + "/users/5").status, 200);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ::close(out_pipe[0]);
}

TEST(ServeCommand, RejectsBadOptions) {
  auto result = spindle_test::run_spindle({"serve", "--port", "70000"});
  EXPECT_EQ(result.exit_code, 2);
  result = spindle_test::run_spindle({"serve", "--files", "/nonexistent/folder"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("/nonexistent/folder"), std::string::npos) << result.err;
  spindle_cli::TestServer busy;
  result = spindle_test::run_spindle({"serve", "--port", std::to_string(busy.port())});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("cannot listen on 127.0.0.1:" + std::to_string(busy.port())),
            std::string::npos)
      << result.err;
}

TEST(ServeLoad, WrkFindsNoErrorsAndMemoryDoesNotGrow) {
  spindle_cli::TestServer server;
  const std::string target = "wrk -t2 -c32 --latency '" + server.url("/users/42") + "' -d";
  shell(target + (kSanitized ? "1s" : "2s") + " 2>&1");  // warm-up: buffers and pools reach size
  const long before = rss_kib(::getpid());
  const std::string report = shell(target + (kSanitized ? "3s" : "10s") + " 2>&1");
  const long after = rss_kib(::getpid());
  std::cout << report;
  const auto requests_at = report.find(" requests in ");
  ASSERT_NE(requests_at, std::string::npos) << report;
  const auto number_at = report.find_last_of(" \n", requests_at - 1) + 1;
  EXPECT_GT(std::stol(report.substr(number_at, requests_at - number_at)), 1000) << report;
  EXPECT_EQ(report.find("Socket errors"), std::string::npos) << report;
  EXPECT_EQ(report.find("Non-2xx"), std::string::npos) << report;
  // AddressSanitizer keeps freed memory in quarantine (256 MiB by default).
  const long allowed_kib = kSanitized ? 320 * 1024 : 16 * 1024;
  EXPECT_LT(after - before, allowed_kib) << "RSS " << before << " KiB -> " << after << " KiB";
  std::cout << "RSS " << before << " KiB -> " << after << " KiB\n";
}
