// The test HTTP/1.1 server: one asyncio task per connection on a loop of its own thread,
// reading requests with StreamReader::readuntil under the reader's buffer limit, so that no
// request, however long, makes the server hold more than a bounded amount of it.
#include "test_server.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <future>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "spindle/asyncio.hpp"

namespace spindle_cli {

namespace {

namespace asyncio = spindle::asyncio;
namespace fs = std::filesystem;

// Route bounds.
constexpr long kMaxDelayMs = 60'000;
constexpr long kMaxBytes = 100L << 20;
constexpr long kMaxUserId = 1'000'000;
constexpr std::size_t kChunk = 64 * 1024;

// What the connections share (read-only once the server runs).
struct Config {
  TestServerOptions options;
  std::optional<fs::path> root;  // canonical form of options.files
};

struct Request {
  std::string method;
  std::string target;  // as sent: path and query
  bool http10 = false;
  bool keep_alive = true;
  std::size_t content_length = 0;
};

// Why a request was refused before it could be routed; the connection closes after it.
struct Refusal {
  int status;
  std::string reason;
};

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 418:
      return "I'm a teapot";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

// The status line and headers of a response.
std::string response_head(int status, std::optional<std::size_t> length,
                          std::string_view content_type, bool keep_alive) {
  std::string head =
      fmt::format("HTTP/1.1 {} {}\r\nServer: spindle\r\n", status, reason_phrase(status));
  if (length) head += fmt::format("Content-Length: {}\r\n", *length);
  if (!content_type.empty()) head += fmt::format("Content-Type: {}\r\n", content_type);
  head += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  return head;
}

// A whole number in [low, high] making up all of `text`, else empty.
std::optional<long> parse_number(std::string_view text, long low, long high) {
  long value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < low ||
      value > high)
    return std::nullopt;
  return value;
}

std::string lowercase(std::string_view text) {
  std::string lower(text);
  for (char& c : lower)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return lower;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

// A line without its "\r\n" (or bare "\n").
std::string_view strip_line_end(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

bool is_token(std::string_view text) {
  if (text.empty()) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

// Parses "METHOD TARGET HTTP/x.y" into `request`; the refusal when it is not that.
std::optional<Refusal> parse_request_line(std::string_view line, Request& request) {
  const auto first = line.find(' ');
  const auto second = first == std::string_view::npos ? first : line.find(' ', first + 1);
  if (second == std::string_view::npos || line.find(' ', second + 1) != std::string_view::npos)
    return Refusal{400, "the request line is not METHOD TARGET VERSION"};
  request.method = std::string(line.substr(0, first));
  request.target = std::string(line.substr(first + 1, second - first - 1));
  const std::string_view version = line.substr(second + 1);
  if (!is_token(request.method)) return Refusal{400, "the method is not a token"};
  if (request.target.empty() || request.target.front() != '/')
    return Refusal{400, "the target is not an absolute path"};
  if (std::any_of(request.target.begin(), request.target.end(),
                  [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; }))
    return Refusal{400, "the target holds a control character"};
  if (version == "HTTP/1.1") {
    request.keep_alive = true;
  } else if (version == "HTTP/1.0") {
    request.http10 = true;
    request.keep_alive = false;
  } else if (version.size() == 8 && version.substr(0, 5) == "HTTP/" && version[6] == '.' &&
             version[5] >= '0' && version[5] <= '9' && version[7] >= '0' && version[7] <= '9') {
    return Refusal{505, "only HTTP/1.0 and HTTP/1.1 are served"};
  } else {
    return Refusal{400, "the version is not HTTP/x.y"};
  }
  return std::nullopt;
}

// Applies one header line to `request`; the refusal when it is malformed.
std::optional<Refusal> parse_header_line(std::string_view line, Request& request,
                                         const TestServerOptions& options) {
  const auto colon = line.find(':');
  if (colon == std::string_view::npos || !is_token(line.substr(0, colon)))
    return Refusal{400, "a header line is not NAME: VALUE"};
  const std::string name = lowercase(line.substr(0, colon));
  const std::string_view value = trim(line.substr(colon + 1));
  if (name == "connection") {
    const std::string token = lowercase(value);
    if (token.find("close") != std::string::npos) request.keep_alive = false;
    if (token.find("keep-alive") != std::string::npos && request.http10) request.keep_alive = true;
  } else if (name == "content-length") {
    const auto length = parse_number(value, 0, std::numeric_limits<long>::max());
    if (!length) return Refusal{400, "Content-Length is not a number"};
    if (static_cast<std::size_t>(*length) > options.max_body_bytes)
      return Refusal{413, "the request body is too large"};
    request.content_length = static_cast<std::size_t>(*length);
  } else if (name == "transfer-encoding") {
    return Refusal{501, "request bodies with Transfer-Encoding are not supported"};
  }
  return std::nullopt;
}

// Decodes %XX escapes; empty if an escape is malformed.
std::optional<std::string> percent_decode(std::string_view text) {
  std::string decoded;
  decoded.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      decoded += text[i];
      continue;
    }
    int value = 0;
    if (i + 2 >= text.size()) return std::nullopt;
    const auto [end, error] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
    if (error != std::errc() || end != text.data() + i + 3) return std::nullopt;
    decoded += static_cast<char>(value);
    i += 2;
  }
  return decoded;
}

// The file under `root` that `encoded` (the part of the path after "/files/") names, or empty
// when it names nothing there: a ".." segment, a path that leads outside `root` once
// symlinks are resolved, a folder, or nothing at all.
std::optional<fs::path> file_under(const fs::path& root, std::string_view encoded) {
  const auto decoded = percent_decode(encoded);
  if (!decoded || decoded->find('\0') != std::string::npos) return std::nullopt;
  fs::path relative;
  std::string_view rest = *decoded;
  while (!rest.empty()) {
    const auto slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    if (segment == "..") return std::nullopt;
    if (!segment.empty() && segment != ".") relative /= std::string(segment);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  }
  std::error_code error;
  const fs::path resolved = fs::canonical(root / relative, error);
  if (error) return std::nullopt;
  const auto [root_end, resolved_at] =
      std::mismatch(root.begin(), root.end(), resolved.begin(), resolved.end());
  if (root_end != root.end() || resolved_at == resolved.end()) return std::nullopt;
  if (!fs::is_regular_file(resolved, error)) return std::nullopt;
  return resolved;
}

std::string_view content_type_of(const fs::path& file) {
  const std::string extension = lowercase(file.extension().string());
  if (extension == ".txt" || extension == ".log") return "text/plain; charset=utf-8";
  if (extension == ".html" || extension == ".htm") return "text/html; charset=utf-8";
  if (extension == ".json") return "application/json";
  if (extension == ".css") return "text/css";
  if (extension == ".js") return "text/javascript";
  return "application/octet-stream";
}

// /bytes/{n}'s content: byte i is (i * 7919) % 251, the same for every request.
void fill_pattern(std::string& chunk, std::size_t offset, std::size_t size) {
  chunk.resize(size);
  for (std::size_t i = 0; i < size; ++i)
    chunk[i] = static_cast<char>(((offset + i) * 7919) % 251);
}

// The path of a target, without its query or fragment.
std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find_first_of("?#"));
}

