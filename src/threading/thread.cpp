// Thread, the registry of live threads, current_thread() and the exception hook.
//
// A Thread object is a facade over a shared ThreadState, which the running thread also owns.
// That lets a daemon thread outlive its Thread object (the facade is replaced) and lets
// join() wait on a plain condition variable with a timeout. See docs/design/threading.md.
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>
#include <typeinfo>

#include "spindle/detail/exception_info.hpp"
#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace spindle::threading {
namespace detail {

void destroy_thread_locals();  // local.cpp

// The life of a thread, guarded by ThreadState::mutex:
//
//   status     event                                   next
//   ---------  --------------------------------------  ---------
//   initial    start()                                 starting
//   starting   the new thread enters bootstrap()       running
//   starting   the OS refuses a new thread             initial
//   running    run() has returned or thrown            finished
//
// Main and dummy threads are born `running`; main never finishes, a dummy finishes when its
// thread exits.
enum class Status { initial, starting, running, finished };

struct ThreadState {
  std::mutex mutex;
  std::condition_variable changed;
  Status status = Status::initial;
  std::string name;
  bool daemon = false;
  bool dummy = false;
  std::optional<std::uint64_t> ident;
  std::optional<long> native_id;
  spindle::detail::UniqueFunction target;  // the target form's callable
  bool call_target_directly = false;       // a plain Thread (not a subclass): skip run()

  // The Thread object that stands for this thread in current_thread() and enumerate().
  std::atomic<Thread*> facade{nullptr};
  // Owns the replacement facade once a daemon's own Thread object was destroyed mid-run.
  std::unique_ptr<Thread> orphan;

  std::mutex native_mutex;  // serialises join/detach of `native`
  std::thread native;

  ~ThreadState() {
    if (native.joinable()) native.detach();  // never std::terminate
  }

  static void bootstrap(std::shared_ptr<ThreadState> state, Thread* self);
  static Thread* adopt(std::shared_ptr<ThreadState> state) {
    return new Thread(AdoptTag{}, std::move(state));
  }
};

namespace {

long kernel_thread_id() {
  return static_cast<long>(::syscall(SYS_gettid));
}
bool is_main_os_thread() {
  return kernel_thread_id() == static_cast<long>(::getpid());
}

std::atomic<std::uint64_t> name_counter{0};
std::string new_name(const char* pattern_prefix) {
  return pattern_prefix + std::to_string(name_counter.fetch_add(1) + 1);
}

// Every live thread (started and not finished, the main thread and dummies too). Immortal:
// daemon threads may still run while static objects are destroyed at exit.
struct Registry {
  std::mutex mutex;
  std::vector<std::shared_ptr<ThreadState>> alive;
  ExceptHook hook;  // empty: default_excepthook

