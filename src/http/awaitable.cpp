// The awaitable client: curl's multi-socket API driven by the asyncio event loop. curl tells
// us which sockets to watch (CURLMOPT_SOCKETFUNCTION: a uv_poll_t each) and when it next
// needs a call (CURLMOPT_TIMERFUNCTION: a node in the loop's timer heap); each readiness or
// timeout is handed back with curl_multi_socket_action(), and a finished transfer wakes the
// task awaiting it. See docs/http.md, "Design".
#include <chrono>
#include <map>
#include <mutex>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

#include "spindle/detail/asyncio_uv.hpp"
#include "spindle/http.hpp"
#include "transfer.hpp"

namespace spindle::http {
namespace internal {
namespace {

class Multi;

// A socket curl asked us to watch.
struct SocketWatch {
  uv_poll_t poll;
  Multi* multi;
  curl_socket_t socket;
};

// The loop's timer-heap entry that calls curl back when its timeout is due.
struct MultiTimer : asyncio::internal::TimerNode {
  Multi* multi = nullptr;
};

// Waits, inside the awaiting task, for one Transfer run by the loop's Multi.
class ExchangeAwaiter;

// The curl multi handle of one event loop, shared by every request in flight on it; made by
// the first request and destroyed with the last one (its connections close with it). Loop
// thread only, apart from the registry's lookup.
class Multi {
 public:
  // The loop's Multi (made if needed), with one more reference.
  static Multi& acquire(asyncio::EventLoop& loop);
  // Drops a reference; the last one destroys the Multi.
  void release() noexcept;

  // Starts `exchange`'s transfer. Throws std::bad_alloc / spindle::Error if curl refuses.
  void add(ExchangeAwaiter& exchange, CURL* easy);
  // Stops a transfer that has not finished (cancellation, or its awaiter destroyed). False
  // when curl refuses, as it does from inside one of its own callbacks (a body callback that
  // cancels its own task).
  bool remove(CURL* easy) noexcept { return curl_multi_remove_handle(multi_, easy) == CURLM_OK; }

 private:
  explicit Multi(asyncio::EventLoop& loop);
  ~Multi();

  static int on_socket(CURL* easy, curl_socket_t socket, int what, void* self, void* watch);
  static int on_timer(CURLM* multi, long timeout_ms, void* self);
  static void on_poll(uv_poll_t* handle, int status, int events);
  static void on_timer_due(asyncio::internal::TimerNode* node);
  void act(curl_socket_t socket, int flags);
  void collect_finished();
  void close_watch(SocketWatch* watch) noexcept;

  asyncio::EventLoop& loop_;
  CURLM* multi_ = nullptr;
  MultiTimer timer_;
  std::set<SocketWatch*> watches_;
  int references_ = 0;
};

// Which Multi each loop has. A map under a mutex rather than a thread_local: a stopped loop
// may be run again on another thread.
std::mutex registry_mutex;
std::map<asyncio::EventLoop*, Multi*> registry;

class ExchangeAwaiter final : asyncio::internal::Waiter, asyncio::internal::TaskSuspension {
 public:
  explicit ExchangeAwaiter(Transfer& transfer) noexcept : transfer_(transfer) {}
  ExchangeAwaiter(const ExchangeAwaiter&) = delete;
  ExchangeAwaiter& operator=(const ExchangeAwaiter&) = delete;
  // Destroyed while suspended (the task's frame destroyed by a closing loop): the transfer
  // leaves the multi handle.
  ~ExchangeAwaiter() { detach(); }

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> frame) {
    if (asyncio::internal::current_task_core() == nullptr)
      throw std::logic_error("spindle::http: co_await of a request outside a running task");
    multi_ = &Multi::acquire(asyncio::get_running_loop());
    try {
      transfer_.started();
      multi_->add(*this, transfer_.handle());
      attached_ = true;
      suspend(this, frame);
    } catch (...) {
      detach();
      throw;
    }
  }
  Response await_resume() {
    detach();
    deliver_pending_cancel();
    if (cancelled_) throw asyncio::CancelledError(task_->cancel_message());
    return transfer_.finish(result_);
  }