// Answers one routed request; a body larger than a chunk is streamed with drain().
asyncio::Task<> respond(const Config& config, const Request& request,
                        asyncio::StreamWriter& writer) {
  const bool head_only = request.method == "HEAD";
  const bool keep = request.keep_alive;
  const auto send = [&](int status, std::string_view type, const std::string& body) {
    std::string message = response_head(
        status, status == 204 || status == 304 ? std::nullopt : std::optional(body.size()), type,
        keep);
    if (!head_only) message += body;
    writer.write(message);
  };
  const auto send_json = [&](int status, const nlohmann::json& value) {
    send(status, "application/json", value.dump() + "\n");
  };
  const auto not_found = [&](std::string_view what) {
    send_json(404, {{"error", fmt::format("not found: {}", what)}});
  };
  const std::string_view path = path_of(request.target);
  if (request.method != "GET" && !head_only) {
    std::string message = response_head(405, 0, "", keep);
    message.insert(message.size() - 2, "Allow: GET, HEAD\r\n");
    writer.write(message);
    co_return;
  }
  const auto argument = [&](std::string_view prefix) -> std::optional<std::string_view> {
    if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
    return path.substr(prefix.size());
  };
  if (path == "/") {
    send(200, "text/plain; charset=utf-8",
         "spindle serve: /status/{code} /delay/{ms} /bytes/{n} /users/{id} /files/{path}\n");
  } else if (const auto code = argument("/status/")) {
    if (const auto status = parse_number(*code, 200, 599))
      send(static_cast<int>(*status), "", "");
    else
      send_json(400, {{"error", "status must be a number from 200 to 599"}});
  } else if (const auto ms = argument("/delay/")) {
    if (const auto delay = parse_number(*ms, 0, kMaxDelayMs)) {
      co_await asyncio::sleep(std::chrono::milliseconds(*delay));
      send_json(200, {{"delay_ms", *delay}});
    } else {
      send_json(400, {{"error", fmt::format("delay must be 0 to {} milliseconds", kMaxDelayMs)}});
    }
  } else if (const auto n = argument("/bytes/")) {
    const auto size = parse_number(*n, 0, kMaxBytes);
    if (!size) {
      send_json(400, {{"error", fmt::format("bytes must be 0 to {}", kMaxBytes)}});
      co_return;
    }
    writer.write(
        response_head(200, static_cast<std::size_t>(*size), "application/octet-stream", keep));
    std::string chunk;
    for (std::size_t offset = 0; !head_only && offset < static_cast<std::size_t>(*size);
         offset += kChunk) {
      fill_pattern(chunk, offset, std::min(kChunk, static_cast<std::size_t>(*size) - offset));
      writer.write(chunk);
      co_await writer.drain();
    }
  } else if (const auto id = argument("/users/")) {
    if (const auto user = parse_number(*id, 1, kMaxUserId))
      send_json(200, {{"id", *user},
                      {"name", fmt::format("User {}", *user)},
                      {"username", fmt::format("user{}", *user)},
                      {"email", fmt::format("user{}@example.com", *user)}});
    else
      not_found(path);
  } else if (const auto file_path = argument("/files/")) {
    const auto file = config.root ? file_under(*config.root, *file_path) : std::nullopt;
    std::ifstream in;
    if (file) in.open(*file, std::ios::binary);
    if (!in) {
      not_found(path);
      co_return;
    }
    std::error_code error;
    const auto size = fs::file_size(*file, error);
    if (error) {
      not_found(path);
      co_return;
    }
    writer.write(response_head(200, size, content_type_of(*file), keep));
    std::string chunk(kChunk, '\0');
    for (std::uintmax_t left = size; !head_only && left > 0;) {
      const auto want = static_cast<std::streamsize>(std::min<std::uintmax_t>(kChunk, left));
      in.read(chunk.data(), want);
      // A file that shrank since its size was taken: the response cannot be completed.
      if (in.gcount() != want) throw std::runtime_error("file shrank while being sent");
      writer.write(std::string_view(chunk.data(), static_cast<std::size_t>(want)));
      left -= static_cast<std::uintmax_t>(want);
      co_await writer.drain();
    }
  } else {
    not_found(path);
  }
  co_return;
}

