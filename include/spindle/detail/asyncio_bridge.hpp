// Bridges between asyncio and threads: wrap_future, `co_await` of a futures::Future,
// run_in_executor, to_thread, run_coroutine_threadsafe. Included by <spindle/asyncio.hpp>.
//
// A futures::Future completes on whatever thread finishes it, and runs its callbacks there;
// asyncio state may only be touched on the loop's thread. So every crossing goes through the
// loop's thread-safe gate (what call_soon_threadsafe uses), and a handle to asyncio state that
// a foreign thread might end up destroying is held in a LoopOwned box that sends it back to
// the loop to die there.
#pragma once

#include <memory>
#include <thread>

namespace spindle::asyncio {
namespace internal {

// Holds a loop-thread object (an asyncio handle) inside something a foreign thread may destroy
// (a futures::Future callback). Destroyed off the loop thread, the object is shipped to the
// loop and destroyed there; if the loop is closed it is destroyed where it is (the loop no
// longer touches it).
template <class H>
class LoopOwned {
 public:
  LoopOwned(H handle, EventLoop& loop)
      : box_(std::make_shared<Box>(std::move(handle), loop.threadsafe_gate())) {}
  // Loop thread only.
  H& get() const noexcept { return *box_->handle; }

 private:
  struct Box {
    Box(H h, std::shared_ptr<ThreadsafeGate> g)
        : handle(std::in_place, std::move(h)),
          gate(std::move(g)),
          owner(std::this_thread::get_id()) {}
    Box(const Box&) = delete;
    Box& operator=(const Box&) = delete;
    ~Box() {
      if (std::this_thread::get_id() == owner) return;
      struct Carrier {
        std::optional<H> handle;
      };
      // Whether the gate runs it, discards it or refuses it, `carrier` dies on a safe thread.
      (void)post_threadsafe(*gate,
                            [carrier = std::make_shared<Carrier>(Carrier{std::move(handle)})] {});
      handle.reset();
    }
    std::optional<H> handle;
    std::shared_ptr<ThreadsafeGate> gate;
    std::thread::id owner;
  };
  std::shared_ptr<Box> box_;
};

// Copies a finished futures::Future's outcome into an asyncio Future (loop thread).
template <class T>
void copy_outcome(const futures::Future<T>& source, Future<T>& target) {
  if (target.done()) return;  // cancelled on the asyncio side meanwhile
  if (source.cancelled()) {
    target.cancel();
    return;
  }
  if (std::exception_ptr error = source.exception()) {
    target.set_exception(error);
    return;
  }
  if constexpr (std::is_void_v<T>) {
    target.set_result();
  } else {
    target.set_result(source.result());
  }
}

// The scheduled task behind a run_coroutine_threadsafe future, while it runs (loop thread).
struct ThreadsafeTaskLink {
  TaskCoreBase* core = nullptr;
};

}  // namespace internal

// An asyncio Future on `loop` that completes as `future` does (asyncio.wrap_future).
// Cancelling the asyncio Future cancels `future` (if it has not started). Loop thread.
template <class T>
Future<T> wrap_future(futures::Future<T> future, EventLoop& loop) {
  Future<T> target(loop);
  target.add_done_callback([future](Future<T>& done) mutable {
    if (done.cancelled()) future.cancel();
  });
  internal::LoopOwned<Future<T>> owned(target, loop);
  std::shared_ptr<internal::ThreadsafeGate> gate = loop.threadsafe_gate();
  // Runs on the thread that completes `future`: hop to the loop.
  future.add_done_callback([owned, gate](const futures::Future<T>& done) {
    (void)internal::post_threadsafe(*gate,
                                    [owned, done] { internal::copy_outcome(done, owned.get()); });
  });
  return target;
}
// wrap_future on the running loop.
template <class T>
Future<T> wrap_future(futures::Future<T> future) {
  return wrap_future(std::move(future), get_running_loop());
}

template <class F, class... A>
auto EventLoop::run_in_executor(futures::Executor& executor, F&& function, A&&... args) {
  return wrap_future(executor.submit(std::forward<F>(function), std::forward<A>(args)...), *this);
}
template <class F, class... A>
auto EventLoop::run_in_executor(std::nullptr_t, F&& function, A&&... args) {
  return run_in_executor(default_executor(), std::forward<F>(function), std::forward<A>(args)...);
}

// Runs function(args...) on the running loop's default executor (a ThreadPoolExecutor) and
// gives its result (asyncio.to_thread). A coroutine: the call is submitted when awaited.
template <class F, class... A>
auto to_thread(F function, A... args) -> Task<std::invoke_result_t<F&, A&...>> {
  using R = std::invoke_result_t<F&, A&...>;
  auto future =
      get_running_loop().run_in_executor(nullptr, std::move(function), std::move(args)...);
  if constexpr (std::is_void_v<R>) {
    co_await future;
  } else {
    co_return co_await future;
  }
}

// Submits `task` to `loop` from any thread and returns a futures::Future of its result
// (asyncio.run_coroutine_threadsafe). Cancelling that future cancels the task. Thread-safe;
// std::logic_error if the loop is closed. If the loop closes before the task starts, the
// future is cancelled.
template <class T>
futures::Future<T> run_coroutine_threadsafe(Task<T> task, EventLoop& loop) {
  futures::Future<T> result;
  auto link = std::make_shared<internal::ThreadsafeTaskLink>();
  struct Start {
    Task<T> task;
    std::optional<futures::Future<T>> result;  // empty once started (or moved from)
    std::shared_ptr<internal::ThreadsafeTaskLink> link;
    EventLoop* loop;
    Start(Task<T> t, futures::Future<T> r, std::shared_ptr<internal::ThreadsafeTaskLink> l,
          EventLoop* e)
        : task(std::move(t)), result(std::move(r)), link(std::move(l)), loop(e) {}
    Start(Start&& other) noexcept
        : task(std::move(other.task)),
          result(std::exchange(other.result, std::nullopt)),
          link(std::move(other.link)),
          loop(other.loop) {}
    ~Start() {
      if (result) result->cancel();  // never started: the loop closed first
    }
    void operator()() {
      futures::Future<T> target = std::move(*result);
      result.reset();
      if (target.cancelled()) return;
      Task<T> scheduled = loop->create_task(std::move(task));
      link->core = static_cast<internal::TaskCoreBase*>(internal::TaskAccess::core(scheduled));
      scheduled.add_done_callback([target, link = link](Task<T>& done) mutable {
        link->core = nullptr;
        if (done.cancelled()) {
          target.cancel();
          return;
        }
        if (!target.set_running_or_notify_cancel()) return;
        if (std::exception_ptr error = done.exception()) {
          target.set_exception(error);
        } else if constexpr (std::is_void_v<T>) {
          target.set_result();
        } else {
          target.set_result(done.result());
        }
      });
    }
  };
  std::shared_ptr<internal::ThreadsafeGate> gate = loop.threadsafe_gate();
  if (!internal::post_threadsafe(*gate, Start(std::move(task), result, link, &loop)))
    throw std::logic_error("run_coroutine_threadsafe: the event loop is closed");
  result.add_done_callback([gate, link](const futures::Future<T>& done) {
    if (!done.cancelled()) return;
    (void)internal::post_threadsafe(*gate, [link] {
      if (link->core != nullptr) link->core->cancel("");
    });
  });
  return result;
}

}  // namespace spindle::asyncio

namespace spindle::futures {
// `co_await future` in an asyncio coroutine: waits on the running loop without blocking it
// (through asyncio::wrap_future).
template <class T>
auto operator co_await(const Future<T>& future) {
  asyncio::Future<T> wrapped = asyncio::wrap_future(future);
  return asyncio::internal::FutureAwaiter<asyncio::internal::FutureState<T>, T>(
      static_cast<asyncio::internal::FutureState<T>*>(asyncio::internal::TaskAccess::core(wrapped)),
      false);
}
}  // namespace spindle::futures
