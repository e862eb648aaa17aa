// The blocking client and the value types' members.
#include <utility>

#include <fmt/format.h>

#include "spindle/http.hpp"
#include "transfer.hpp"

namespace spindle::http {

std::string_view method_name(Method method) noexcept {
  return method == Method::post ? "POST" : "GET";
}

std::string_view describe(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::invalid_url:
      return "malformed URL";
    case ErrorKind::name_resolution:
      return "unknown host";
    case ErrorKind::connection_refused:
      return "connection refused";
    case ErrorKind::connect_failed:
      return "could not connect";
    case ErrorKind::timeout:
      return "timed out";
    case ErrorKind::tls:
      return "TLS failure";
    case ErrorKind::too_many_redirects:
      return "too many redirects";
    case ErrorKind::connection_lost:
      return "connection lost";
    case ErrorKind::cancelled:
      return "cancelled";
    case ErrorKind::body_sink:
      return "could not store the body";
    case ErrorKind::other:
      break;
  }
  return "request failed";
}

namespace {

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view reason_phrase(long status) {
  if (status >= 500) return "server error";
  return "client error";
}

Response perform(const Request& request, BodyCallback on_body) {
  internal::Transfer transfer(request, std::move(on_body));
  transfer.started();
  return transfer.finish(curl_easy_perform(transfer.handle()));
}

}  // namespace

std::optional<std::string> Response::header(std::string_view name) const {
  for (const auto& [field, value] : headers)
    if (equal_ignoring_case(field, name)) return value;
  return std::nullopt;
}

void Response::raise_for_status() const {
  if (status >= 400 && status < 600)
    throw HTTPStatusError(status, url,
                          fmt::format("{}: {} {}", url, status, reason_phrase(status)));
}

Response fetch(const Request& request) {
  return perform(request, {});
}

Response fetch(const Request& request, const BodyCallback& on_body) {
  return perform(request, on_body);
}

Response fetch_to_file(const Request& request, const std::filesystem::path& file) {
  internal::FileSink sink(request, file);
  Response response = perform(request, sink.writer());
  sink.commit();
  return response;
}

Response get(std::string url, RequestOptions options) {
  Request request{.method = Method::get, .url = std::move(url), .options = std::move(options)};
  return fetch(request);
}

Response post(std::string url, std::string body, std::string content_type, RequestOptions options) {
  Request request{.method = Method::post,
                  .url = std::move(url),
                  .body = std::move(body),
                  .content_type = std::move(content_type),
                  .options = std::move(options)};
  return fetch(request);
}

std::string curl_version() {
  internal::ensure_curl_initialised();
  return ::curl_version();
}

}  // namespace spindle::http
