#include "transfer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <system_error>
#include <utility>

#include <fmt/format.h>

namespace spindle::http::internal {

void ensure_curl_initialised() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw spindle::Error("libcurl failed to initialise");
  });
}

namespace {

long to_curl_milliseconds(std::chrono::milliseconds value) {
  constexpr auto most = std::numeric_limits<long>::max();
  if (value.count() <= 0) return 1;  // 0 would mean "no limit" to curl
  return value.count() > most ? most : static_cast<long>(value.count());
}

std::string trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() &&
         (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' || text.back() == '\n'))
    text.remove_suffix(1);
  return std::string(text);
}

// Checks the URL before curl sees it, so a malformed one gets a precise reason.
void check_url(const Request& request) {
  CURLU* parsed = curl_url();
  if (parsed == nullptr) throw std::bad_alloc();
  const CURLUcode code = curl_url_set(parsed, CURLUPART_URL, request.url.c_str(), 0);
  std::string scheme;
  if (code == CURLUE_OK) {
    char* part = nullptr;
    if (curl_url_get(parsed, CURLUPART_SCHEME, &part, 0) == CURLUE_OK) {
      scheme = part;
      curl_free(part);
    }
  }
  curl_url_cleanup(parsed);
  const auto name = method_name(request.method);
  if (code != CURLUE_OK)
    throw RequestError(ErrorKind::invalid_url, request.url,
                       fmt::format("{} {}: {} ({})", name, request.url,
                                   describe(ErrorKind::invalid_url), curl_url_strerror(code)));
  if (scheme != "http" && scheme != "https")
    throw RequestError(ErrorKind::invalid_url, request.url,
                       fmt::format("{} {}: {} (scheme '{}' is not http or https)", name,
                                   request.url, describe(ErrorKind::invalid_url), scheme));
}

}  // namespace

Transfer::Transfer(const Request& request, BodyCallback on_body)
    : request_(request), on_body_(std::move(on_body)) {
  ensure_curl_initialised();
  check_url(request);
  easy_ = curl_easy_init();
  if (easy_ == nullptr) throw std::bad_alloc();
  const RequestOptions& options = request.options;
  curl_easy_setopt(easy_, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(easy_, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy_, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM: many threads run requests
  curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, error_buffer_);
  curl_easy_setopt(easy_, CURLOPT_FOLLOWLOCATION, options.follow_redirects ? 1L : 0L);
  curl_easy_setopt(easy_, CURLOPT_MAXREDIRS, options.max_redirects);
  curl_easy_setopt(easy_, CURLOPT_SSL_VERIFYPEER, options.verify_tls ? 1L : 0L);
  curl_easy_setopt(easy_, CURLOPT_SSL_VERIFYHOST, options.verify_tls ? 2L : 0L);
  curl_easy_setopt(easy_, CURLOPT_ACCEPT_ENCODING, "");  // any encoding curl can decode
  if (options.timeout)
    curl_easy_setopt(easy_, CURLOPT_TIMEOUT_MS, to_curl_milliseconds(*options.timeout));
  if (options.connect_timeout)
    curl_easy_setopt(easy_, CURLOPT_CONNECTTIMEOUT_MS,
                     to_curl_milliseconds(*options.connect_timeout));
  if (!options.user_agent.empty())
    curl_easy_setopt(easy_, CURLOPT_USERAGENT, options.user_agent.c_str());
  if (request.method == Method::post) {
    curl_easy_setopt(easy_, CURLOPT_POST, 1L);
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  }
  auto append = [this](const std::string& line) {
    curl_slist* grown = curl_slist_append(header_list_, line.c_str());
    if (grown == nullptr) throw std::bad_alloc();
    header_list_ = grown;
  };
  if (request.method == Method::post && !request.content_type.empty())
    append("Content-Type: " + request.content_type);
  for (const auto& [name, value] : options.headers)
    append(name + ": " + value);
  if (request.method == Method::post) append("Expect:");  // no 100-continue round trip
  curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, header_list_);
  curl_easy_setopt(easy_, CURLOPT_HEADERFUNCTION, &Transfer::on_header);
  curl_easy_setopt(easy_, CURLOPT_HEADERDATA, this);
  curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &Transfer::on_write);
  curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
  if (options.on_progress) {
    curl_easy_setopt(easy_, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(easy_, CURLOPT_XFERINFOFUNCTION, &Transfer::on_transfer_info);
    curl_easy_setopt(easy_, CURLOPT_XFERINFODATA, this);
  }
  response_.url = request.url;
}

Transfer::~Transfer() {
  if (easy_ != nullptr) curl_easy_cleanup(easy_);
  curl_slist_free_all(header_list_);
}