  // curl finished the transfer (and it has left the multi handle).
  void finished(CURLcode result) {
    attached_ = false;
    result_ = result;
    wake(this);
  }

 private:
  bool cancel_wait(const std::string&) override {
    // Finished already, or inside curl: the cancellation is delivered when the task resumes.
    if (!attached_ || !multi_->remove(transfer_.handle())) return false;
    attached_ = false;
    cancelled_ = true;
    wake(this);
    return true;
  }
  void detach() noexcept {
    if (multi_ == nullptr) return;
    if (attached_) multi_->remove(transfer_.handle());
    attached_ = false;
    std::exchange(multi_, nullptr)->release();
  }

  Transfer& transfer_;
  Multi* multi_ = nullptr;
  CURLcode result_ = CURLE_OK;
  bool attached_ = false;
  bool cancelled_ = false;
};

Multi& Multi::acquire(asyncio::EventLoop& loop) {
  std::lock_guard lock(registry_mutex);
  Multi*& slot = registry[&loop];
  if (slot == nullptr) {
    try {
      slot = new Multi(loop);
    } catch (...) {
      registry.erase(&loop);
      throw;
    }
  }
  ++slot->references_;
  return *slot;
}

void Multi::release() noexcept {
  if (--references_ > 0) return;
  {
    std::lock_guard lock(registry_mutex);
    registry.erase(&loop_);
  }
  delete this;
}

Multi::Multi(asyncio::EventLoop& loop) : loop_(loop) {
  ensure_curl_initialised();
  multi_ = curl_multi_init();
  if (multi_ == nullptr) throw std::bad_alloc();
  timer_.multi = this;
  timer_.fire = &Multi::on_timer_due;
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Multi::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Multi::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
}

Multi::~Multi() {
  // Closing the cached connections may call on_socket (REMOVE) and on_timer: both still work.
  curl_multi_cleanup(multi_);
  while (!watches_.empty())
    close_watch(*watches_.begin());
  loop_.remove_timer(&timer_);
}

void Multi::add(ExchangeAwaiter& exchange, CURL* easy) {
  curl_easy_setopt(easy, CURLOPT_PRIVATE, static_cast<void*>(&exchange));
  if (const CURLMcode code = curl_multi_add_handle(multi_, easy); code != CURLM_OK) {
    if (code == CURLM_OUT_OF_MEMORY) throw std::bad_alloc();
    throw spindle::Error(std::string("spindle::http: curl_multi_add_handle failed: ") +
                         curl_multi_strerror(code));
  }
}

int Multi::on_socket(CURL*, curl_socket_t socket, int what, void* self_pointer,
                     void* watch_pointer) {
  auto* self = static_cast<Multi*>(self_pointer);
  auto* watch = static_cast<SocketWatch*>(watch_pointer);
  if (what == CURL_POLL_REMOVE) {
    if (watch != nullptr) {
      curl_multi_assign(self->multi_, socket, nullptr);
      self->close_watch(watch);
    }
    return 0;
  }
  if (watch == nullptr) {
    watch = new (std::nothrow) SocketWatch{};
    if (watch == nullptr) return -1;
    if (uv_poll_init_socket(asyncio::internal::uv_loop(self->loop_), &watch->poll, socket) != 0) {
      delete watch;
      return -1;
    }
    watch->poll.data = watch;
    watch->multi = self;
    watch->socket = socket;
    try {
      self->watches_.insert(watch);
    } catch (...) {
      uv_close(reinterpret_cast<uv_handle_t*>(&watch->poll),
               [](uv_handle_t* handle) { delete static_cast<SocketWatch*>(handle->data); });
      return -1;
    }
    curl_multi_assign(self->multi_, socket, watch);
  }
  int events = 0;
  if ((what & CURL_POLL_IN) != 0) events |= UV_READABLE;
  if ((what & CURL_POLL_OUT) != 0) events |= UV_WRITABLE;
  return uv_poll_start(&watch->poll, events, &Multi::on_poll) == 0 ? 0 : -1;
}

int Multi::on_timer(CURLM*, long timeout_ms, void* self_pointer) {
  auto* self = static_cast<Multi*>(self_pointer);
  self->loop_.remove_timer(&self->timer_);
  if (timeout_ms >= 0) {
    self->timer_.when = asyncio::internal::Clock::now() + std::chrono::milliseconds(timeout_ms);
    self->loop_.add_timer(&self->timer_);
  }
  return 0;
}

void Multi::on_poll(uv_poll_t* handle, int status, int events) {
  auto* watch = static_cast<SocketWatch*>(handle->data);
  int flags = 0;
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
  } else {
    if ((events & UV_READABLE) != 0) flags |= CURL_CSELECT_IN;
    if ((events & UV_WRITABLE) != 0) flags |= CURL_CSELECT_OUT;
  }
  watch->multi->act(watch->socket, flags);
}

void Multi::on_timer_due(asyncio::internal::TimerNode* node) {
  static_cast<MultiTimer*>(node)->multi->act(CURL_SOCKET_TIMEOUT, 0);
}

void Multi::act(curl_socket_t socket, int flags) {
  int running = 0;
  curl_multi_socket_action(multi_, socket, flags, &running);
  collect_finished();
}

void Multi::collect_finished() {
  int left = 0;
  while (CURLMsg* message = curl_multi_info_read(multi_, &left)) {
    if (message->msg != CURLMSG_DONE) continue;
    CURL* easy = message->easy_handle;
    const CURLcode result = message->data.result;
    void* exchange = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &exchange);
    curl_multi_remove_handle(multi_, easy);
    // Only schedules the awaiting task: the Multi outlives this loop over messages.
    static_cast<ExchangeAwaiter*>(exchange)->finished(result);
  }
}

