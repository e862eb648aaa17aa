// spindle::http's blocking client against servers on 127.0.0.1.
#include "spindle/http.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "loopback_server.hpp"
#include "spindle/futures.hpp"

namespace http = spindle::http;
using spindle_test::http_response;
using spindle_test::LoopbackServer;
using spindle_test::ReceivedRequest;

namespace {

// Runs `call`, expecting RequestError of `kind`; returns its message.
template <class F>
std::string expect_request_error(F call, http::ErrorKind kind) {
  try {
    call();
  } catch (const http::RequestError& error) {
    EXPECT_EQ(error.kind(), kind) << error.what();
    return error.what();
  }
  ADD_FAILURE() << "no RequestError";
  return {};
}

std::filesystem::path temporary_directory() {
  auto path =
      std::filesystem::temp_directory_path() / ("spindle_http_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(path);
  return path;
}

}  // namespace

TEST(HttpGet, ReturnsStatusHeadersAndBody) {
  LoopbackServer server([](const ReceivedRequest& request) {
    EXPECT_EQ(request.method, "GET");
    EXPECT_EQ(request.target, "/hello?x=1");
    return http_response(200, "hello world", "X-Custom: yes\r\n");
  });
  const auto response = http::get(server.url("/hello?x=1"));
  EXPECT_EQ(response.status, 200);
  EXPECT_TRUE(response.ok());
  EXPECT_EQ(response.body, "hello world");
  EXPECT_EQ(response.body_size, 11u);
  EXPECT_EQ(response.header("x-custom"), "yes");
  EXPECT_EQ(response.header("Content-Length"), "11");
  EXPECT_FALSE(response.header("absent").has_value());
  EXPECT_EQ(response.url, server.url("/hello?x=1"));
}

TEST(HttpGet, SendsRequestHeaders) {
  LoopbackServer server([](const ReceivedRequest& request) {
    const bool found = request.head.find("Accept: application/json") != std::string::npos;
    return http_response(found ? 200 : 400, "");
  });
  const auto response = http::get(server.url("/"), {.headers = {{"Accept", "application/json"}}});
  EXPECT_EQ(response.status, 200);
}

TEST(HttpGet, ErrorStatusIsReturnedNotThrown) {
  LoopbackServer server([](const ReceivedRequest&) { return http_response(404, "missing"); });
  const auto response = http::get(server.url("/nothing"));
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.body, "missing");
  EXPECT_FALSE(response.ok());
  try {
    response.raise_for_status();
    ADD_FAILURE() << "no HTTPStatusError";
  } catch (const http::HTTPStatusError& error) {
    EXPECT_EQ(error.status(), 404);
    EXPECT_NE(std::string(error.what()).find(server.url("/nothing")), std::string::npos);
  }
}

TEST(HttpGet, FollowsRedirectsAndReportsTheFinalUrl) {
  LoopbackServer server([](const ReceivedRequest& request) {
    if (request.target == "/old") return http_response(302, "", "Location: /new\r\n");
    return http_response(200, "arrived", "X-Final: 1\r\n");
  });
  const auto response = http::get(server.url("/old"));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "arrived");
  EXPECT_EQ(response.url, server.url("/new"));
  EXPECT_EQ(response.redirects, 1);
  EXPECT_EQ(response.header("X-Final"), "1");
  EXPECT_FALSE(response.header("Location").has_value());  // headers of the final response only
}

TEST(HttpGet, RedirectIsReturnedWhenNotFollowing) {
  LoopbackServer server(
      [](const ReceivedRequest&) { return http_response(301, "", "Location: /new\r\n"); });
  const auto response = http::get(server.url("/old"), {.follow_redirects = false});
  EXPECT_EQ(response.status, 301);
  EXPECT_EQ(response.header("location"), "/new");
}

TEST(HttpGet, TooManyRedirectsThrows) {
  LoopbackServer server(
      [](const ReceivedRequest&) { return http_response(302, "", "Location: /loop\r\n"); });
  const auto message =
      expect_request_error([&] { http::get(server.url("/loop"), {.max_redirects = 3}); },
                           http::ErrorKind::too_many_redirects);
  EXPECT_NE(message.find(server.url("/loop")), std::string::npos) << message;
}

TEST(HttpPost, SendsBodyAndContentType) {
  LoopbackServer server([](const ReceivedRequest& request) {
    EXPECT_EQ(request.method, "POST");
    EXPECT_NE(request.head.find("Content-Type: application/json"), std::string::npos);
    return http_response(201, "got:" + request.body);
  });
  const auto response = http::post(server.url("/users"), R"({"id":1})", "application/json");
  EXPECT_EQ(response.status, 201);
  EXPECT_EQ(response.body, R"(got:{"id":1})");
}

TEST(HttpPost, SendsALargeBody) {
  LoopbackServer server([](const ReceivedRequest& request) {
    return http_response(200, std::to_string(request.body.size()));
  });
  const auto response = http::post(server.url("/"), std::string(3 << 20, 'z'));
  EXPECT_EQ(response.body, std::to_string(3 << 20));
}

TEST(HttpErrors, RefusedConnectionNamesTheUrl) {
  spindle_test::RefusingPort port;
  const std::string url = "http://127.0.0.1:" + std::to_string(port.port()) + "/x";
  const auto message =
      expect_request_error([&] { http::get(url); }, http::ErrorKind::connection_refused);
  EXPECT_NE(message.find("GET " + url + ": connection refused"), std::string::npos) << message;
}

