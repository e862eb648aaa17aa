// spindle::http — a small HTTP client over libcurl: GET and POST with timeouts, redirects,
// status, headers, and the body kept in memory, streamed to a file or handed to a callback.
//
// Python has no module of this name; the calls cover what the tutorials do with
// urllib.request / requests. Two clients take the same Request and give the same Response:
// the blocking one (each call runs on the calling thread until the response is complete) and
// the awaitable one (async_*: co_await in an asyncio task; curl's multi-socket API driven by
// the task's event loop). See docs/http.md.
//
// Failures to get a response at all (bad URL, unknown host, refused connection, timeout,
// TLS) throw RequestError, whose message names the method and the URL and whose kind() tells
// them apart. A response with any status, 404 and 500 included, is returned, not thrown;
// Response::raise_for_status() turns 4xx/5xx into HTTPStatusError.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spindle/asyncio.hpp"
#include "spindle/errors.hpp"

namespace spindle::http {

// Header fields in the order they were given or received; names compare case-insensitively.
using Headers = std::vector<std::pair<std::string, std::string>>;

enum class Method { get, post };

// "GET" or "POST".
std::string_view method_name(Method method) noexcept;

// Why a request got no response.
enum class ErrorKind {
  invalid_url,         // malformed, or a scheme curl does not speak
  name_resolution,     // the host name did not resolve (DNS failure)
  connection_refused,  // nothing listens on the port (ECONNREFUSED)
  connect_failed,      // the connection could not be made for another reason
  timeout,             // connect_timeout or timeout elapsed
  tls,                 // TLS handshake or certificate verification failed
  too_many_redirects,  // more than max_redirects redirects
  connection_lost,     // the peer closed or reset the connection mid-exchange
  cancelled,           // on_progress returned false
  body_sink,           // writing the body (to the file or the callback) failed
  other,               // anything else libcurl reports
};

// A short phrase for the kind, e.g. "connection refused".
std::string_view describe(ErrorKind kind) noexcept;

// A request that got no response. what() reads "GET URL: reason (details)".
class RequestError : public spindle::Error {
 public:
  RequestError(ErrorKind kind, std::string url, const std::string& message)
      : spindle::Error(message), kind_(kind), url_(std::move(url)) {}
  ErrorKind kind() const noexcept { return kind_; }
  const std::string& url() const noexcept { return url_; }

 private:
  ErrorKind kind_;
  std::string url_;
};

// Response::raise_for_status() on a 4xx or 5xx response. what() reads "GET URL: 404 ...".
class HTTPStatusError : public spindle::Error {
 public:
  HTTPStatusError(long status, std::string url, const std::string& message)
      : spindle::Error(message), status_(status), url_(std::move(url)) {}
  long status() const noexcept { return status_; }
  const std::string& url() const noexcept { return url_; }

 private:
  long status_;
  std::string url_;
};

// Transfer progress passed to RequestOptions::on_progress. Totals are empty while unknown.
struct Progress {
  std::uint64_t downloaded = 0;
  std::optional<std::uint64_t> download_total{};
  std::uint64_t uploaded = 0;
  std::optional<std::uint64_t> upload_total{};
};

// Receives the body in pieces as it arrives, in order, on the thread running the request.
// Throwing aborts the request: the exception propagates out of the call.
using BodyCallback = std::function<void(std::string_view chunk)>;

// How a request is made (Python's keyword arguments).
struct RequestOptions {
  // Extra request header fields, e.g. {"Accept", "application/json"}.
  Headers headers{};
  // For the whole exchange, redirects included; empty: no limit.
  std::optional<std::chrono::milliseconds> timeout = std::chrono::seconds(30);
  // For establishing each connection (name resolution included); empty: no limit.
  std::optional<std::chrono::milliseconds> connect_timeout = std::chrono::seconds(10);
  // Follow 3xx responses that carry a Location (like requests); false returns the 3xx.
  bool follow_redirects = true;
  // More redirects than this: RequestError(too_many_redirects).
  long max_redirects = 10;
  // Verify the server's TLS certificate and host name.
  bool verify_tls = true;
  // Called on the requesting thread about every time data moves (and at least once a second);
  // returning false cancels the request: RequestError(cancelled).
  std::function<bool(const Progress&)> on_progress{};
  // User-Agent header; empty: curl sends none.
  std::string user_agent = "spindle-http";
};

// Everything needed to make one request: a plain value, reusable and copyable.
struct Request {
  Method method = Method::get;
  std::string url;
  // The POST body (sent as is; empty for GET).
  std::string body{};
  // The POST Content-Type; empty: none is sent.
  std::string content_type{};
  RequestOptions options{};
};

// The final response (after any redirects followed).
struct Response {
  // The status of the final response, e.g. 200.
  long status = 0;
  // The URL that answered: the request's URL, or the last redirect's target.
  std::string url;
  // The final response's header fields, in order.
  Headers headers;
  // The body when it was kept in memory; empty when it went to a file or a callback.
  std::string body;
  // Bytes of body received (wherever they went).
  std::uint64_t body_size = 0;
  // Redirects followed.
  long redirects = 0;
  // Wall time of the whole exchange.
  std::chrono::duration<double> elapsed{};