// Reads the next request's line and headers; the refusal when it is over a bound or malformed.
// Empty `request` (and no refusal) when the peer closed the connection between requests.
asyncio::Task<std::optional<Refusal>> read_request(const Config& config,
                                                   asyncio::StreamReader& reader,
                                                   std::optional<Request>& request) {
  const TestServerOptions& options = config.options;
  std::string line;
  try {
    line = co_await reader.readuntil("\n");
  } catch (const asyncio::LimitOverrunError&) {
    co_return Refusal{414, "the request line is too long"};
  } catch (const asyncio::IncompleteReadError& error) {
    if (error.partial().empty()) co_return std::nullopt;
    co_return Refusal{400, "the connection ended inside the request line"};
  }
  if (line.size() > options.max_request_line)
    co_return Refusal{414, "the request line is too long"};
  request.emplace();
  if (auto refusal = parse_request_line(strip_line_end(line), *request)) co_return refusal;
  std::size_t header_bytes = 0;
  for (;;) {
    try {
      line = co_await reader.readuntil("\n");
    } catch (const asyncio::LimitOverrunError&) {
      co_return Refusal{431, "the header block is too large"};
    } catch (const asyncio::IncompleteReadError&) {
      co_return Refusal{400, "the connection ended inside the headers"};
    }
    header_bytes += line.size();
    if (header_bytes > options.max_header_bytes)
      co_return Refusal{431, "the header block is too large"};
    const std::string_view header = strip_line_end(line);
    if (header.empty()) break;
    if (header.front() == ' ' || header.front() == '\t')
      co_return Refusal{400, "folded header lines are not accepted"};
    if (auto refusal = parse_header_line(header, *request, options)) co_return refusal;
  }
  if (request->content_length > 0) {
    try {
      co_await reader.readexactly(request->content_length);
    } catch (const asyncio::IncompleteReadError&) {
      co_return Refusal{400, "the connection ended inside the body"};
    }
  }
  co_return std::nullopt;
}

