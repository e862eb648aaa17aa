// spindle::http's awaitable client (curl's multi-socket API on the asyncio loop) against
// servers on 127.0.0.1.
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "loopback_server.hpp"
#include "spindle/asyncio.hpp"
#include "spindle/http.hpp"

namespace asyncio = spindle::asyncio;
namespace http = spindle::http;
using spindle_test::http_response;
using spindle_test::LoopbackServer;
using spindle_test::ReceivedRequest;

namespace {

// Awaits `request`, expecting RequestError of `kind`; returns its message.
asyncio::Task<std::string> expect_request_error(asyncio::Task<http::Response> request,
                                                http::ErrorKind kind) {
  try {
    co_await std::move(request);
  } catch (const http::RequestError& error) {
    EXPECT_EQ(error.kind(), kind) << error.what();
    co_return error.what();
  }
  ADD_FAILURE() << "no RequestError";
  co_return std::string();
}

std::filesystem::path temporary_directory() {
  auto path = std::filesystem::temp_directory_path() /
              ("spindle_async_http_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(path);
  return path;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// A gate the server's handlers wait at until the test opens it.
class Gate {
 public:
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
};

}  // namespace

TEST(AsyncHttpGet, ReturnsStatusHeadersAndBody) {
  LoopbackServer server([](const ReceivedRequest& request) {
    EXPECT_EQ(request.method, "GET");
    EXPECT_EQ(request.target, "/hello?x=1");
    return http_response(200, "hello world", "X-Custom: yes\r\n");
  });
  const auto response = asyncio::run(http::async_get(server.url("/hello?x=1")));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "hello world");
  EXPECT_EQ(response.body_size, 11u);
  EXPECT_EQ(response.header("x-custom"), "yes");
  EXPECT_EQ(response.url, server.url("/hello?x=1"));
}

TEST(AsyncHttpGet, ErrorStatusIsReturnedNotThrown) {
  LoopbackServer server([](const ReceivedRequest&) { return http_response(503, "busy"); });
  const auto response = asyncio::run(http::async_get(server.url("/")));
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(response.body, "busy");
  EXPECT_THROW(response.raise_for_status(), http::HTTPStatusError);
}

TEST(AsyncHttpPost, SendsBodyAndContentType) {
  LoopbackServer server([](const ReceivedRequest& request) {
    EXPECT_EQ(request.method, "POST");
    EXPECT_NE(request.head.find("Content-Type: application/json"), std::string::npos);
    return http_response(201, "got:" + request.body);
  });
  const auto response =
      asyncio::run(http::async_post(server.url("/users"), R"({"id":1})", "application/json"));
  EXPECT_EQ(response.status, 201);
  EXPECT_EQ(response.body, R"(got:{"id":1})");
}

// Every handler waits until all 100 requests have reached the server, which only happens if
// the one loop keeps all of them in flight at once.
TEST(AsyncHttpConcurrency, HundredRequestsInFlightAtOnceOnOneLoop) {
  constexpr int count = 100;
  std::mutex mutex;
  std::condition_variable arrived;
  int waiting = 0;
  int most_waiting = 0;
  LoopbackServer server([&](const ReceivedRequest& request) {
    std::unique_lock lock(mutex);
    most_waiting = std::max(most_waiting, ++waiting);
    arrived.notify_all();
    arrived.wait_for(lock, std::chrono::seconds(60), [&] { return most_waiting == count; });
    --waiting;
    return http_response(200, request.target);
  });
  auto main_task = [&]() -> asyncio::Task<std::vector<http::Response>> {
    std::vector<asyncio::Task<http::Response>> requests;
    for (int i = 0; i < count; ++i)
      requests.push_back(http::async_get(server.url("/item/" + std::to_string(i))));
    co_return co_await asyncio::gather(std::move(requests));
  };
  const auto caller = std::this_thread::get_id();
  const auto responses = asyncio::run(main_task());
  EXPECT_EQ(std::this_thread::get_id(), caller);
  EXPECT_EQ(most_waiting, count);
  ASSERT_EQ(responses.size(), static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    EXPECT_EQ(responses[i].status, 200);
    EXPECT_EQ(responses[i].body, "/item/" + std::to_string(i));
  }
}

TEST(AsyncHttpConcurrency, SequentialRequestsOnOneLoopEachComplete) {
  LoopbackServer server(
      [](const ReceivedRequest& request) { return http_response(200, request.target); });
  auto main_task = [&]() -> asyncio::Task<int> {
    int answered = 0;
    for (int i = 0; i < 5; ++i) {
      const std::string path = "/" + std::to_string(i);
      auto request = http::async_get(server.url(path));
      auto response = co_await std::move(request);
      if (response.body == path) ++answered;
    }
    co_return answered;
  };
  EXPECT_EQ(asyncio::run(main_task()), 5);
}

TEST(AsyncHttpErrors, TimeoutNamesTheUrl) {
  spindle_test::SilentListener listener;
  const std::string url = "http://127.0.0.1:" + std::to_string(listener.port()) + "/slow";
  const auto message = asyncio::run(expect_request_error(
      http::async_get(url, {.timeout = std::chrono::milliseconds(200)}), http::ErrorKind::timeout));
  EXPECT_NE(message.find("GET " + url + ": timed out"), std::string::npos) << message;
}

TEST(AsyncHttpErrors, RefusedConnectionNamesTheUrl) {
  spindle_test::RefusingPort port;
  const std::string url = "http://127.0.0.1:" + std::to_string(port.port()) + "/x";
  const auto message =
      asyncio::run(expect_request_error(http::async_get(url), http::ErrorKind::connection_refused));
  EXPECT_NE(message.find("GET " + url + ": connection refused"), std::string::npos) << message;
}

TEST(AsyncHttpErrors, UnknownHostNamesTheUrl) {
  const std::string url = "http://no-such-host.invalid/";
  const auto message =
      asyncio::run(expect_request_error(http::async_get(url), http::ErrorKind::name_resolution));
  EXPECT_NE(message.find("GET " + url + ": unknown host"), std::string::npos) << message;
}

TEST(AsyncHttpErrors, MalformedUrlIsRejected) {
  asyncio::run(expect_request_error(http::async_get("ftp://example.invalid/file"),
                                    http::ErrorKind::invalid_url));
}

TEST(AsyncHttpErrors, TlsToAPlainServerFails) {
  LoopbackServer server([](const ReceivedRequest&) { return http_response(200, ""); });
  const std::string url = "https://127.0.0.1:" + std::to_string(server.port()) + "/";
  const auto message =
      asyncio::run(expect_request_error(http::async_get(url), http::ErrorKind::tls));
  EXPECT_NE(message.find(url), std::string::npos) << message;
}

TEST(AsyncHttpRedirects, FollowsRedirectsAndReportsTheFinalUrl) {
  LoopbackServer server([](const ReceivedRequest& request) {
    if (request.target == "/old") return http_response(302, "", "Location: /new\r\n");
    return http_response(200, "arrived");
  });
  const auto response = asyncio::run(http::async_get(server.url("/old")));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "arrived");
  EXPECT_EQ(response.url, server.url("/new"));
  EXPECT_EQ(response.redirects, 1);
}