  // The first header field named `name` (case-insensitive), if any.
  std::optional<std::string> header(std::string_view name) const;
  // True for status 200..299.
  bool ok() const noexcept { return status >= 200 && status < 300; }
  // Throws HTTPStatusError for status 400..599; does nothing otherwise.
  void raise_for_status() const;
};

// The blocking client. Every function below blocks the calling thread until the response is
// complete or the request fails; each is safe to call from any number of threads at once
// (each call uses its own connection).

// Makes `request`, keeping the body in Response::body.
Response fetch(const Request& request);
// Makes `request`, giving the body to `on_body` piece by piece (Response::body stays empty).
Response fetch(const Request& request, const BodyCallback& on_body);
// Makes `request`, writing the body to `file` (created or truncated). If no response arrives,
// the file is removed and RequestError is thrown; a file that cannot be opened or written is
// RequestError(body_sink). Any status is written (check Response::status).
Response fetch_to_file(const Request& request, const std::filesystem::path& file);

// GET `url`, body in memory. Blocks.
Response get(std::string url, RequestOptions options = {});
// POST `body` to `url` with Content-Type `content_type` (empty: none), body in memory. Blocks.
Response post(std::string url, std::string body, std::string content_type = {},
              RequestOptions options = {});

// The awaitable client: the same requests, made by the asyncio event loop running on the
// calling thread. Each function returns a lazy asyncio::Task; awaiting it suspends the
// awaiting task (never the thread) until the response is complete, and gives the same
// Response, or throws the same RequestError, as the blocking call of the same name. All the
// requests of one loop share one curl multi handle, whose sockets and timer the loop watches
// (no thread per request). Loop thread only. Body callbacks and on_progress run on the loop's
// thread, inside the loop's I/O phase: they must not block. Cancelling the awaiting task
// abandons the request (its connection is closed) and throws asyncio::CancelledError.

// Makes `request`, keeping the body in Response::body.
asyncio::Task<Response> async_fetch(Request request);
// Makes `request`, giving the body to `on_body` piece by piece.
asyncio::Task<Response> async_fetch(Request request, BodyCallback on_body);
// Makes `request`, writing the body to `file`, as fetch_to_file does (the file is removed if
// the request fails or is cancelled).
asyncio::Task<Response> async_fetch_to_file(Request request, std::filesystem::path file);
// GET `url`, body in memory. Overloads rather than default arguments: g++ 12 copies a
// defaulted class-type argument bitwise inside a co_await expression, breaking its strings.
asyncio::Task<Response> async_get(std::string url);
asyncio::Task<Response> async_get(std::string url, RequestOptions options);
// POST `body` to `url` with Content-Type `content_type` (none when absent or empty), body in
// memory.
asyncio::Task<Response> async_post(std::string url, std::string body);
asyncio::Task<Response> async_post(std::string url, std::string body, std::string content_type);
asyncio::Task<Response> async_post(std::string url, std::string body, std::string content_type,
                                   RequestOptions options);

// The libcurl version in use, e.g. "libcurl/7.88.1 OpenSSL/3.0.11 ...". Non-blocking.
std::string curl_version();

}  // namespace spindle::http