void Multi::close_watch(SocketWatch* watch) noexcept {
  watches_.erase(watch);
  uv_poll_stop(&watch->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&watch->poll),
           [](uv_handle_t* handle) { delete static_cast<SocketWatch*>(handle->data); });
}

}  // namespace
}  // namespace internal

asyncio::Task<Response> async_fetch(Request request, BodyCallback on_body) {
  internal::Transfer transfer(request, std::move(on_body));
  internal::ExchangeAwaiter exchange(transfer);
  Response response = co_await exchange;
  co_return response;
}

asyncio::Task<Response> async_fetch(Request request) {
  return async_fetch(std::move(request), BodyCallback{});
}

asyncio::Task<Response> async_fetch_to_file(Request request, std::filesystem::path file) {
  internal::FileSink sink(request, std::move(file));
  Response response = co_await async_fetch(request, sink.writer());
  sink.commit();
  co_return response;
}

asyncio::Task<Response> async_get(std::string url) {
  return async_get(std::move(url), RequestOptions{});
}

asyncio::Task<Response> async_post(std::string url, std::string body) {
  return async_post(std::move(url), std::move(body), std::string(), RequestOptions{});
}

asyncio::Task<Response> async_post(std::string url, std::string body, std::string content_type) {
  return async_post(std::move(url), std::move(body), std::move(content_type), RequestOptions{});
}

asyncio::Task<Response> async_get(std::string url, RequestOptions options) {
  return async_fetch(
      Request{.method = Method::get, .url = std::move(url), .options = std::move(options)});
}

asyncio::Task<Response> async_post(std::string url, std::string body, std::string content_type,
                                   RequestOptions options) {
  return async_fetch(Request{.method = Method::post,
                             .url = std::move(url),
                             .body = std::move(body),
                             .content_type = std::move(content_type),
                             .options = std::move(options)});
}

}  // namespace spindle::http