  void add(std::shared_ptr<ThreadState> state) {
    std::lock_guard guard(mutex);
    alive.push_back(std::move(state));
  }
  void remove(const ThreadState* state) {
    std::lock_guard guard(mutex);
    std::erase_if(alive, [&](const auto& entry) { return entry.get() == state; });
  }
};
Registry& registry() {
  static Registry* instance = new Registry();
  return *instance;
}

// The main thread's state, made at load time (the library's static initialisation runs on
// the main thread) or on first use from the main thread.
std::shared_ptr<ThreadState>& main_state_slot() {
  static auto* slot = new std::shared_ptr<ThreadState>();
  return *slot;
}
std::once_flag main_once;
Thread* main_facade = nullptr;

void make_main_thread() {
  std::call_once(main_once, [] {
    auto state = std::make_shared<ThreadState>();
    state->name = "MainThread";
    state->status = Status::running;
    state->native_id = static_cast<long>(::getpid());
    if (is_main_os_thread()) state->ident = static_cast<std::uint64_t>(::pthread_self());
    main_facade = ThreadState::adopt(state);
    main_state_slot() = state;
    registry().add(state);
  });
}
[[maybe_unused]] const bool main_thread_captured = [] {
  if (is_main_os_thread()) make_main_thread();
  return true;
}();

// The calling thread's state. For a dummy thread, its destructor (at thread exit) marks it
// finished and takes it out of the registry.
struct CurrentThread {
  std::shared_ptr<ThreadState> state;
  std::unique_ptr<Thread> dummy_facade;
  ~CurrentThread() {
    if (dummy_facade) {
      {
        std::lock_guard guard(state->mutex);
        state->status = Status::finished;
      }
      state->changed.notify_all();
      registry().remove(state.get());
    }
  }
};
thread_local CurrentThread current;

// Waits, at program exit, for every started non-daemon thread, as Python's threading
// _shutdown does.
void wait_for_non_daemon_threads() {
  for (;;) {
    std::shared_ptr<ThreadState> pending;
    {
      Registry& threads = registry();
      std::lock_guard guard(threads.mutex);
      for (const auto& state : threads.alive) {
        std::lock_guard state_guard(state->mutex);
        if (!state->daemon && !state->dummy && state != main_state_slot() &&
            state.get() != current.state.get()) {
          pending = state;
          break;
        }
      }
    }
    if (!pending) return;
    {
      std::unique_lock lock(pending->mutex);
      pending->changed.wait(lock, [&] { return pending->status == Status::finished; });
    }
    std::lock_guard guard(pending->native_mutex);  // reap it: it has finished
    if (pending->native.joinable()) pending->native.join();
  }
}
std::once_flag exit_hook_once;

void report_uncaught(const std::shared_ptr<ThreadState>& state, std::exception_ptr error) {
  ExceptHook hook;
  {
    Registry& threads = registry();
    std::lock_guard guard(threads.mutex);
    hook = threads.hook;
  }
  const ExceptHookArgs args{error, state->facade.load()};
  try {
    if (hook) {
      hook(args);
    } else {
      default_excepthook(args);
    }
  } catch (...) {
    spindle::print(stderr, "Exception in threading.excepthook:\n{}",
                   spindle::detail::format_exception(std::current_exception()));
  }
}

}  // namespace

std::uint64_t current_ident() noexcept {
  return static_cast<std::uint64_t>(::pthread_self());
}

void ThreadState::bootstrap(std::shared_ptr<ThreadState> state, Thread* self) {
  current.state = state;
  {
    std::lock_guard guard(state->mutex);
    state->ident = current_ident();
    state->native_id = kernel_thread_id();
    state->status = Status::running;
  }
  state->changed.notify_all();

  try {
    if (state->call_target_directly) {
      if (state->target) state->target();
    } else {
      self->run();
    }
  } catch (...) {
    report_uncaught(state, std::current_exception());
  }
  // Drop what the target holds now, in this thread, as Python drops its references.
  state->target = nullptr;
  destroy_thread_locals();

  std::unique_ptr<Thread> orphan;
  registry().remove(state.get());
  {
    std::lock_guard guard(state->mutex);
    state->status = Status::finished;
    orphan = std::move(state->orphan);
  }
  state->changed.notify_all();
}

}  // namespace detail

using detail::Status;
using detail::ThreadState;

Thread::Thread() : Thread(ThreadOptions{}) {}

Thread::Thread(ThreadOptions options) : state_(std::make_shared<ThreadState>()) {
  state_->name = options.name.empty() ? detail::new_name("Thread-") : std::move(options.name);
  state_->daemon = options.daemon.has_value() ? *options.daemon : current_thread().daemon();
  state_->facade = this;
}

Thread::Thread(ThreadOptions options, detail::TargetTag, spindle::detail::UniqueFunction target)
    : Thread(std::move(options)) {
  state_->target = std::move(target);
}

Thread::Thread(detail::AdoptTag, std::shared_ptr<ThreadState> state)
    : state_(std::move(state)), adopted_(true) {
  state_->facade = this;
}

Thread::~Thread() {
  if (adopted_) return;  // main, dummy and orphan facades never own the thread
  ThreadState& state = *state_;
  Status status;
  bool daemon;
  bool own_thread;
  {
    std::lock_guard guard(state.mutex);
    status = state.status;
    daemon = state.daemon;
    own_thread = state.ident == detail::current_ident();
  }
  if (status == Status::initial) return;

  if (!own_thread && (status == Status::finished || !daemon)) {
    join();
    return;
  }
  // A daemon (or a thread destroying its own Thread object) runs on: detach it and give it a
  // replacement facade so current_thread() and enumerate() stay valid.
  {
    std::lock_guard guard(state.native_mutex);
    if (state.native.joinable()) state.native.detach();
  }
  std::lock_guard guard(state.mutex);
  if (state.status != Status::finished) {
    state.orphan.reset(ThreadState::adopt(state_));
  }
}