TEST(AsyncHttpRedirects, TooManyRedirectsThrows) {
  LoopbackServer server(
      [](const ReceivedRequest&) { return http_response(302, "", "Location: /loop\r\n"); });
  asyncio::run(expect_request_error(http::async_get(server.url("/loop"), {.max_redirects = 3}),
                                    http::ErrorKind::too_many_redirects));
}

TEST(AsyncHttpFiles, StreamsTheBodyToAFile) {
  const std::string body(1 << 20, 'q');
  LoopbackServer server([&](const ReceivedRequest&) { return http_response(200, body); });
  const auto file = temporary_directory() / "streamed.bin";
  const auto response =
      asyncio::run(http::async_fetch_to_file({.url = server.url("/bytes")}, file));
  EXPECT_EQ(response.status, 200);
  EXPECT_TRUE(response.body.empty());
  EXPECT_EQ(response.body_size, body.size());
  EXPECT_EQ(read_file(file), body);
  std::filesystem::remove_all(file.parent_path());
}

TEST(AsyncHttpFiles, FailedDownloadLeavesNoFile) {
  spindle_test::RefusingPort port;
  const auto file = temporary_directory() / "refused.bin";
  asyncio::run(expect_request_error(
      http::async_fetch_to_file({.url = "http://127.0.0.1:" + std::to_string(port.port()) + "/"},
                                file),
      http::ErrorKind::connection_refused));
  EXPECT_FALSE(std::filesystem::exists(file));
  std::filesystem::remove_all(file.parent_path());
}

TEST(AsyncHttpFiles, BodyCallbackReceivesEveryChunkOnTheLoopThread) {
  const std::string body(300000, 'c');
  LoopbackServer server([&](const ReceivedRequest&) { return http_response(200, body); });
  std::size_t received = 0;
  const auto loop_thread = std::this_thread::get_id();
  const auto response =
      asyncio::run(http::async_fetch({.url = server.url("/")}, [&](std::string_view chunk) {
        EXPECT_EQ(std::this_thread::get_id(), loop_thread);
        received += chunk.size();
      }));
  EXPECT_EQ(received, body.size());
  EXPECT_EQ(response.body_size, body.size());
}