// One connection: requests answered in order until either side closes it or a request is
// refused. Connection errors end it quietly.
asyncio::Task<> serve_connection(const Config* config, asyncio::StreamReader reader,
                                 asyncio::StreamWriter writer) {
  try {
    for (;;) {
      std::optional<Request> request;
      const auto refusal = co_await read_request(*config, reader, request);
      if (refusal) {
        const std::string body = nlohmann::json{{"error", refusal->reason}}.dump() + "\n";
        writer.write(response_head(refusal->status, body.size(), "application/json", false) + body);
        break;
      }
      if (!request) break;
      co_await respond(*config, *request, writer);
      co_await writer.drain();
      if (!request->keep_alive) break;
    }
  } catch (const std::exception&) {
    // A lost connection, or a file that could not be read to the end: the connection is
    // closed below, which is all the client can be told once a response has begun.
  }
  writer.close();
  co_await writer.wait_closed();
}

}  // namespace

struct TestServer::Shared {
  std::mutex mutex;
  asyncio::EventLoop* loop = nullptr;  // while the server runs
  asyncio::Event* stop_event = nullptr;
  bool stop_requested = false;
};

namespace {

// Serves until stop(). `config` outlives the loop, hence every connection's task (asyncio::run
// finishes them all before it returns).
asyncio::Task<> run_server(const Config* config, std::shared_ptr<TestServer::Shared> shared,
                           std::promise<int>* started) {
  std::optional<asyncio::Server> server;
  try {
    server.emplace(co_await asyncio::start_server(
        [config](asyncio::StreamReader reader, asyncio::StreamWriter writer) {
          return serve_connection(config, std::move(reader), std::move(writer));
        },
        config->options.host, config->options.port,
        {.limit = std::max(config->options.max_request_line, config->options.max_header_bytes)}));
  } catch (const std::exception&) {
    started->set_exception(std::current_exception());
    co_return;
  }
  asyncio::Event stop_event;
  {
    std::lock_guard lock(shared->mutex);
    shared->loop = &asyncio::get_running_loop();
    shared->stop_event = &stop_event;
  }
  started->set_value(server->port());
  co_await stop_event.wait();
  {
    std::lock_guard lock(shared->mutex);
    shared->loop = nullptr;
    shared->stop_event = nullptr;
  }
  server->close();
  server->close_clients();
  co_await server->wait_closed();
}

}  // namespace

TestServer::TestServer(TestServerOptions options)
    : host_(options.host), shared_(std::make_shared<Shared>()) {
  auto config = std::make_shared<Config>();
  if (options.files) {
    std::error_code error;
    if (!fs::is_directory(*options.files, error))
      throw std::invalid_argument(
          fmt::format("{}: not a folder (the folder /files/ serves)", options.files->string()));
    config->root = fs::canonical(*options.files);
  }
  config->options = std::move(options);
  auto started = std::make_shared<std::promise<int>>();
  auto port = started->get_future();
  thread_ = std::thread([config, shared = shared_, started] {
    try {
      asyncio::run(run_server(config.get(), shared, started.get()));
    } catch (const std::exception&) {
      // The loop failed (start_server's failure is reported through `started` already;
      // after the start there is nobody left to tell).
      try {
        started->set_exception(std::current_exception());
      } catch (const std::future_error&) {
      }
    }
  });
  try {
    port_ = port.get();
  } catch (...) {
    thread_.join();
    throw;
  }
}

TestServer::~TestServer() {
  stop();
}

std::string TestServer::url(const std::string& path) const {
  if (host_.find(':') != std::string::npos)  // IPv6: the address in brackets
    return fmt::format("http://[{}]:{}{}", host_, port_, path);
  return fmt::format("http://{}:{}{}", host_, port_, path);
}

void TestServer::stop() {
  {
    std::lock_guard lock(shared_->mutex);
    if (!shared_->stop_requested && shared_->loop != nullptr) {
      shared_->stop_requested = true;
      shared_->loop->call_soon_threadsafe([event = shared_->stop_event] { event->set(); });
    }
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace spindle_cli