TEST(HttpErrors, TimeoutNamesTheUrl) {
  spindle_test::SilentListener listener;
  const std::string url = "http://127.0.0.1:" + std::to_string(listener.port()) + "/slow";
  const auto start = std::chrono::steady_clock::now();
  const auto message =
      expect_request_error([&] { http::get(url, {.timeout = std::chrono::milliseconds(200)}); },
                           http::ErrorKind::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_NE(message.find(url), std::string::npos) << message;
  EXPECT_NE(message.find("timed out"), std::string::npos) << message;
}

TEST(HttpErrors, UnknownHostNamesTheUrl) {
  // .invalid never resolves (RFC 6761).
  const auto message = expect_request_error([] { http::get("http://no-such-host.invalid/page"); },
                                            http::ErrorKind::name_resolution);
  EXPECT_NE(message.find("http://no-such-host.invalid/page"), std::string::npos) << message;
}

TEST(HttpErrors, TlsToAPlainServerIsATlsError) {
  LoopbackServer server([](const ReceivedRequest&) { return http_response(200, "plain"); });
  const std::string url = "https://127.0.0.1:" + std::to_string(server.port()) + "/";
  const auto message = expect_request_error([&] { http::get(url); }, http::ErrorKind::tls);
  EXPECT_NE(message.find(url), std::string::npos) << message;
}

TEST(HttpErrors, MalformedUrlsAreRejected) {
  for (const char* url : {"not a url", "http://[::1", "ftp://127.0.0.1/file", "", "http://"}) {
    const auto message =
        expect_request_error([&] { http::get(url); }, http::ErrorKind::invalid_url);
    EXPECT_NE(message.find("malformed URL"), std::string::npos) << message;
  }
}

TEST(HttpErrors, ConnectionClosedWithoutResponseIsConnectionLost) {
  LoopbackServer server([](const ReceivedRequest&) { return std::string(); });
  expect_request_error([&] { http::get(server.url("/")); }, http::ErrorKind::connection_lost);
}

TEST(HttpBody, StreamsToACallbackInOrder) {
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>('a' + i % 26);
  LoopbackServer server([&](const ReceivedRequest&) { return http_response(200, big); });
  std::string received;
  int calls = 0;
  const auto response = http::fetch({.url = server.url("/big")}, [&](std::string_view chunk) {
    received.append(chunk);
    ++calls;
  });
  EXPECT_EQ(received, big);
  EXPECT_TRUE(response.body.empty());
  EXPECT_EQ(response.body_size, big.size());
  EXPECT_GT(calls, 1);
}

TEST(HttpBody, CallbackExceptionPropagates) {
  LoopbackServer server([](const ReceivedRequest&) { return http_response(200, "data"); });
  EXPECT_THROW(http::fetch({.url = server.url("/")},
                           [](std::string_view) { throw std::logic_error("stop here"); }),
               std::logic_error);
}

TEST(HttpBody, WritesToAFile) {
  const auto directory = temporary_directory();
  const auto file = directory / "body.bin";
  LoopbackServer server([](const ReceivedRequest&) { return http_response(200, "file body"); });
  const auto response = http::fetch_to_file({.url = server.url("/f")}, file);
  EXPECT_EQ(response.body_size, 9u);
  std::ifstream in(file);
  std::stringstream contents;
  contents << in.rdbuf();
  EXPECT_EQ(contents.str(), "file body");
  std::filesystem::remove_all(directory);
}

TEST(HttpBody, FailedRequestLeavesNoFile) {
  const auto directory = temporary_directory();
  const auto file = directory / "never.bin";
  spindle_test::RefusingPort port;
  EXPECT_THROW(
      http::fetch_to_file({.url = "http://127.0.0.1:" + std::to_string(port.port()) + "/"}, file),
      http::RequestError);
  EXPECT_FALSE(std::filesystem::exists(file));
  std::filesystem::remove_all(directory);
}

TEST(HttpBody, UnwritableFileIsABodySinkError) {
  LoopbackServer server([](const ReceivedRequest&) { return http_response(200, "x"); });
  const auto message = expect_request_error(
      [&] { http::fetch_to_file({.url = server.url("/")}, "/nonexistent-dir/file"); },
      http::ErrorKind::body_sink);
  EXPECT_NE(message.find("/nonexistent-dir/file"), std::string::npos) << message;
}

TEST(HttpProgress, ReturningFalseCancels) {
  LoopbackServer server(
      [](const ReceivedRequest&) { return http_response(200, std::string(1 << 20, 'p')); });
  http::Request request{.url = server.url("/")};
  request.options.on_progress = [](const http::Progress&) { return false; };
  expect_request_error([&] { http::fetch(request); }, http::ErrorKind::cancelled);
}

TEST(HttpConcurrency, ManyRequestsFromAThreadPool) {
  std::atomic<int> served{0};
  LoopbackServer server([&](const ReceivedRequest& request) {
    served.fetch_add(1);
    return http_response(200, request.target.substr(1));
  });
  spindle::ThreadPoolExecutor pool({.max_workers = 8});
  std::vector<spindle::Future<http::Response>> futures;
  for (int i = 0; i < 32; ++i)
    futures.push_back(
        pool.submit([&, i] { return http::get(server.url("/" + std::to_string(i))); }));
  for (int i = 0; i < 32; ++i)
    EXPECT_EQ(futures[i].result().body, std::to_string(i));
  EXPECT_EQ(served.load(), 32);
}

TEST(HttpInfo, CurlVersionNamesLibcurl) {
  EXPECT_NE(http::curl_version().find("libcurl"), std::string::npos);
}