size_t Transfer::on_header(char* data, size_t size, size_t count, void* self_pointer) {
  auto* self = static_cast<Transfer*>(self_pointer);
  const std::string_view line(data, size * count);
  // Each response (an interim 1xx or a redirect followed) starts over with its status line.
  if (line.starts_with("HTTP/")) {
    self->response_.headers.clear();
  } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    try {
      self->response_.headers.emplace_back(trim(line.substr(0, colon)),
                                           trim(line.substr(colon + 1)));
    } catch (...) {
      self->callback_error_ = std::current_exception();
      return 0;
    }
  }
  return size * count;
}

size_t Transfer::on_write(char* data, size_t size, size_t count, void* self_pointer) {
  auto* self = static_cast<Transfer*>(self_pointer);
  const size_t bytes = size * count;
  try {
    if (self->on_body_)
      self->on_body_(std::string_view(data, bytes));
    else
      self->response_.body.append(data, bytes);
  } catch (...) {
    self->callback_error_ = std::current_exception();
    return CURL_WRITEFUNC_ERROR;
  }
  self->response_.body_size += bytes;
  return bytes;
}

int Transfer::on_transfer_info(void* self_pointer, curl_off_t dltotal, curl_off_t dlnow,
                               curl_off_t ultotal, curl_off_t ulnow) {
  auto* self = static_cast<Transfer*>(self_pointer);
  Progress progress;
  progress.downloaded = static_cast<std::uint64_t>(dlnow);
  if (dltotal > 0) progress.download_total = static_cast<std::uint64_t>(dltotal);
  progress.uploaded = static_cast<std::uint64_t>(ulnow);
  if (ultotal > 0) progress.upload_total = static_cast<std::uint64_t>(ultotal);
  try {
    if (self->request_.options.on_progress(progress)) return 0;
  } catch (...) {
    self->callback_error_ = std::current_exception();
    return 1;
  }
  self->cancelled_ = true;
  return 1;
}

void Transfer::fail(ErrorKind kind, const std::string& detail) {
  std::string message =
      fmt::format("{} {}: {}", method_name(request_.method), request_.url, describe(kind));
  if (!detail.empty()) message += fmt::format(" ({})", detail);
  throw RequestError(kind, request_.url, message);
}

Response Transfer::finish(CURLcode result) {
  response_.elapsed = std::chrono::steady_clock::now() - start_;
  if (callback_error_) std::rethrow_exception(callback_error_);
  std::string detail = error_buffer_[0] != '\0' ? error_buffer_ : curl_easy_strerror(result);
  switch (result) {
    case CURLE_OK:
      break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      fail(ErrorKind::invalid_url, detail);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      fail(ErrorKind::name_resolution, detail);
    case CURLE_COULDNT_CONNECT: {
      long os_error = 0;
      curl_easy_getinfo(easy_, CURLINFO_OS_ERRNO, &os_error);
      fail(os_error == ECONNREFUSED ? ErrorKind::connection_refused : ErrorKind::connect_failed,
           detail);
    }
    case CURLE_OPERATION_TIMEDOUT:
      fail(ErrorKind::timeout, detail);
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
      fail(ErrorKind::tls, detail);
    case CURLE_TOO_MANY_REDIRECTS:
      fail(ErrorKind::too_many_redirects, detail);
    case CURLE_ABORTED_BY_CALLBACK:
      fail(cancelled_ ? ErrorKind::cancelled : ErrorKind::other, detail);
    case CURLE_WRITE_ERROR:
      fail(ErrorKind::body_sink, detail);
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      fail(ErrorKind::connection_lost, detail);
    default:
      fail(ErrorKind::other, detail);
  }
  curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &response_.status);
  char* effective_url = nullptr;
  if (curl_easy_getinfo(easy_, CURLINFO_EFFECTIVE_URL, &effective_url) == CURLE_OK &&
      effective_url != nullptr)
    response_.url = effective_url;
  curl_easy_getinfo(easy_, CURLINFO_REDIRECT_COUNT, &response_.redirects);
  return std::move(response_);
}

FileSink::FileSink(const Request& request, std::filesystem::path file)
    : request_(request), file_(std::move(file)) {
  fd_ = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd_ < 0) fail("open");
}

FileSink::~FileSink() {
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  std::error_code ignored;
  std::filesystem::remove(file_, ignored);
}

void FileSink::fail(const char* action) {
  throw RequestError(ErrorKind::body_sink, request_.url,
                     fmt::format("{} {}: cannot {} {}: {}", method_name(request_.method),
                                 request_.url, action, file_.string(), std::strerror(errno)));
}

BodyCallback FileSink::writer() {
  return [this](std::string_view chunk) {
    while (!chunk.empty()) {
      const ssize_t written = ::write(fd_, chunk.data(), chunk.size());
      if (written < 0) {
        if (errno == EINTR) continue;
        fail("write");
      }
      chunk.remove_prefix(static_cast<std::size_t>(written));
    }
  };
}

void FileSink::commit() {
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("write");
  committed_ = true;
}

}  // namespace spindle::http::internal