void Thread::start() {
  {
    std::lock_guard guard(state_->mutex);
    if (state_->status != Status::initial || state_->dummy || state_ == detail::main_state_slot()) {
      throw std::logic_error("threads can only be started once");
    }
    state_->status = Status::starting;
    state_->call_target_directly = typeid(*this) == typeid(Thread);
  }
  std::call_once(detail::exit_hook_once, [] { std::atexit(detail::wait_for_non_daemon_threads); });
  detail::registry().add(state_);
  try {
    std::lock_guard guard(state_->native_mutex);
    state_->native = std::thread(&ThreadState::bootstrap, state_, this);
  } catch (...) {
    detail::registry().remove(state_.get());
    std::lock_guard guard(state_->mutex);
    state_->status = Status::initial;
    throw;
  }
  std::unique_lock lock(state_->mutex);
  state_->changed.wait(lock, [&] { return state_->status != Status::starting; });
}

void Thread::run() {
  if (state_->target) state_->target();
}

bool Thread::join_until(spindle::detail::Clock::time_point deadline) {
  {
    std::unique_lock lock(state_->mutex);
    if (state_->status == Status::initial) {
      throw std::logic_error("cannot join thread before it is started");
    }
    if (state_->ident == detail::current_ident()) {
      throw std::logic_error("cannot join current thread");
    }
    if (state_->dummy) throw std::logic_error("cannot join a dummy thread");
    if (!state_->changed.wait_until(lock, deadline,
                                    [&] { return state_->status == Status::finished; })) {
      return false;
    }
  }
  std::lock_guard guard(state_->native_mutex);
  if (state_->native.joinable()) state_->native.join();  // it has finished: this is brief
  return true;
}

void Thread::join() {
  join_until(spindle::detail::Clock::time_point::max());
}

bool Thread::is_alive() const {
  std::lock_guard guard(state_->mutex);
  return state_->status == Status::running;
}

std::string Thread::name() const {
  std::lock_guard guard(state_->mutex);
  return state_->name;
}

void Thread::set_name(std::string name) {
  std::lock_guard guard(state_->mutex);
  state_->name = std::move(name);
}

bool Thread::daemon() const {
  std::lock_guard guard(state_->mutex);
  return state_->daemon;
}

void Thread::set_daemon(bool daemon) {
  std::lock_guard guard(state_->mutex);
  if (state_->status != Status::initial || state_->dummy || state_ == detail::main_state_slot()) {
    throw std::logic_error("cannot set daemon status of active thread");
  }
  state_->daemon = daemon;
}

std::optional<std::uint64_t> Thread::ident() const {
  std::lock_guard guard(state_->mutex);
  return state_->ident;
}

std::optional<long> Thread::native_id() const {
  std::lock_guard guard(state_->mutex);
  return state_->native_id;
}

Thread& current_thread() {
  if (detail::current.state) return *detail::current.state->facade.load();
  if (detail::is_main_os_thread()) {
    detail::make_main_thread();
    detail::current.state = detail::main_state_slot();
    return *detail::main_facade;
  }
  // A thread spindle did not start: a daemon "Dummy-N" that lives as long as the thread.
  auto state = std::make_shared<ThreadState>();
  state->name = detail::new_name("Dummy-");
  state->daemon = true;
  state->dummy = true;
  state->status = Status::running;
  state->ident = detail::current_ident();
  state->native_id = detail::kernel_thread_id();
  detail::current.dummy_facade.reset(ThreadState::adopt(state));
  detail::current.state = state;
  detail::registry().add(state);
  return *detail::current.dummy_facade;
}

Thread& main_thread() {
  detail::make_main_thread();
  return *detail::main_facade;
}

std::size_t active_count() {
  detail::make_main_thread();
  detail::Registry& threads = detail::registry();
  std::lock_guard guard(threads.mutex);
  return threads.alive.size();
}

std::vector<Thread*> enumerate() {
  detail::make_main_thread();
  detail::Registry& threads = detail::registry();
  std::lock_guard guard(threads.mutex);
  std::vector<Thread*> result;
  result.reserve(threads.alive.size());
  for (const auto& state : threads.alive)
    result.push_back(state->facade.load());
  return result;
}

std::uint64_t get_ident() {
  return detail::current_ident();
}
long get_native_id() {
  return detail::kernel_thread_id();
}

void set_excepthook(ExceptHook hook) {
  detail::Registry& threads = detail::registry();
  std::lock_guard guard(threads.mutex);
  threads.hook = std::move(hook);
}

void default_excepthook(const ExceptHookArgs& args) {
  const std::string name = args.thread != nullptr ? args.thread->name() : "<unknown>";
  spindle::print(stderr, "Exception in thread {}:\n{}", name,
                 spindle::detail::format_exception(args.exc_value));
}

}  // namespace spindle::threading
