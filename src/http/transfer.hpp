// One HTTP exchange on a curl easy handle, independent of how it is driven.
//
// Transfer configures the easy handle from a Request, collects the status line, headers and
// body through curl's callbacks, and turns curl's result into a Response or a RequestError.
// The blocking client drives it with curl_easy_perform(); an event-loop client can add the
// same handle to a curl multi handle and call finish() when curl reports it done.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <exception>
#include <filesystem>
#include <string>

#include "spindle/http.hpp"

namespace spindle::http::internal {

// Initialises libcurl once per process (thread-safe).
void ensure_curl_initialised();

// Not thread-safe: one thread (or one event loop) drives a Transfer at a time.
class Transfer {
 public:
  // `on_body` empty: the body is kept in the Response. `request` must outlive the Transfer
  // (curl reads the URL and the POST body from it). Throws RequestError(invalid_url) for URLs
  // curl rejects outright.
  Transfer(const Request& request, BodyCallback on_body);
  ~Transfer();
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  CURL* handle() noexcept { return easy_; }
  // Marks the start of the exchange (for Response::elapsed).
  void started() noexcept { start_ = std::chrono::steady_clock::now(); }
  // Turns curl's result for this handle into the Response, or throws: the body callback's own
  // exception when it threw, RequestError otherwise.
  Response finish(CURLcode result);

 private:
  static size_t on_header(char* data, size_t size, size_t count, void* self);
  static size_t on_write(char* data, size_t size, size_t count, void* self);
  static int on_transfer_info(void* self, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                              curl_off_t ulnow);
  [[noreturn]] void fail(ErrorKind kind, const std::string& detail);

  CURL* easy_ = nullptr;
  curl_slist* header_list_ = nullptr;
  const Request& request_;
  BodyCallback on_body_;
  Response response_;
  std::exception_ptr callback_error_;
  bool cancelled_ = false;
  char error_buffer_[CURL_ERROR_SIZE] = {};
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// The body of a request written to a file, for fetch_to_file and async_fetch_to_file. The
// constructor creates or truncates the file; the destructor removes it unless commit() closed
// it successfully, so a failed, cancelled or abandoned request leaves no file behind.
// Failures are RequestError(body_sink) naming the request and the file.
class FileSink {
 public:
  FileSink(const Request& request, std::filesystem::path file);
  ~FileSink();
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  // A body callback writing each chunk to the file; valid while the FileSink lives.
  BodyCallback writer();
  // Closes the file, keeping it.
  void commit();

 private:
  [[noreturn]] void fail(const char* action);

  const Request& request_;
  std::filesystem::path file_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace spindle::http::internal