// The server holds the request until the test ends; cancelling the awaiting task gives
// CancelledError, and the loop goes on making requests.
TEST(AsyncHttpCancellation, CancellingTheTaskAbandonsTheRequest) {
  Gate release;
  std::atomic<asyncio::EventLoop*> loop_pointer{nullptr};
  asyncio::Event* arrived_pointer = nullptr;
  LoopbackServer server([&](const ReceivedRequest& request) {
    if (request.target == "/held") {
      loop_pointer.load()->call_soon_threadsafe([&] { arrived_pointer->set(); });
      release.wait();
    }
    return http_response(200, "ok");
  });
  auto main_task = [&]() -> asyncio::Task<std::string> {
    asyncio::Event arrived;
    arrived_pointer = &arrived;
    loop_pointer = &asyncio::get_running_loop();
    auto held = asyncio::create_task(http::async_get(server.url("/held")));
    co_await arrived.wait();
    held.cancel();
    bool cancelled = false;
    try {
      co_await held;
    } catch (const asyncio::CancelledError&) {
      cancelled = true;
    }
    EXPECT_TRUE(cancelled);
    EXPECT_TRUE(held.cancelled());
    const std::string after_url = server.url("/after");
    auto after_request = http::async_get(after_url);
    auto after = co_await std::move(after_request);
    co_return after.body;
  };
  EXPECT_EQ(asyncio::run(main_task()), "ok");
  release.open();
}

TEST(AsyncHttpCancellation, WaitForTimesOutAndCancelsTheRequest) {
  Gate release;
  LoopbackServer server([&](const ReceivedRequest&) {
    release.wait();
    return http_response(200, "late");
  });
  auto main_task = [&]() -> asyncio::Task<bool> {
    try {
      const std::string url = server.url("/held");
      auto request = http::async_get(url);
      co_await asyncio::wait_for(std::move(request), std::chrono::milliseconds(100));
    } catch (const spindle::TimeoutError&) {
      co_return true;
    }
    co_return false;
  };
  EXPECT_TRUE(asyncio::run(main_task()));
  release.open();
}

TEST(AsyncHttpCancellation, ClosingTheLoopWithARequestInFlightReleasesIt) {
  Gate release;
  std::atomic<asyncio::EventLoop*> loop_pointer{nullptr};
  asyncio::Event* arrived_pointer = nullptr;
  LoopbackServer server([&](const ReceivedRequest&) {
    loop_pointer.load()->call_soon_threadsafe([&] { arrived_pointer->set(); });
    release.wait();
    return http_response(200, "late");
  });
  std::vector<std::string> reports;
  {
    asyncio::EventLoop loop;
    loop.set_exception_handler([&](asyncio::EventLoop&, const asyncio::ExceptionContext& context) {
      reports.push_back(context.message);
    });
    loop_pointer = &loop;
    asyncio::Event arrived;
    arrived_pointer = &arrived;
    auto starter = [&]() -> asyncio::Task<asyncio::Task<http::Response>> {
      auto held = asyncio::create_task(http::async_get(server.url("/held")));
      co_await arrived.wait();
      co_return held;
    };
    auto held = loop.run_until_complete(starter());
    EXPECT_FALSE(held.done());
    loop.close();
  }
  release.open();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0], "Task was destroyed but it is pending!");
}

// Arguments built in the co_await expression itself, including the options left out.
TEST(AsyncHttpUsage, TemporaryArgumentsInsideTheCoAwaitExpression) {
  LoopbackServer server([](const ReceivedRequest& request) {
    return http_response(200, request.target + ":" + request.body);
  });
  auto main_task = [&]() -> asyncio::Task<int> {
    int answered = 0;
    for (int i = 0; i < 3; ++i) {
      auto got = co_await http::async_get(server.url("/" + std::to_string(i)));
      if (got.body == "/" + std::to_string(i) + ":") ++answered;
      auto posted = co_await http::async_post(server.url("/p"), "body" + std::to_string(i));
      if (posted.body == "/p:body" + std::to_string(i)) ++answered;
    }
    co_return answered;
  };
  EXPECT_EQ(asyncio::run(main_task()), 6);
}

// curl refuses to drop a transfer from inside its own callback: the cancellation is delivered
// when the task resumes instead.
TEST(AsyncHttpCancellation, BodyCallbackCancellingItsOwnTaskEndsInCancelledError) {
  const std::string body(300000, 'b');
  LoopbackServer server([&](const ReceivedRequest&) { return http_response(200, body); });
  auto main_task = [&]() -> asyncio::Task<bool> {
    asyncio::Task<http::Response>* self = nullptr;
    bool cancel_requested = false;
    auto request =
        asyncio::create_task(http::async_fetch({.url = server.url("/")}, [&](std::string_view) {
          if (!cancel_requested) cancel_requested = self->cancel();
        }));
    self = &request;
    try {
      co_await request;
    } catch (const asyncio::CancelledError&) {
      co_return cancel_requested;
    }
    co_return false;
  };
  EXPECT_TRUE(asyncio::run(main_task()));
}
